"""The "towards class X" latent edit directions, fitted with the judge: one home for two stages.

The evaluate stage measures the directions (pipeline.evaluate.control_metrics: how often an
edit along towards_X makes the judge predict X) and the export stage ships them in the
SavedModel's ``edit`` signature (gan_keras.export.sampling_model.export_generator); both fit
them here, with the same judge, seed and samples, so the exported directions are the ones the
evaluation measured.

Class directions (unconditional generators, labelled data): z is drawn from
N(0, I), so by Stein's lemma Cov(z, p_X(G(z))) = E[grad_z p_X(G(z))]: the
covariance of the latents with the judge's probability of class X is the
average gradient of that probability. It is estimated from
`DIRECTION_FIT_SAMPLES` samples, with no training and no gradient through the
generator or the judge, and normalised. (Equivalently: the
probability-weighted mean latent minus the mean latent.) Classes the
generator rarely makes, or whose estimate is not above sampling noise, get no
direction. Conditional generators get none: their label input chooses the
class, so there is no z direction towards a class to fit.

The evaluate stage calls `class_directions_with_info`; the export stage calls
`export_directions`, which fits the same directions with the judge the evaluation used (same
seed, same samples) and passes them to gan_keras.export.sampling_model.export_generator.
"""

import json
import math
import re

import numpy as np
from absl import logging

from gan_keras.controls import latent_space
from gan_keras.data import records
from gan_keras.evaluation import feature_extractors
from gan_keras.storage import atomic
from pipeline import latent_images
from pipeline import workdir as workdir_layout

# Latents the class directions are fitted on (both stages use the same, so the
# exported directions are the ones the evaluation measured).
DIRECTION_FIT_SAMPLES = 4096
# A class needs this many of them predicted as it, and an estimate this many times the
# norm that sampling noise alone gives, to get a direction.
MIN_CLASS_SAMPLES = 10
MIN_SIGNAL_TO_NOISE = 2.0
DIRECTION_PREFIX = "towards_"
METHOD = (
    "Stein: Cov(z, p_X(G(z))) = E[grad_z p_X(G(z))] for z ~ N(0, I), the average gradient "
    "of the judge's class-X probability, from the judge's predictions on generated samples"
)
CONDITIONAL_NOTE = (
    "not fitted: the model is conditional, so its label input chooses the class and "
    "there is no direction in z towards a class (set the label; the interpolate "
    "signature morphs between classes)"
)
UNLABELLED_NOTE = "not fitted: the data is unlabelled, so the judge predicts rotations, not classes"

# Seed stream of the fit's latents (pipeline.judge and pipeline.evaluate use 0-3 and
# pipeline.evaluate.control_metrics 11-13, with the same seed).
_FIT_STREAM = 10


def _direction_names(class_names, num_classes: int) -> list[str]:
    """towards_<class name> with the name made identifier-like; unique; index if nameless."""
    names, used = [], set()
    for c in range(num_classes):
        raw = str(class_names[c]) if class_names is not None and c < len(class_names) else str(c)
        name = DIRECTION_PREFIX + (re.sub(r"[^0-9A-Za-z_.-]+", "_", raw).strip("_") or str(c))
        if name in used:
            name = f"{name}_{c}"
        used.add(name)
        names.append(name)
    return names


