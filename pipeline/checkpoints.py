"""Which trained generator a workdir holds, and loading it (for evaluate, export and tests).

The train stage writes <workdir>/train/checkpoints/ (the latest few) and, with
`train.eval_every` > 0, <workdir>/train/best/: the checkpoint with the lowest
in-training FD and best.json describing it. `generator_checkpoint` says which
one a consumer should use (the best when train.eval_every > 0 and one exists,
else the latest); `load_generator_with_info` builds the generator from the
ingested data's shape and restores it (the EMA one when
train.ema_half_life_images > 0).
"""

import os
import pathlib

import keras
import tensorflow as tf
from absl import logging

from gan_keras.data import records
from gan_keras.models import architectures
from gan_keras.storage import atomic
from pipeline import classes
from pipeline import workdir as workdir_layout

# train/best/: the checkpoint with the lowest in-training FD and its record.
BEST_DIR, BEST_FILE = "best", "best.json"
CHECKPOINT_BEST, CHECKPOINT_LATEST = "best by in-training FD", "latest"
# train/l1_reference/: the L1-only model an image-to-image task is compared with.
L1_REFERENCE_DIR = "l1_reference"
# train/logs/: the run's TensorBoard run, holding its HParams session; the evaluate stage logs
# its metrics there too, so the HParams table shows each run's evaluation beside its config.
LOGS_DIR = "logs"


def checkpoint_step(path: str) -> int:
    # Both managers save with checkpoint_number=step: ".../ckpt-<step>".
    return int(path.rsplit("-", 1)[1])


def read_best_record(best_dir) -> dict | None:
    """best/best.json when it describes the checkpoint in best/ (None if either is missing or they
    disagree, e.g. after a crash between saving the checkpoint and writing the record)."""
    best_dir = pathlib.Path(best_dir)
    latest = tf.train.latest_checkpoint(str(best_dir))
    path = best_dir / BEST_FILE
    if latest is None or not path.exists():
        return None
    try:
        record = atomic.read_json(path)
    except (OSError, ValueError) as e:
        logging.warning("Ignoring unreadable %s: %s", path, e)
        return None
    if not isinstance(record, dict) or record.get("checkpoint") != os.path.basename(latest):
        logging.warning("%s does not describe %s; ignoring it", path, latest)
        return None
    return record


def select_checkpoint(train_dir, *, prefer_best: bool) -> dict:
    """The checkpoint a train directory offers: its best by in-training FD (best/) when
    `prefer_best` and one exists, else its latest. {'checkpoint': kind, 'checkpoint_step',
    'checkpoint_path', and 'in_training_eval' (best.json) for the best one}."""
    train_dir = pathlib.Path(train_dir)
    best = tf.train.latest_checkpoint(str(train_dir / BEST_DIR)) if prefer_best else None
    if best is not None:
        info = {
            "checkpoint": CHECKPOINT_BEST,
            "checkpoint_step": checkpoint_step(best),
            "checkpoint_path": best,
        }
        record = read_best_record(train_dir / BEST_DIR)
        if record is not None:
            info["in_training_eval"] = record
        return info
    ckpt_dir = train_dir / "checkpoints"
    latest = tf.train.latest_checkpoint(str(ckpt_dir))
    if latest is None:
        raise FileNotFoundError(f"no checkpoint in {ckpt_dir} (run the train stage first)")
    return {
        "checkpoint": CHECKPOINT_LATEST,
        "checkpoint_step": checkpoint_step(latest),
        "checkpoint_path": latest,
    }


def generator_checkpoint(config, workdir, model_dir: str = "") -> dict:
    """Which checkpoint `load_generator` restores: the best by in-training FD (train/best/) when
    train.eval_every > 0 and one exists, else the latest (see `select_checkpoint`)."""
    return select_checkpoint(
        workdir_layout.train_dir(workdir) / model_dir, prefer_best=config.train.eval_every > 0
    )


def load_generator_with_info(config, workdir, model_dir: str = "") -> tuple[keras.Model, dict]:
    """The trained generator (the EMA one when train.ema_half_life_images > 0) from the workdir's
    best checkpoint (train.eval_every > 0) or latest one, and `generator_checkpoint`'s description.
    `model_dir`: a model trained beside the main one, e.g. L1_REFERENCE_DIR."""
    workdir = pathlib.Path(workdir)
    ingest_dir = workdir_layout.ingest_dir(workdir)
    stats = records.read_stats(ingest_dir)
    num_classes = classes.resolve_num_classes(
        ingest_dir, conditional=config.model.conditional, num_classes=config.model.num_classes
    )
    generator, _ = architectures.build_networks(
        config, resolution=stats["resolution"], channels=stats["channels"], num_classes=num_classes
    )
    info = generator_checkpoint(config, workdir, model_dir)
    key = "ema_generator" if config.train.ema_half_life_images > 0 else "generator"
    path = info["checkpoint_path"]
    tf.train.Checkpoint(**{key: generator}).restore(
        path
    ).expect_partial().assert_existing_objects_matched()
    fd = info.get("in_training_eval", {}).get("frechet_distance")
    logging.info(
        "Restored %s of step %d (%s%s) from %s",
        key,
        info["checkpoint_step"],
        info["checkpoint"],
        f" {fd:.4g}" if fd is not None else "",
        path,
    )
    return generator, {**info, "generator": key}


def load_generator(config, workdir) -> keras.Model:
    """The generator of `load_generator_with_info`, without the description."""
    return load_generator_with_info(config, workdir)[0]
