"""Training health: D overfitting, mode collapse and divergence, detected while training.

A GAN that has gone wrong rarely fails: its losses stay finite, the stage finishes and the
samples are blobs. These checks run in the train loop and say so when it happens:

- **D overfitting** (the ADA paper's signs): r_t = E[sign(D(real))] near 1 means D calls
  nearly every training image real, and the gap between the share of training images and of
  held-out real images D calls real means it has memorised the training set rather than
  learned what real looks like. Fix, by the run (`overfitting_fix`): past 250 passes over the
  images adaptive augmentation (train.ada_target=0.6), under them more data (ADA measured no
  better there, and the export takes the best in-training checkpoint), with ADA on a lower
  target.
- **Mode collapse**: the generator's samples for fixed latents are much closer to each other
  than real images are (nearest-neighbour distances in pixel space, as a ratio to the real
  images'), and closer than earlier in the run. Fix: a lower learning rate, EMA, R1.
- **Divergence**: gradient norms exploding (over DIVERGENCE_FACTOR x their running median).
  Non-finite losses stop the run (train.loop.TrainingDivergedError) and keep the last good
  checkpoint, so a diverged run never exports what it became.

Each value is a TensorBoard scalar (health/*). A check that trips logs one warning with its
likely fix and is recorded in the train manifest's `health` section, which the model card
shows and the gate reads: a collapsed run is not blessed.
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf
from absl import logging

from gan_keras import images as gan_images
from gan_keras import tasks
from gan_keras.data import input_pipeline, records
from gan_keras.training import ada

# Thresholds, measured on Noto Emoji and Fashion-MNIST runs (docs/your-own-images.md):
# healthy runs keep r_t around 0.2-0.7 and the held-out gap under 0.15; the emoji DCGAN that
# memorised its 1,531 images reached r_t 1.0 and a gap of 0.5+ by step 2,000.
# D overfits when the gap between the shares of training and of held-out real images it calls
# real reaches OVERFIT_GAP, or OVERFIT_GAP_CONFIDENT while r_t >= OVERFIT_SIGN (a D that calls
# almost every training image real). r_t alone is no proof: a D that is merely winning has it
# high on training and held-out images alike.
OVERFIT_SIGN = 0.9
OVERFIT_GAP = 0.3
OVERFIT_GAP_CONFIDENT = 0.15
COLLAPSE_RATIO = 0.25  # sample nearest-neighbour distance / the real images'
COLLAPSE_DROP = 0.5  # ... and under this fraction of the best ratio seen in the run
DIVERGENCE_FACTOR = 100.0  # gradient norm over this x its running median
# Images each check uses (pixels downsampled to at most DIVERSITY_SIZE per side).
CHECK_IMAGES = 256
DIVERSITY_SIZE = 16

FIXES = {
    "d_overfitting": (
        "D is memorising the training images: turn on adaptive augmentation "
        "(--config.train.ada_target=0.6), add "
        "images, or train fewer steps"
    ),
    "mode_collapse": (
        "the generator's samples are collapsing onto a few images: lower the learning rates, "
        "use an EMA generator (train.ema_half_life_images) or R1 (train.r1_gamma)"
    ),
    "divergence": (
        "gradient norms are exploding: lower the learning rates, or use R1 (train.r1_gamma) "
        "or spectral norm (model.spectral_norm)"
    ),
}


@dataclasses.dataclass
class Warning_:
    kind: str
    step: int
    value: float
    threshold: float
    fix: str

    def message(self) -> str:
        return (
            f"training health: {self.kind.replace('_', ' ')} at step {self.step} "
            f"({self.value:.3g} vs threshold {self.threshold:.3g}): {self.fix}"
        )


def _downsample(images: np.ndarray) -> np.ndarray:
    """[N, H, W, C] -> [N, features]: average-pooled to at most DIVERSITY_SIZE per side."""
    images = np.asarray(images, np.float32)
    n, h, w, c = images.shape
    factor = max(1, math.ceil(max(h, w) / DIVERSITY_SIZE))
    h2, w2 = h // factor, w // factor
    pooled = images[:, : h2 * factor, : w2 * factor].reshape(n, h2, factor, w2, factor, c)
    return pooled.mean(axis=(2, 4)).reshape(n, -1)


def nearest_neighbour_distances(images: np.ndarray) -> np.ndarray:
    """Each image's L2 distance to its nearest other image in the set (downsampled pixels)."""
    x = _downsample(images).astype(np.float64)
    sq = (x * x).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None] - 2 * x @ x.T, 0.0)
    np.fill_diagonal(d2, np.inf)
    return np.sqrt(d2.min(axis=1))


