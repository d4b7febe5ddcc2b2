"""The model card an export carries (`assets.extra/model_card.md`), written from what the
pipeline knows: the data and what was rejected, the config, the training checkpoint, the
metrics with their references, the gate's decision, and the intended use and limits.

Anything the workdir does not hold (an export forced without an evaluation, an ingest
without statistics) is said to be missing rather than left out.
"""

import json
import pathlib
import textwrap

from gan_keras.data import records
from gan_keras.storage import atomic
from pipeline import workdir as workdir_layout

MISSING = "not recorded"

_LIMITATIONS = """\
- Made for research, teaching and demonstrations: it generates images like its training data,
  at the resolution above, and nothing else.
- Not for identifying, verifying or profiling people, and not for creating images of real
  people. It was not trained on face data unless the data section above says so.
- Generated images can reproduce training images or their parts; check the memorisation
  figures above (evaluate's nearest-neighbour ratio and near-copy share, where measured; the
  gate refuses a model above `evaluate.max_near_copy_share`) before publishing them.
- Images written by `pipeline.generate` say they were generated (IPTC trainedAlgorithmicMedia)
  and by which model version: signed C2PA content credentials when given a key, else unsigned
  XMP / PNG text metadata that anyone can strip. Check a file with `gan-verify IMAGE`
  (docs/provenance.md).
- It inherits the biases and gaps of its training data: classes or styles that are rare there
  are rare or poor in its output.
- The quality figures are distances in the features the evaluation section names (by default
  the project's own domain classifier, the "judge"), comparable between models scored with the
  same extractor fingerprint; only `fid_inception` figures are FID, comparable with published
  FID values at equal sample counts.
"""


def _read(path) -> dict | list | None:
    path = pathlib.Path(path)
    if not path.exists():
        return None
    try:
        return atomic.read_json(path)
    except (OSError, ValueError):
        return None


def _number(value) -> str:
    if isinstance(value, bool) or value is None:
        return MISSING if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _data_section(config, workdir) -> list[str]:
    stats = _read(workdir_layout.ingest_dir(workdir) / records.STATS_FILE) or {}
    splits = stats.get("splits", {})
    lines = [
        "## Data",
        "",
        f"- Source: `{config.data.source}`, {config.data.resolution}x{config.data.resolution}, "
        f"{config.data.channels} channel(s).",
        f"- Records: {_number(splits.get(records.TRAIN, {}).get('count'))} train, "
        f"{_number(splits.get(records.EVAL, {}).get('count'))} eval, of "
        f"{_number(stats.get('inputs_read'))} inputs read.",
        f"- Rejected inputs: {_number(stats.get('rejected'))}"
        + (
            f" ({', '.join(f'{k}: {v}' for k, v in sorted(stats['rejected_by_reason'].items()))})"
            if stats.get("rejected_by_reason")
            else ""
        )
        + f"; listed in the ingest stage's `{records.REJECTED_FILE}`.",
    ]
    names = stats.get("label_names")
    if names:
        lines.append(f"- Classes ({len(names)}): {', '.join(map(str, names))}.")
    return lines


def _training_section(config, workdir, checkpoint: dict) -> list[str]:
    t = config.train
    manifest = _read(workdir_layout.train_dir(workdir) / "manifest.json") or {}
    step = checkpoint.get("checkpoint_step")
    images = step * t.batch_size if isinstance(step, int) else None
    parent = (manifest.get("summary") or {}).get("init_from")
    fine_tuned = (
        [
            f"- Fine-tuned from `{parent.get('path')}` (step {_number(parent.get('step'))}, "
            f"{parent.get('kind')}; discriminator: {parent.get('discriminator', MISSING)}; "
            f"frozen D layers: {t.freeze_d_layers}); images seen count this run only."
        ]
        if isinstance(parent, dict)
        else []
    )
    return (
        [
            "## Model and training",
            "",
            f"- Task: `{config.task.name}`; generator width {config.model.g_width}, discriminator "
            f"width {config.model.d_width}"
            + (f", latent size {config.model.latent_dim}" if config.task.name == "generate" else "")
            + ".",
            f"- Checkpoint: step {_number(step)} ({checkpoint.get('checkpoint', MISSING)}), "
            f"{_number(images)} images seen at batch {t.batch_size}.",
            f"- Loss `{t.loss}`, Adam (G {t.g_learning_rate:g}, D {t.d_learning_rate:g}, "
            f"betas {t.beta_1:g}/{t.beta_2:g}"
            + (
                f", cosine to 0 over the last {t.lr_decay_fraction:g} of the steps"
                if t.get("lr_decay_fraction")
                else ""
            )
            + "), EMA half-life "
            + (f"{t.ema_rampup:g} × images seen, up to " if t.get("ema_rampup") else "")
            + f"{t.ema_half_life_images:g} images, "
            f"strategy `{t.strategy}`, seed {t.seed}.",
            f"- Last training run: {manifest.get('started_at', MISSING)} to "
            f"{manifest.get('finished_at', MISSING)} "
            f"({_number(manifest.get('duration_s'))} s), "
            f"package {manifest.get('package_version', MISSING)}.",
        ]
        + fine_tuned
        + _health_lines(manifest.get("summary") or {})
    )


