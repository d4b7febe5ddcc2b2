"""benchmarks.quality's report: each row's scores at the seconds and images budgets, mean ± std
over seeds, against the article DCGAN's and the real-data floor, as markdown tables, JSON and a
plot of judge FD against training seconds; each snapshot's grid; and the reference's FD recorded
for the evaluate stage."""

import json
import pathlib
import statistics

from gan_keras import images as gan_images
from gan_keras.evaluation import reference_scores
from gan_keras.storage import atomic

EQUAL_IMAGES_TARGET = 0.5  # default's FD at the images budget <= this x the reference's

# The export generator's scores in each snapshot: (key, column title, format).
# KID's scale follows the judge's features (thousandths on Fashion-MNIST's judge, units on the
# emoji judge's): three significant digits read well on both.
SNAPSHOT_METRICS = (
    ("fd", "FD", ".2f"),
    ("kid", "KID", ".3g"),
    ("precision", "precision", ".3f"),
    ("recall", "recall", ".3f"),
)


def at_seconds(snapshots, seconds) -> dict:
    """The last snapshot within `seconds` of training."""
    within = [s for s in snapshots if s["seconds"] <= seconds + 1e-6]
    return within[-1] if within else snapshots[0]


def at_images(snapshots, images) -> dict | None:
    """The snapshot taken on reaching `images` (runs land on milestones to within one batch)."""
    hits = [s for s in snapshots if s["images"] >= images]
    return hits[0] if hits else None


def seconds_to_reach(snapshots, fd) -> float | None:
    for s in snapshots:
        if s["fd"] <= fd:
            return s["seconds"]
    return None


def mean_std(values) -> tuple[float, float]:
    values = [v for v in values if v is not None]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values, spec=".2f") -> str:
    """Mean ± std over the seeds that have a value; '–' when none has, and how many have when
    only some have (rows cached before a score was recorded, runs short of a budget)."""
    present = [v for v in values if v is not None]
    if not present:
        return "–"
    mean, std = mean_std(present)
    text = f"{mean:{spec}} ± {std:{spec}}" if len(present) > 1 else f"{mean:{spec}}"
    return text if len(present) == len(values) else f"{text} ({len(present)}/{len(values)} seeds)"


def _snapshot_metric(snapshot: dict | None, key: str) -> float | None:
    """`snapshot[key]`, None when the snapshot is missing or predates the score."""
    return (snapshot or {}).get(key)


def _scores_table(results: dict[str, list[dict]], images: int) -> tuple[list[str], dict]:
    """Markdown lines comparing the export generator's SNAPSHOT_METRICS at each run's final
    snapshot and at `images`, and their (mean, std) per row."""
    at = f"@ {images // 1000}k"
    lines = [
        f"Export generator's scores at the final snapshot (both budgets spent) and {at} images, "
        "mean ± std over seeds (–: not recorded; rows cached before KID and precision/recall "
        "were recorded need --rerun).",
        "",
        "| row | seeds | final: s / images | "
        + " | ".join(title for _, title, _ in SNAPSHOT_METRICS)
        + " | "
        + " | ".join(f"{title} {at}" for _, title, _ in SNAPSHOT_METRICS)
        + " |",
        "|---|---|---|" + "---|" * (2 * len(SNAPSHOT_METRICS)),
    ]
    stats = {}
    for name, runs in results.items():
        if not runs:
            continue
        finals = [r["snapshots"][-1] for r in runs]
        at_budget = [at_images(r["snapshots"], images) for r in runs]
        cells, stats[name] = [], {"final": {}, "at_images": {}}
        for label, snapshots in (("final", finals), ("at_images", at_budget)):
            for key, _, spec in SNAPSHOT_METRICS:
                values = [_snapshot_metric(s, key) for s in snapshots]
                cells.append(fmt(values, spec))
                stats[name][label][key] = mean_std(values)
        final_s = mean_std([s["seconds"] for s in finals])[0]
        final_images = mean_std([s["images"] for s in finals])[0]
        lines.append(
            f"| {name} | {len(runs)} | {final_s:.0f} s / {final_images / 1000:.0f}k | "
            + " | ".join(cells)
            + " |"
        )
    return lines, stats