def diversity_ratio(samples: np.ndarray, reals: np.ndarray) -> float:
    """Median nearest-neighbour distance among samples / among as many real images: ~1 for a
    generator as varied as the data, 0 when every sample is the same image."""
    real = float(np.median(nearest_neighbour_distances(reals)))
    fake = float(np.median(nearest_neighbour_distances(samples)))
    return fake / max(real, 1e-12)


def called_real(logits) -> float:
    """The share of images D calls real (logit > 0)."""
    return float(np.mean(np.asarray(logits, np.float64) > 0))


def overfitting_fix(config, train_images: int) -> str:
    """What to do when D memorises, for this run: its ADA setting and its length in passes over
    the train images decide whether ADA is the fix (measured: it held the FD past 250 passes on
    Noto Emoji and Oxygen icons, and was no better below)."""
    t = config.train
    passes = int(t.steps) * int(t.batch_size) / max(int(train_images), 1)
    best = (
        "; the export takes the checkpoint with the best in-training FD, so a later decline "
        "is not exported"
        if int(t.get("eval_every", 0) or 0) > 0
        else ""
    )
    if float(t.get("ada_target", 0.0) or 0.0) > 0:
        return (
            f"D is memorising the training images despite ADA (target r_t {t.ada_target}): "
            "lower train.ada_target (e.g. 0.5), add images, or train fewer steps" + best
        )
    if passes <= ada.PAYS_OFF_PASSES:
        return (
            f"D is memorising the {train_images:,} training images, as it does on small "
            f"folders within this run's {passes:.0f} passes{best}. Adaptive augmentation "
            f"(--config.train.ada_target=0.6) pays off for runs past {ada.PAYS_OFF_PASSES} "
            "passes, where the FD without it rose 65-95% on two colour folders; at this "
            "length it measured no better (docs/your-own-images.md). More images help at any "
            "length"
        )
    return (
        f"D is memorising the {train_images:,} training images over {passes:.0f} passes: turn on "
        "adaptive augmentation (--config.train.ada_target=0.6; it held the FD past "
        f"{ada.PAYS_OFF_PASSES} passes where it otherwise rose 65-95%), add images, or train "
        "fewer steps" + best
    )


class HealthMonitor:
    """Collects the health values of one run, warns once per kind, and summarises them.
    `fixes` overrides FIXES' advice per kind (the overfitting advice depends on the run)."""

    def __init__(self, fixes: dict[str, str] | None = None):
        self.fixes = {**FIXES, **(fixes or {})}
        self.values: dict[str, float] = {}
        self.warnings: list[Warning_] = []
        self._best_diversity = 0.0
        self._grad_norms: dict[str, list[float]] = {}
        self._r_t = 0.0  # the last log window's E[sign(D(real))]

    def _trip(self, kind: str, step: int, value: float, threshold: float) -> None:
        if any(w.kind == kind for w in self.warnings):
            return
        warning = Warning_(kind, int(step), float(value), float(threshold), self.fixes[kind])
        self.warnings.append(warning)
        logging.warning("%s", warning.message())

    def observe_metrics(self, step: int, metrics: dict) -> dict:
        """From a log window's train metrics: r_t and gradient-norm explosions."""
        out = {}
        if "d_real_sign" in metrics:
            self._r_t = float(metrics["d_real_sign"])
            out["health/r_t"] = self._r_t
        for name in ("d_grad_norm", "g_grad_norm"):
            if name not in metrics:
                continue
            value = float(metrics[name])
            history = self._grad_norms.setdefault(name, [])
            if history:
                median = float(np.median(history))
                ratio = value / max(median, 1e-12) if math.isfinite(value) else math.inf
                out[f"health/{name}_ratio"] = ratio
                if ratio > DIVERGENCE_FACTOR:
                    self._trip("divergence", step, ratio, DIVERGENCE_FACTOR)
            if math.isfinite(value):
                history.append(value)
        self.values.update(out)
        return out

    def observe_discriminator(self, step: int, train_logits, heldout_logits) -> dict:
        """D's calls on training vs held-out real images (both un-augmented)."""
        train, heldout = called_real(train_logits), called_real(heldout_logits)
        gap = train - heldout
        out = {
            "health/d_train_called_real": train,
            "health/d_heldout_called_real": heldout,
            "health/d_overfit_gap": gap,
        }
        threshold = OVERFIT_GAP_CONFIDENT if self._r_t >= OVERFIT_SIGN else OVERFIT_GAP
        if gap >= threshold:
            self._trip("d_overfitting", step, gap, threshold)
        self.values.update(out)
        return out

    def observe_samples(self, step: int, samples: np.ndarray, reals: np.ndarray) -> dict:
        """Sample diversity against the real images'."""
        ratio = diversity_ratio(samples, reals)
        out = {"health/diversity_ratio": ratio}
        if ratio < COLLAPSE_RATIO and ratio < COLLAPSE_DROP * self._best_diversity:
            self._trip("mode_collapse", step, ratio, COLLAPSE_RATIO)
        self._best_diversity = max(self._best_diversity, ratio)
        self.values.update(out)
        return out

    def summary(self) -> dict:
        """The train manifest's `health` section."""
        return {
            "ok": not self.warnings,
            "warnings": [dataclasses.asdict(w) for w in self.warnings],
            "last_values": {k: round(v, 4) for k, v in sorted(self.values.items())},
            "thresholds": {
                "overfit_sign": OVERFIT_SIGN,
                "overfit_gap": OVERFIT_GAP,
                "overfit_gap_confident": OVERFIT_GAP_CONFIDENT,
                "collapse_ratio": COLLAPSE_RATIO,
                "divergence_factor": DIVERGENCE_FACTOR,
            },
        }


