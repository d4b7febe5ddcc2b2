"""Where each stage's artifacts live in a pipeline work directory.

    <workdir>/ingest/     shards, stats.json, labels.json, rejected.jsonl (gan_keras.data.records)
    <workdir>/train/      checkpoints/, best/, samples/, logs/ (TensorBoard)
    <workdir>/judge/      the domain classifier shared by train and evaluate
    <workdir>/evaluate/   metrics.json (with the export gate), plots (TensorBoard: train/logs/)
    <workdir>/export/generator/<version>/   SavedModels (gan_keras.export.layout)
    <workdir>/<stage>.failed/   what a failed ingest or evaluate wrote (reject report,
                                statistics) and manifest.json with the error; the
                                stage's own directory keeps its last good output

A stage's directory is named after the stage (pipeline.stages); the functions
below are the one place that spells the paths other stages read. A workdir is a
local path or an object-store URL (gan_keras.storage.filesystem); the paths returned are
`pathlib.Path`s or `filesystem.ObjectPath`s accordingly.
"""

import pathlib

from gan_keras.storage import filesystem

INGEST, TRAIN, EVALUATE, EXPORT = "ingest", "train", "evaluate", "export"
JUDGE_DIR = "judge"
METRICS_FILE = "metrics.json"
EXPORTED_MODEL_NAME = "generator"  # export/<name>/, also the model server's default name


def stage_dir(workdir, stage: str) -> pathlib.Path | filesystem.ObjectPath:
    return filesystem.path(workdir, "workdir") / stage


def failed_dir(workdir, stage: str) -> pathlib.Path | filesystem.ObjectPath:
    """Where a failed staged stage's partial output is kept (removed by its next success)."""
    return filesystem.path(workdir, "workdir") / f"{stage}.failed"


def ingest_dir(workdir) -> pathlib.Path | filesystem.ObjectPath:
    return stage_dir(workdir, INGEST)


def train_dir(workdir) -> pathlib.Path | filesystem.ObjectPath:
    return stage_dir(workdir, TRAIN)


def judge_dir(workdir) -> pathlib.Path | filesystem.ObjectPath:
    return filesystem.path(workdir, "workdir") / JUDGE_DIR


def metrics_path(workdir) -> pathlib.Path | filesystem.ObjectPath:
    """The evaluate stage's metrics.json, which holds the export gate."""
    return stage_dir(workdir, EVALUATE) / METRICS_FILE


def export_base_path(workdir) -> pathlib.Path | filesystem.ObjectPath:
    """The model base path a TF Serving-style server watches."""
    return stage_dir(workdir, EXPORT) / EXPORTED_MODEL_NAME