def _health_lines(summary: dict) -> list[str]:
    """Adaptive augmentation's final strength and the training-health warnings
    (pipeline.train.health), each with its likely fix."""
    lines = []
    if summary.get("ada_p") is not None:
        lines.append(f"- Adaptive augmentation: final p {_number(summary['ada_p'])}.")
    health = summary.get("health")
    if not isinstance(health, dict):
        return lines
    warnings = health.get("warnings") or []
    if not warnings:
        return [*lines, "- Training health: no warnings (D overfitting, collapse, divergence)."]
    for w in warnings:
        lines.append(
            f"- **Training health warning**: {str(w.get('kind', '?')).replace('_', ' ')} at step "
            f"{_number(w.get('step'))} ({_number(w.get('value'))} vs threshold "
            f"{_number(w.get('threshold'))}): {w.get('fix', '')}."
        )
    return lines


def _evaluation_section(metrics: dict | None) -> list[str]:
    lines = ["## Evaluation", ""]
    if not metrics:
        return lines + [f"- {MISSING}: this version was exported without an evaluation."]
    lines.append(f"- Summary: {metrics.get('summary', MISSING)}")
    if "methods" in metrics:  # an image-to-image task: the model beside its references
        lines += ["", "| method | PSNR (dB) | SSIM | FD |", "|---|---|---|---|"]
        for name, scores in metrics["methods"].items():
            lines.append(
                f"| {name} | {_number(scores.get('psnr'))} | {_number(scores.get('ssim'))} | "
                f"{_number(scores.get('frechet_distance'))} |"
            )
        lines.append("")
    else:
        keys = ("frechet_distance", "kid_mean", "precision", "recall")
        lines.append(
            "- " + ", ".join(f"{k}: {_number(metrics.get(k))}" for k in keys if k in metrics)
        )
    if metrics.get("frechet_distance_description"):
        lines.append(f"- frechet_distance is: {metrics['frechet_distance_description']}.")
    nearest = (metrics.get("controls") or {}).get("nearest_neighbours") or {}
    if "ratio" in nearest:
        lines.append(
            f"- Memorisation check: samples' nearest-training-image distance / real eval "
            f"images' = {nearest['ratio']:.3g} (well below 1 would suggest copying)."
        )
    share = nearest.get("samples_closer_than_real_eval_5th_percentile")
    if isinstance(share, (int, float)) and not isinstance(share, bool):
        lines.append(
            f"- Near copies: {share:.1%} of samples are closer to a training image than 95% "
            f"of real eval images are (~5% for a model that does not copy; nearest_neighbours.png)."
        )
    judge = metrics.get("classifier") or {}
    lines.append(
        f"- Judge: `{metrics.get('extractor', MISSING)}` "
        f"{str(metrics.get('extractor_fingerprint', MISSING))[:12]}, eval accuracy "
        f"{_number(metrics.get('classifier_eval_accuracy', judge.get('eval_accuracy')))}."
    )
    gate = metrics.get("gate") or {}
    lines.append(
        f"- Gate: {'blessed' if metrics.get('blessed') else 'not blessed'} "
        f"({gate.get('reason', MISSING)})."
    )
    return lines


def _detector_lines(metrics: dict | None) -> list[str]:
    """The intended-use section's line on detecting this model's output without metadata: the
    detector's held-out AUCs (pipeline.evaluate.detector_eval) next to the FD."""
    found = (metrics or {}).get("detector") or {}
    if "auc_clean" not in found:
        why = found.get("note") or "no detector was trained for this version"
        return [f"- Detecting its output without metadata: not available ({why})."]
    text = (
        "- Detecting its output without metadata: the export's `detect` signature (used by "
        "`POST :verify` and `gan-verify --model` when an image carries no credentials) gives "
        "the probability that this model made an image. Held-out ROC AUC, this model's samples "
        f"vs real eval images: {found['auc_clean']:.3f} clean, {found['auc_jpeg75']:.3f} after "
        f"JPEG quality 75, {found['auc_resize0.5']:.3f} after a 0.5x resize (down and back up); "
        f"FD {_number((metrics or {}).get('frechet_distance'))}. A stronger generator makes this "
        "AUC lower: its samples are harder to tell from real images."
    )
    return [textwrap.fill(text, 100, subsequent_indent="  ", break_on_hyphens=False)]


def model_card(config, workdir, *, metrics: dict | None, checkpoint: dict) -> str:
    """The card's markdown for the model exported from `workdir`."""
    workdir = pathlib.Path(workdir)
    sections = [
        [f"# Model card: `{config.task.name}` model from `{workdir.name}`"],
        _data_section(config, workdir),
        _training_section(config, workdir, checkpoint),
        _evaluation_section(metrics),
        ["## Intended use and limitations", "", _LIMITATIONS.rstrip(), *_detector_lines(metrics)],
    ]
    return "\n".join("\n".join(section) + "\n" for section in sections)


def model_card_from_metrics_bytes(config, workdir, metrics_bytes, checkpoint) -> str:
    metrics = json.loads(metrics_bytes) if metrics_bytes is not None else None
    return model_card(config, workdir, metrics=metrics, checkpoint=checkpoint)