class TrainingHealth:
    """The checks as the train loop runs them, on fixed images read once before the first step:
    `on_log` with each log window's metrics, `on_sample` with each sample grid (D's calls on
    CHECK_IMAGES training and held-out images, and the diversity of CHECK_IMAGES samples for
    fixed latents). Image-to-image tasks get the gradient-norm checks only: their D judges
    (condition, output) pairs, and their outputs are meant to follow the conditions."""

    def __init__(self, config, ingest_dir, stats: dict, num_classes: int):
        train_images = records.split_count(stats, records.TRAIN)
        self.monitor = HealthMonitor({"d_overfitting": overfitting_fix(config, train_images)})
        self.generative = not tasks.is_image_to_image(config.task)
        self.train_real = self.heldout_real = None
        if not self.generative:
            return
        shape = dict(resolution=config.data.resolution, channels=config.data.channels)
        train, train_labels = input_pipeline.read_split(
            ingest_dir, records.TRAIN, CHECK_IMAGES, **shape
        )
        self.train_real = self._batch(train, train_labels, num_classes)
        self._reals = self.train_real[0].numpy()  # diversity's reference, as floats
        if records.EVAL in stats.get("splits", {}) and records.split_count(stats, records.EVAL):
            heldout, heldout_labels = input_pipeline.read_split(
                ingest_dir, records.EVAL, CHECK_IMAGES, **shape
            )
            self.heldout_real = self._batch(heldout, heldout_labels, num_classes)
        n = len(train)
        self.z = tf.random.stateless_normal(
            [n, config.model.latent_dim], seed=[config.train.seed, 104729]
        )
        self.labels = self.train_real[1]  # samples of the training images' classes

    @staticmethod
    def _batch(images, labels, num_classes):
        labels = tf.constant(np.clip(labels, 0, None), tf.int32) if num_classes else None
        return tf.constant(gan_images.to_float(images)), labels

    def on_log(self, step: int, metrics: dict) -> dict:
        return self.monitor.observe_metrics(step, metrics)

    def on_sample(self, step: int, model) -> dict:
        if not self.generative:
            return {}
        out = {}
        if self.heldout_real is not None:
            out.update(
                self.monitor.observe_discriminator(
                    step,
                    model.discriminate(*self.train_real).numpy(),
                    model.discriminate(*self.heldout_real).numpy(),
                )
            )
        samples = tf.cast(model.sample(self.z, self.labels), tf.float32).numpy()
        out.update(self.monitor.observe_samples(step, samples, self._reals))
        return out

    def summary(self) -> dict:
        return self.monitor.summary()
