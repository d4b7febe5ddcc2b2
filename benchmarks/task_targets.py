"""The image-to-image targets of benchmarks.tasks, checked on the evaluate stage's metrics.json
(here, apart from the benchmark's flags, so tests can import them beside other benchmarks)."""

import statistics


def _mean(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _cell(values, digits=3):
    mean, std = _mean(values)
    if mean is None:
        return "-"
    return f"{mean:.{digits}g}" + (f" ± {std:.2g}" if len(values) > 1 else "")


def targets(task: str, runs: list[dict]) -> list[tuple[str, bool]]:
    def m(method, key):
        return _mean([r["methods"][method].get(key) for r in runs])[0]

    if not all("l1_reference" in r["methods"] for r in runs):
        return [("every target (no L1-only model: pass --l1_reference_dir)", False)]
    checks = []
    if task == "super_resolution":
        checks.append(
            (
                "L1-only PSNR >= bicubic + 2 dB",
                m("l1_reference", "psnr") >= m("bicubic_upsample", "psnr") + 2,
            )
        )
    if task == "inpainting":
        checks.append(
            (
                "GAN hole PSNR > harmonic fill's",
                m("model", "hole_psnr") > m("classical_fill", "hole_psnr"),
            )
        )
    checks.append(
        (
            "GAN FD <= 0.5 x L1-only FD",
            m("model", "frechet_distance") <= 0.5 * m("l1_reference", "frechet_distance"),
        )
    )
    # The real-data floor (train vs eval images, two independent real sets) is not a floor here:
    # outputs are paired with the eval images they are scored against, so a perfect model scores
    # FD 0. It is printed beside the FDs as the scale of sampling noise, not checked.
    if task == "super_resolution":
        checks.append(
            (
                "GAN PSNR within 1.5 dB of L1-only",
                m("model", "psnr") >= m("l1_reference", "psnr") - 1.5,
            )
        )
    if task == "translation":
        real = _mean([r["references"]["real_floor"].get("classifier_accuracy") for r in runs])[0]
        checks.append(
            (
                "judge accuracy on GAN outputs within 10 points of real",
                m("model", "classifier_accuracy") >= real - 0.10,
            )
        )
    return checks


def table(results: dict) -> str:
    lines = [
        "| task | method | PSNR (dB) | SSIM | L1 | FD | hole PSNR (dB) | judge accuracy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for task, runs in results.items():
        for method in sorted({method for r in runs for method in r["methods"]}):
            cells = [
                _cell([r["methods"].get(method, {}).get(k) for r in runs])
                for k in (
                    "psnr",
                    "ssim",
                    "l1",
                    "frechet_distance",
                    "hole_psnr",
                    "classifier_accuracy",
                )
            ]
            lines.append(f"| {task} | {method} | " + " | ".join(cells) + " |")
        floor = [r["references"]["real_floor"] for r in runs]
        lines.append(
            f"| {task} | real-data floor | | | | "
            f"{_cell([f['frechet_distance'] for f in floor])} | | "
            f"{_cell([f.get('classifier_accuracy') for f in floor])} |"
        )
        verdicts += [
            f"- {task}: {name}: {'MET' if ok else 'NOT met'}" for name, ok in targets(task, runs)
        ]
    seeds = {task: len(runs) for task, runs in results.items()}
    return "\n".join(lines + ["", f"Seeds per task: {seeds}.", ""] + verdicts) + "\n"
