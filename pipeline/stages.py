"""The pipeline's stages, registered by name in pipeline order.

A stage is one `Stage` object: which config sections and upstream stages its
output depends on, which files are its output, and two functions,
``validate(config)`` (raise ValueError naming the bad field, do no work) and
``run(context) -> summary dict``. The runner (pipeline.runner) looks stages up
here and does the rest: validation before any work, caching, manifests,
staged directories. Adding a stage is a module with those two functions and
one `register(Stage(...))` below.

The stage modules are imported when a stage is validated or run, not when
this module is: importing the trainer means importing TensorFlow.
"""

import dataclasses
import datetime
import pathlib
import shutil
from collections.abc import Callable
from typing import Any

from absl import logging

from gan_keras import records


class PipelineError(RuntimeError):
    """A stage cannot run: missing inputs, incompatible state, bad config."""


@dataclasses.dataclass(frozen=True)
class Context:
    """What a stage's run function gets."""

    config: Any  # the whole ml_collections config
    workdir: pathlib.Path  # the pipeline's workdir; upstream outputs are in workdir/<stage>
    out_dir: pathlib.Path  # where to write: workdir/<name>, or its temporary sibling when staged
    force: bool = False  # --force: rerun even if up to date
    force_export: bool = False  # --force_export or config.export.force
    beam_pipeline_args: tuple[str, ...] = ()  # --beam_pipeline_args, split


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    sections: tuple[str, ...]  # config sections that determine the output (fingerprinted)
    inputs: tuple[str, ...]  # upstream stages whose outputs it reads
    outputs: tuple[str, ...]  # globs, relative to workdir/<name>, that are its output
    staged: bool  # written to a temporary sibling directory that is renamed into place
    validate: Callable[[Any], None]  # validate(config)
    run: Callable[[Context], dict]  # run(context) -> summary, kept in the manifest
    # Context fields that change the output, fingerprinted with the config sections.
    options: tuple[str, ...] = ()
    # prepare(context, previous manifest or None, {"config", "inputs"} now): runs before
    # the stage when it is not up to date; raises PipelineError to refuse.
    prepare: Callable[[Context, dict | None, dict], None] | None = None
    # is_chief(config): False on the other workers of a multi-worker run, which
    # run the stage but leave workdir/<name> (manifest, --force moves) to the chief.
    is_chief: Callable[[Any], bool] = lambda config: True


_REGISTRY: dict[str, Stage] = {}


def register(stage: Stage) -> Stage:
    if stage.name in _REGISTRY:
        raise ValueError(f"stage {stage.name!r} is registered twice")
    unknown = [name for name in stage.inputs if name not in _REGISTRY]
    if unknown:
        raise ValueError(f"stage {stage.name!r} reads {unknown}, not registered before it")
    _REGISTRY[stage.name] = stage
    return stage


def names() -> tuple[str, ...]:
    """Every stage, in pipeline order."""
    return tuple(_REGISTRY)


def get(name: str) -> Stage:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise PipelineError(f"unknown stage {name!r}; stages are {', '.join(_REGISTRY)}") from None


# --- ingest -----------------------------------------------------------------


def _validate_ingest(config):
    from pipeline import ingest_config

    ingest_config.validate_config(config.data)


def _run_ingest(context):
    from pipeline import ingest

    return ingest.run_ingest(context.config.data, context.out_dir, list(context.beam_pipeline_args))


register(Stage(
    name="ingest", sections=("data",), inputs=(),
    outputs=(records.shard_pattern(), records.STATS_FILE, records.LABELS_FILE,
             records.REJECTED_FILE),
    staged=True,
    validate=_validate_ingest, run=_run_ingest))


# --- train ------------------------------------------------------------------
#
# Adapters to pipeline/train.py's own signatures; they fold into that module
# once it exposes validate(config), run(context), is_chief(config) and prepare.

# Train fields that may change between runs without invalidating checkpoints:
# raising train.steps continues training from the last checkpoint.
_RESUMABLE_TRAIN_FIELDS = {"train.steps", "train.log_every", "train.sample_every",
                           "train.checkpoint_every", "train.keep_checkpoints", "train.strategy",
                           "train.jit_compile", "train.eval_every", "train.eval_num_samples"}


def _validate_train(config):
    from pipeline import train

    train.validate_config(config)


def _run_train(context):
    from pipeline import train

    return train.run_train(context.config, context.workdir)


def _train_is_chief(config):
    from pipeline import train

    return train.is_chief_process(config)


def _prepare_train(context, previous, current):
    """Resume when compatible; refuse to mix checkpoints of another model or data."""
    stage_dir = context.workdir / "train"
    if not any((stage_dir / "checkpoints").glob("*.index")):
        return
    if context.force:
        aside = stage_dir.with_name(f"train.replaced-{datetime.datetime.now():%Y%m%d-%H%M%S}")
        shutil.move(str(stage_dir), str(aside))
        logging.warning("[train] --force: previous training moved to %s; starting from scratch",
                        aside)
        return
    if previous is None:
        raise PipelineError(f"{stage_dir} holds checkpoints but no manifest.json; "
                            "cannot tell what produced them (use --force to start over)")
    old, new = previous.get("config", {}), current["config"]
    changed = [k for k in sorted(set(old) | set(new))
               if old.get(k) != new.get(k) and k not in _RESUMABLE_TRAIN_FIELDS]
    if changed:
        raise PipelineError(
            f"{stage_dir} holds checkpoints of a different configuration "
            f"(changed: {', '.join(changed)}); use --force to start training over (the old run is "
            "kept aside) or another --workdir")
    if previous.get("inputs") != current["inputs"]:
        raise PipelineError(
            f"{stage_dir} holds checkpoints trained on different ingested data; "
            "use --force to start training over or another --workdir")


register(Stage(
    name="train", sections=("data", "model", "train"), inputs=("ingest",),
    outputs=("checkpoints/*",), staged=False,
    validate=_validate_train, run=_run_train, prepare=_prepare_train, is_chief=_train_is_chief))


# --- evaluate ---------------------------------------------------------------
#
# Adapters to pipeline/evaluate.py's signatures (run_evaluate(config, workdir,
# out_dir)); they fold into that module once it exposes run(context).


def _validate_evaluate(config):
    from pipeline import evaluate

    evaluate.validate_config(config)


def _run_evaluate(context):
    from pipeline import evaluate

    return evaluate.run_evaluate(context.config, context.workdir, context.out_dir)


register(Stage(
    name="evaluate", sections=("model", "train", "evaluate"), inputs=("ingest", "train"),
    outputs=("metrics.json",), staged=True,
    validate=_validate_evaluate, run=_run_evaluate))


# --- export -----------------------------------------------------------------
#
# Adapters to pipeline/export.py's signatures (run_export(config, workdir,
# out_dir, force_export=...)); they fold into that module once it exposes
# run(context).


def _validate_export(config):
    from pipeline import export

    export.validate_config(config)


def _run_export(context):
    from pipeline import export

    return export.run_export(context.config, context.workdir, context.out_dir,
                             force_export=context.force_export)


register(Stage(
    name="export", sections=("model", "export"), inputs=("train", "evaluate"),
    outputs=("generator/*/saved_model.pb",), staged=False,
    validate=_validate_export, run=_run_export, options=("force_export",)))
