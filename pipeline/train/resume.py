"""Train stage: the resume policy (`prepare`, the runner's hook before the stage runs). A
workdir's checkpoints are resumed when only resumable fields changed (raising train.steps
continues training), moved aside on --force, and refused when the model or data changed."""

import datetime
import json
import shutil

from absl import logging

from pipeline import stages
from pipeline import workdir as workdir_layout
from pipeline.train import fine_tune

# Train fields that may change between runs without invalidating checkpoints:
# raising train.steps continues training from the last checkpoint.
_RESUMABLE_TRAIN_FIELDS = {
    "train.steps",
    "train.log_every",
    "train.sample_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.strategy",
    "train.jit_compile",
    "train.eval_every",
    "train.eval_num_samples",
}


def _default_fields() -> dict:
    """Every field of configs/default.py as the manifest stores it ('section.field': value)."""
    from configs import default

    config = default.get_config()
    flat = {
        f"{section}.{key}": value for section in config for key, value in config[section].items()
    }
    return json.loads(json.dumps(flat, default=str))


def prepare(context: stages.Context, previous: dict | None, current: dict) -> None:
    """Resume when compatible; refuse to mix checkpoints of another model or data."""
    stage_dir = workdir_layout.train_dir(context.workdir)
    if not any((stage_dir / "checkpoints").glob("*.index")):
        return
    if context.force:
        # Before moving anything: init_from must not name the checkpoints about to move.
        fine_tune.resolve_parent_for_workdir(context.config, context.workdir)
        aside = stage_dir.with_name(f"train.replaced-{datetime.datetime.now():%Y%m%d-%H%M%S}")
        shutil.move(str(stage_dir), str(aside))
        logging.warning(
            "[train] --force: previous training moved to %s; starting from scratch", aside
        )
        return
    if previous is None:
        raise stages.PipelineError(
            f"{stage_dir} holds checkpoints but no manifest.json; "
            "cannot tell what produced them (use --force to start over)"
        )
    old, new = previous.get("config", {}), current["config"]
    defaults = _default_fields()
    # A field the old run's manifest lacks (added in a later version) left at its default
    # value changes nothing: the old run trained with that behaviour.
    changed = [
        k
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k)
        and k not in _RESUMABLE_TRAIN_FIELDS
        and not (k not in old and k in defaults and new.get(k) == defaults[k])
    ]
    if changed:
        raise stages.PipelineError(
            f"{stage_dir} holds checkpoints of a different configuration "
            f"(changed: {', '.join(changed)}); use --force to start training over (the old run is "
            "kept aside) or another --workdir"
        )
    if previous.get("inputs") != current["inputs"]:
        raise stages.PipelineError(
            f"{stage_dir} holds checkpoints trained on different ingested data; "
            "use --force to start training over or another --workdir"
        )