def class_directions_with_info(
    generator,
    judge,
    latent_dim: int,
    num_classes: int,
    *,
    class_names=None,
    num_samples: int = DIRECTION_FIT_SAMPLES,
    seed: int = 0,
    batch_size: int = 256,
) -> tuple[dict, dict]:
    """(`class_directions`' {name: unit vector}, a description for metrics/model_info).

    `num_classes` is the model's (0: unconditional); the classes are the judge's. The vectors
    live in the generator's `latent_space.ControlSpace`: z [latent_dim], or w [w_dim] for a
    generator with a mapping network.
    """
    if num_classes > 0:
        return {}, {"skipped": CONDITIONAL_NOTE}
    if not judge.has_class_probs:
        return {}, {"skipped": UNLABELLED_NOTE}
    z = np.random.default_rng([seed, _FIT_STREAM]).standard_normal((num_samples, latent_dim))
    probs = judge.predict(
        latent_images.generate(generator, z.astype(np.float32), batch_size=batch_size)
    )[1]
    assigned = np.bincount(np.argmax(probs, axis=1), minlength=probs.shape[1])
    space = latent_space.ControlSpace(generator, latent_dim)
    latents = np.asarray(
        latent_images.space_latents(space, z.astype(np.float32), batch_size), np.float64
    )
    if space.name == "z":
        latents, total_variance = z, float(latent_dim)  # the prior's, N(0, I)
    else:  # w has no closed form: its samples' total variance
        total_variance = float(np.sum(np.var(latents, axis=0)))
    centred = latents - latents.mean(axis=0)
    directions, per_class = {}, {}
    for c, name in enumerate(_direction_names(class_names, probs.shape[1])):
        p = probs[:, c] - probs[:, c].mean()
        # Cov(z, p_c) = E[grad p_c] in z (Stein's lemma); in w, the p_c-weighted shift of w.
        gradient = centred.T @ p / num_samples
        norm = float(np.linalg.norm(gradient))
        # Its expected norm if p_c did not depend on the latent: sqrt(tr Cov * Var(p_c) / N).
        noise = math.sqrt(total_variance * float(np.mean(p * p)) / num_samples)
        entry = {
            "class": c,
            "class_name": str(class_names[c])
            if class_names is not None and c < len(class_names)
            else str(c),
            "predicted_fraction": float(assigned[c] / num_samples),
            "mean_gradient_norm": norm,
            "signal_to_noise": float(norm / noise) if noise > 0 else 0.0,
        }
        if assigned[c] < MIN_CLASS_SAMPLES:
            entry["skipped"] = (
                f"the judge saw this class in {int(assigned[c])} of {num_samples} "
                f"samples (< {MIN_CLASS_SAMPLES})"
            )
        elif entry["signal_to_noise"] < MIN_SIGNAL_TO_NOISE:
            entry["skipped"] = (
                f"estimate {entry['signal_to_noise']:.2f}x its sampling noise "
                f"(< {MIN_SIGNAL_TO_NOISE:g}x)"
            )
        else:
            directions[name] = (gradient / norm).astype(np.float32)
        per_class[name] = entry
    info = {
        "method": METHOD,
        "space": space.name,
        "num_samples": int(num_samples),
        "seed": int(seed),
        "judge_fingerprint": judge.fingerprint,
        "fitted": sorted(directions),
        "classes": per_class,
    }
    return directions, info


def class_directions(generator, judge, latent_dim: int, num_classes: int, **kwargs) -> dict:
    """{"towards_<class>": unit vector [latent_dim] float32} for an unconditional generator and
    a judge trained on labelled data ({} otherwise); see `class_directions_with_info`."""
    return class_directions_with_info(generator, judge, latent_dim, num_classes, **kwargs)[0]


def export_directions(
    config, workdir, generator, num_classes: int, metrics_bytes: bytes | None
) -> tuple[dict | None, dict]:
    """The export stage's hook: (directions for export_generator or None, {"class_directions":
    description} for model_info.json).

    Fitted as the evaluate stage fitted them (same judge, seed and samples), with the judge the
    evaluation in `metrics_bytes` used, loaded from <workdir>/judge/ when its fingerprint is
    that one. Nothing is read or trained otherwise: the export then has no class directions,
    and model_info says why.
    """

    def skipped(reason):
        logging.info("No class directions in the export: %s", reason)
        return None, {"class_directions": {"skipped": reason}}

    if num_classes > 0:
        return skipped(CONDITIONAL_NOTE)
    try:
        evaluated = json.loads(metrics_bytes) if metrics_bytes is not None else {}
        fingerprint = (evaluated.get("classifier") or {}).get("fingerprint")
    except (ValueError, AttributeError):
        fingerprint = None
    if not fingerprint:
        return skipped("no evaluation naming its judge (run the evaluate stage)")
    judge_dir = workdir_layout.judge_dir(workdir)
    info_path = judge_dir / feature_extractors.CLASSIFIER_INFO_FILE
    try:
        cached = atomic.read_json(info_path).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        cached = None
    if cached != fingerprint:
        return skipped(
            f"{judge_dir} is not the judge the evaluation used (rerun the evaluate stage)"
        )
    judge = feature_extractors.DomainClassifier.load(judge_dir)
    class_names = records.read_label_names(workdir_layout.ingest_dir(workdir))
    directions, info = class_directions_with_info(
        generator,
        judge,
        int(config.model.latent_dim),
        num_classes,
        class_names=class_names,
        seed=config.evaluate.seed,
        batch_size=config.evaluate.sample_batch_size,
    )
    logging.info(
        "Class directions for the edit signature: %s", info.get("fitted") or info.get("skipped")
    )
    return directions or None, {"class_directions": info}
