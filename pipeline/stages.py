"""The pipeline's stages, registered by name in pipeline order.

A stage is one `Stage` object: which config sections and upstream stages its
output depends on, which files are its output, and two functions,
``validate(config)`` (raise ValueError naming the bad field, do no work) and
``run(context) -> summary dict``. The runner (pipeline.runner) looks stages up
here and does the rest: validation before any work, caching, manifests,
staged directories. Adding a stage is a module exposing
``validate_config(config)`` and ``run(context)`` and one `register(Stage(...))`
below, its functions named with `hook`, e.g.

    register(Stage(name="deploy", sections=("deploy",), inputs=("export",),
                   outputs=("endpoint.json",), staged=True,
                   validate=hook("pipeline.deploy", "validate_config"),
                   run=hook("pipeline.deploy", "run")))

`hook` imports the stage module when a stage is validated or run, not when
this module is: importing the trainer means importing TensorFlow.
"""

import dataclasses
import importlib
import pathlib
from collections.abc import Callable
from typing import Any

from gan_keras.data import records
from gan_keras.export import layout
from pipeline.workdir import EVALUATE, EXPORT, EXPORTED_MODEL_NAME, INGEST, METRICS_FILE, TRAIN


class PipelineError(RuntimeError):
    """A stage cannot run: missing inputs, incompatible state, bad config."""


def no_sync() -> None:
    """`Context.sync` of a local workdir, and of a non-chief worker."""


@dataclasses.dataclass(frozen=True)
class Context:
    """What a stage's run function gets."""

    config: Any  # the whole ml_collections config
    workdir: pathlib.Path  # the pipeline's workdir; upstream outputs are in workdir/<stage>
    out_dir: pathlib.Path  # where to write: workdir/<name>, or its temporary sibling when staged
    force: bool = False  # --force: rerun even if up to date
    force_export: bool = False  # --force_export or config.export.force
    beam_pipeline_args: tuple[str, ...] = ()  # --beam_pipeline_args, split
    # Publishes what the stage wrote so far (an object-store workdir's working copy is pushed,
    # commit files last); the train stage calls it after each checkpoint, so a killed run
    # resumes from the store. A no-op for a local workdir.
    sync: Callable[[], None] = no_sync


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
    # For an object-store workdir: True when the stage reads and writes through
    # gan_keras.storage.filesystem itself (its out_dir is then a prefix in the store; ingest, whose
    # Beam workers may run on other machines), False when it works in the runner's local
    # working copy of the workdir.
    object_store_io: bool = False


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


def hook(module: str, function: str) -> Callable:
    """`module.function`, imported when first called (stage modules import TensorFlow)."""

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module), function)(*args, **kwargs)

    call.__name__ = call.__qualname__ = f"{module}.{function}"
    return call


register(
    Stage(
        name=INGEST,
        sections=("data",),
        inputs=(),
        outputs=(
            records.shard_pattern(),
            records.STATS_FILE,
            records.LABELS_FILE,
            records.REJECTED_FILE,
        ),
        staged=True,
        validate=hook("pipeline.ingest", "validate_config"),
        run=hook("pipeline.ingest", "run"),
        object_store_io=True,
    )
)

register(
    Stage(
        name=TRAIN,
        sections=("data", "model", "train", "task"),
        inputs=(INGEST,),
        outputs=("checkpoints/*", "l1_reference/checkpoints/*"),
        staged=False,
        validate=hook("pipeline.train", "validate_config"),
        run=hook("pipeline.train", "run"),
        prepare=hook("pipeline.train", "prepare"),
        is_chief=hook("pipeline.train", "is_chief_process"),
    )
)

register(
    Stage(
        name=EVALUATE,
        sections=("model", "train", "task", "evaluate"),
        inputs=(INGEST, TRAIN),
        outputs=(METRICS_FILE,),
        staged=True,
        validate=hook("pipeline.evaluate", "validate_config"),
        run=hook("pipeline.evaluate", "run"),
    )
)

register(
    Stage(
        name=EXPORT,
        sections=("model", "task", "export"),
        inputs=(TRAIN, EVALUATE),
        outputs=(f"{EXPORTED_MODEL_NAME}/*/{layout.SAVED_MODEL_FILE}",),
        staged=False,
        validate=hook("pipeline.export", "validate_config"),
        run=hook("pipeline.export", "run"),
        options=("force_export",),
    )
)
