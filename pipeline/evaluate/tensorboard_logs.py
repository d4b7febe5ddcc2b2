"""The evaluate stage's TensorBoard scalars and sample grid, in the training run's log directory.

One concern: `write_summaries` logs `SCALAR_METRICS` of the model and of its reference points,
the detector's AUCs (evaluate/detector/auc_*), whether the gate blessed it, and a grid of
samples, at the step of the checkpoint scored (so the HParams table compares runs by them).
"""

import math

import numpy as np

from gan_keras import images as gan_images

# The scalar metrics logged to TensorBoard and printed by the standalone command.
SCALAR_METRICS = (
    "frechet_distance",
    "kid_mean",
    "kid_std",
    "classifier_score",
    "precision",
    "recall",
    "intra_frechet_distance",
    "generated_label_accuracy",
    "classifier_eval_accuracy",
)


def write_summaries(log_dir, metrics: dict, samples: np.ndarray | None, step: int) -> None:
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default(step=step):
        for prefix, values in [
            ("evaluate", metrics),
            *[
                (f"evaluate/{k}", v)
                for k, v in metrics.get("references", {}).items()
                if isinstance(v, dict)
            ],
        ]:
            for key in SCALAR_METRICS:
                value = values.get(key)
                if (
                    isinstance(value, (int, float))
                    and not isinstance(value, bool)
                    and math.isfinite(value)
                ):
                    tf.summary.scalar(f"{prefix}/{key}", value)
        for key, value in (metrics.get("detector") or {}).items():
            if key.startswith("auc_") and isinstance(value, float):
                tf.summary.scalar(f"evaluate/detector/{key}", value)
        if "gate" in metrics:
            tf.summary.scalar("evaluate/blessed", float(metrics["blessed"]))
        if samples is not None and len(samples):
            tf.summary.image("evaluate/samples", gan_images.make_grid(samples[:64])[None])
    writer.close()
