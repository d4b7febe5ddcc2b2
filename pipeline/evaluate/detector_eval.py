"""The evaluate stage's detector: trains it on the generator it scores, measures it, keeps it.

One concern: `run_detector(config, workdir, out_dir, sample_fn, scored_samples, ...)` trains
gan_keras.provenance.detector's classifier on the ingested train split's real images (label
0) against fresh samples of the same `sample_fn` the stage scores (label 1; latents of seed
`evaluate.seed + 1`, so none is a scored sample), then reports its held-out AUC on the eval
split's real images (at most 5,000) against the scored samples (seed `evaluate.seed`, the
ones the FD is measured on): clean, after JPEG quality 75 and after a 0.5x resize (down and
back up). It writes the classifier to <out_dir>/detector/ (detector.keras, detector.json),
where the export stage picks it up for the `detect` signature, and returns metrics.json's
"detector" entry.

`config.evaluate.detector` (bool) turns it off; `config.evaluate.detector_steps` bounds its
training steps (a small training set stops after 5 passes).
"""

import pathlib
import time

import numpy as np
from absl import logging

from gan_keras.provenance import detector as detector_lib
from pipeline import classes, judge
from pipeline import workdir as workdir_layout

# At most this many real training images (and as many samples) train the detector: enough for
# a CNN of ~23k weights, and sampling them stays a few seconds.
MAX_TRAIN_IMAGES = 10_000
# At most this many real eval images are held out against the scored samples (a random subset
# of a larger eval split): the AUC's error at 5,000 a side is ~0.002, and each is scored 3 times.
MAX_EVAL_IMAGES = 5_000
# What the figures mean, in metrics.json.
DESCRIPTION = (
    "held-out ROC AUC of a small CNN telling this model's samples (the scored ones) from real "
    "eval images; trained on real train images vs other samples. jpeg75: both re-encoded as "
    "JPEG quality 75; resize0.5: both shrunk to half size and enlarged back (bilinear). 1.0 "
    "separates them perfectly, 0.5 is chance: a stronger generator makes it lower"
)


def validate_config(config, need) -> None:
    """The detector's fields of config.evaluate, checked with generator_eval's `need`."""
    ev = config.evaluate
    need(isinstance(getattr(ev, "detector", None), bool), "detector", "must be a bool")
    steps = getattr(ev, "detector_steps", None)
    need(
        judge.is_int(steps) and 1 <= steps <= 1_000_000,
        "detector_steps",
        "must be an integer in [1, 1000000]",
    )


def run_detector(
    config,
    workdir,
    out_dir,
    sample_fn,
    scored_samples: np.ndarray,
    *,
    conditional: bool,
    num_classes: int | None,
) -> dict:
    """Trains, measures and saves the detector (see the module docstring); returns
    metrics.json's "detector" entry, or a note when evaluate.detector is off."""
    ev = config.evaluate
    if not ev.detector:
        return {"note": "not trained (evaluate.detector=False): the export has no detect signature"}
    start = time.time()
    real = judge.read_real_data(config, workdir)
    count = min(len(real.train_images), MAX_TRAIN_IMAGES)
    chosen = np.random.default_rng([ev.seed, 11]).permutation(len(real.train_images))[:count]
    labels = None
    if conditional:  # labels as the scored samples have them: balanced over the classes
        num_classes = classes.resolve_num_classes(
            workdir_layout.ingest_dir(workdir),
            conditional=True,
            num_classes=num_classes or config.model.num_classes,
            eval_labels=real.eval_labels,
        )
        labels = judge.balanced_labels(count, num_classes, ev.seed + 1)
    logging.info("Detector: sampling %d training images", count)
    generated = np.asarray(sample_fn(count, ev.seed + 1, labels))
    model, info = detector_lib.train_detector(
        real.train_images[chosen], generated, steps=ev.detector_steps, seed=ev.seed
    )
    held_out = real.eval_images
    if len(held_out) > MAX_EVAL_IMAGES:
        keep = np.random.default_rng([ev.seed, 12]).permutation(len(held_out))[:MAX_EVAL_IMAGES]
        held_out = held_out[np.sort(keep)]
    auc = detector_lib.held_out_auc(model, held_out, np.asarray(scored_samples))
    result = {
        **auc,
        **info,
        "eval_real": int(len(held_out)),
        "eval_generated": int(len(scored_samples)),
    }
    saved = detector_lib.save_detector(
        model, pathlib.Path(out_dir) / detector_lib.STAGE_SUBDIR, result
    )
    result.update(
        weights_sha256=saved["weights_sha256"],
        path=f"{detector_lib.STAGE_SUBDIR}/{detector_lib.DETECTOR_FILE}",
        seconds=round(time.time() - start, 3),
        description=DESCRIPTION,
    )
    logging.info(
        "Detector AUC: clean %.4f, JPEG 75 %.4f, 0.5x resize %.4f (%d steps, %.1f s)",
        auc["auc_clean"],
        auc["auc_jpeg75"],
        auc["auc_resize0.5"],
        info["steps"],
        result["seconds"],
    )
    return result