def summarize(
    results: dict[str, list[dict]],
    references: dict,
    seconds: float,
    images: int,
    num_samples: int,
) -> tuple[str, dict]:
    """The markdown tables of every row's scores at the seconds and images budgets and at its
    final snapshot, with the equal-budget checks against the article's DCGAN, and the same as
    JSON-ready numbers."""
    ref_runs = results.get("article_dcgan", [])
    ref_fd_images = (
        mean_std([at_images(r["snapshots"], images)["fd"] for r in ref_runs])[0]
        if ref_runs
        else None
    )
    ref_rate = mean_std([r["images_per_second"] for r in ref_runs])[0] if ref_runs else None
    floor = references["real_floor_scores"]
    lines = [
        f"Judge: domain classifier, test accuracy {references['judge_test_accuracy']:.4f}; "
        f"scores of {num_samples} samples vs the {references['real_eval_images']:,} real "
        f"eval images. Real floor ({references['real_floor_images']:,} train images): FD "
        f"{references['real_floor']:.2f}, KID {floor['kid']:.3g}, precision "
        f"{floor['precision']:.3f}, recall {floor['recall']:.3f}; uniform noise: FD "
        f"{references['noise_ceiling']:.1f}.",
        "",
        f"| row | seeds | img/s | × ref speed | FD @ {seconds:.0f} s (export) | raw G @ "
        f"{seconds:.0f} s "
        f"| FD @ {images // 1000}k images | raw G @ {images // 1000}k | s to ref's FD @ "
        f"{images // 1000}k |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    summary = {"references": references, "reference_fd_at_images": ref_fd_images, "rows": {}}
    for name, runs in results.items():
        if not runs:
            continue
        fd_s = [at_seconds(r["snapshots"], seconds)["fd"] for r in runs]
        raw_s = [at_seconds(r["snapshots"], seconds)["fd_raw"] for r in runs]
        fd_i = [(at_images(r["snapshots"], images) or {}).get("fd") for r in runs]
        raw_i = [(at_images(r["snapshots"], images) or {}).get("fd_raw") for r in runs]
        rate = [r["images_per_second"] for r in runs]
        reach = (
            [seconds_to_reach(r["snapshots"], ref_fd_images) for r in runs]
            if ref_fd_images is not None
            else []
        )
        speed = f"{mean_std(rate)[0] / ref_rate:.2f}" if ref_rate else "–"
        reach_text = (
            fmt(reach, ".0f")
            if reach and None not in reach
            else f"not in {sum(x is not None for x in reach)}/{len(reach)}"
            if reach
            else "–"
        )
        lines.append(
            f"| {name} | {len(runs)} | {mean_std(rate)[0]:.0f} | {speed} | {fmt(fd_s)} | "
            f"{fmt(raw_s)} "
            f"| {fmt(fd_i)} | {fmt(raw_i)} | {reach_text} |"
        )
        summary["rows"][name] = {
            "fd_at_seconds": mean_std(fd_s),
            "fd_raw_at_seconds": mean_std(raw_s),
            "fd_at_images": mean_std(fd_i),
            "fd_raw_at_images": mean_std(raw_i),
            "images_per_second": mean_std(rate),
            "seeds": len(runs),
        }
    scores_lines, scores = _scores_table(results, images)
    for name, row_scores in scores.items():
        summary["rows"][name]["scores"] = row_scores
    if ref_fd_images is not None and "default" in summary["rows"]:
        d = summary["rows"]["default"]
        checks = [
            (
                f"default FD @ {seconds:.0f} s <= article DCGAN FD @ {images // 1000}k images",
                d["fd_at_seconds"][0],
                ref_fd_images,
            ),
            (
                f"default FD @ {images // 1000}k images <= {EQUAL_IMAGES_TARGET} x article DCGAN's",
                d["fd_at_images"][0],
                EQUAL_IMAGES_TARGET * ref_fd_images,
            ),
            (
                "default: exported (EMA) generator no worse than raw G",
                d["fd_at_seconds"][0],
                d["fd_raw_at_seconds"][0],
            ),
        ]
        lines.append("")
        for text, value, bound in checks:
            lines.append(
                f"- {'MET' if value <= bound else 'NOT MET'}: {text} ({value:.2f} vs {bound:.2f})"
            )
        summary["targets"] = [
            {"target": t, "value": v, "bound": b, "met": v <= b} for t, v, b in checks
        ]
    lines += ["", *scores_lines]
    return "\n".join(lines), summary


def save_grid(
    out_dir: pathlib.Path, samples, row_name: str, seed: int, images: int, num: int = 64
) -> pathlib.Path:
    """The first `num` of a snapshot's scored samples as a grid a person can look at:
    `<out_dir>/grids/<row>-seed<seed>-<images // 1000>k.png`, upscaled for viewing, so rows
    can be put side by side at equal images."""
    path = out_dir / "grids" / f"{row_name}-seed{seed}-{images // 1000}k.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = gan_images.make_grid(samples[:num])
    gan_images.save_png(path, gan_images.upscale_for_viewing(grid))
    return path


def record_reference(
    runs: list[dict], judge_fingerprint: str, images: int, num_samples: int, config_flag: str
) -> None:
    """The article DCGAN's FD at the images budget, written into the evaluate stage's reference
    scores (gan_keras/evaluation/reference_scores.json): evaluate places models against it."""
    values = [(at_images(r["snapshots"], images) or {}).get("fd") for r in runs]
    values = [v for v in values if v is not None]
    if not values:
        raise SystemExit(
            "--record_reference needs the article_dcgan row with snapshots at --images"
        )
    mean, std = mean_std(values)
    entry = {
        "judge_fingerprint": judge_fingerprint,
        "num_samples": num_samples,
        "name": "article DCGAN",
        "images": images,
        "frechet_distance": round(mean, 3),
        "frechet_distance_std": round(std, 3),
        "seeds": len(values),
        "command": f"python -m benchmarks.quality {config_flag}--rows=article_dcgan "
        f"--seeds={len(values)} --images={images} --num_samples={num_samples} "
        "--record_reference",
    }
    path = pathlib.Path(reference_scores.__file__).with_name(reference_scores.REFERENCE_FILE)
    entries = [
        e
        for e in reference_scores.load(path)
        if (e["judge_fingerprint"], e["num_samples"], e["name"], e.get("images"))
        != (entry["judge_fingerprint"], entry["num_samples"], entry["name"], entry["images"])
    ]
    atomic.atomic_write_text(path, json.dumps([*entries, entry], indent=2) + "\n")
    print(f"Recorded {entry['name']} FD {mean:.2f} ± {std:.2f} at {images} images in {path}")


def plot(results, path, seconds, dataset_name: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for i, (name, runs) in enumerate(results.items()):
        color = f"C{i % 10}"
        for j, r in enumerate(runs):
            xs = [s["seconds"] for s in r["snapshots"]]
            ax.plot(
                xs,
                [s["fd"] for s in r["snapshots"]],
                color=color,
                alpha=0.8,
                label=name if j == 0 else None,
            )
    ax.axvline(seconds, color="gray", linestyle=":", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel("training seconds (this machine)")
    ax.set_ylabel("judge FD (lower is better)")
    ax.set_title(f"Time to quality on {dataset_name} (one line per seed)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
