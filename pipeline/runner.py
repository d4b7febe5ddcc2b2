"""Runs the pipeline's stages in order with TFX-style caching and manifests.

Each stage writes `<workdir>/<stage>/manifest.json`: the config sections it ran
with, fingerprints of its inputs (the upstream stages' outputs), its own output
fingerprint, start and end time and the package version. A stage whose config
sections and input fingerprints match a complete manifest, and whose outputs
are unchanged, is skipped (a logged no-op) unless forced.

The stages themselves (what they read, write and run) are registered in
pipeline.stages; nothing here names one, except the final artifact report.

An object-store workdir (gs://...; gan_keras.storage.filesystem) is run through a local
working copy: pulled at the start, pushed after every stage (and by the train
stage after every checkpoint) with commit files last, so the store only ever
shows a stage directory as complete once all of it is there. A stage that does
its own I/O through the filesystem layer (`Stage.object_store_io`: ingest, whose
Beam workers may run elsewhere, e.g. on Dataflow) is staged in the store itself.
"""

import dataclasses
import datetime
import hashlib
import json
import os
import pathlib
import shutil
import sys
import time

from absl import logging
from ml_collections import config_dict

import gan_keras
from gan_keras.export import layout
from gan_keras.storage import atomic, filesystem
from pipeline import recipe, stages
from pipeline import workdir as workdir_layout

# Fields that do not change what a stage produces (how it runs, not what).
_NOT_FINGERPRINTED = {"data.beam_pipeline_args"}

MANIFEST_FILE = "manifest.json"
# In an object-store workdir, files a reader trusts a directory by, written after the rest of
# their directory: TensorFlow's checkpoint pointer (tf.train.latest_checkpoint reads only what
# it names) and an export version's saved_model.pb (what TF Serving and our server wait for).
_COMMIT_LAST = ("checkpoint", layout.SAVED_MODEL_FILE)


def _temporary(rel: str) -> bool:
    """Dot-prefixed names are temporary siblings (staged directories, exports being written):
    never pulled or pushed."""
    return any(part.startswith(".") for part in rel.split("/"))


def _moved_aside(rel: str) -> bool:
    """Training runs moved aside by --force are pushed (kept) but never pulled: no stage reads
    them."""
    return ".replaced-" in rel.split("/", 1)[0]


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def stage_config(config, stage: str, extra: dict | None = None) -> dict:
    """The flattened config fields that determine a stage's output."""
    flat = {}
    for section in stages.get(stage).sections:
        for key, value in config[section].items():
            name = f"{section}.{key}"
            if name not in _NOT_FINGERPRINTED:
                flat[name] = value
    flat.update(extra or {})
    # Round-trip through JSON so the comparison sees what the manifest stores.
    return json.loads(json.dumps(flat, sort_keys=True, default=str))


def output_fingerprint(stage_dir, stage: str) -> str:
    """sha256 over the stage's output files (relative path, size, content)."""
    if filesystem.is_object_store(stage_dir):
        return _object_fingerprint(filesystem.path(stage_dir), stage)
    stage_dir = pathlib.Path(stage_dir)
    files = sorted(
        {p for pattern in stages.get(stage).outputs for p in stage_dir.glob(pattern) if p.is_file()}
    )
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(stage_dir)).encode())
        digest.update(str(path.stat().st_size).encode())
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _object_fingerprint(stage_dir, stage: str) -> str:
    """`output_fingerprint` of a stage directory in an object store: the same digest the
    local copy of the same files gives."""
    files = sorted(
        {p for pattern in stages.get(stage).outputs for p in filesystem.glob(stage_dir, pattern)}
    )
    digest = hashlib.sha256()
    for path in files:
        data = filesystem.read_bytes(path)
        digest.update(str(path.relative_to(stage_dir)).encode())
        digest.update(str(len(data)).encode())
        digest.update(data)
    return digest.hexdigest()


def read_manifest(stage_dir) -> dict | None:
    if filesystem.is_object_store(stage_dir):
        path = filesystem.path(stage_dir) / MANIFEST_FILE
    else:
        path = pathlib.Path(stage_dir) / MANIFEST_FILE
    if not filesystem.exists(path):
        return None
    try:
        return atomic.read_json(path)
    except (OSError, ValueError):
        return None


def _complete_manifest(workdir, stage) -> dict:
    manifest = read_manifest(workdir / stage)
    if not manifest or manifest.get("status") != "complete":
        raise stages.PipelineError(
            f"{workdir / stage} holds no completed '{stage}' output; run that stage first "
            f"(e.g. --stages={stage},...)"
        )
    return manifest


def _refuse_unset_fields(config, sections) -> None:
    """Fields left None (configs/auto.py's, with its recipe turned off) are named here, before
    the stage checks, which expect values, can fail on them with a TypeError."""
    unset = [
        f"{section}.{field}"
        for section in sections
        for field, value in config[section].items()
        if value is None
    ]
    if unset:
        raise ValueError(
            f"unset (None): {', '.join(unset)}; give each a value in the config or with "
            "--config.<section>.<field>=..., or leave train.recipe='auto' to choose them"
        )


class Runner:
    def __init__(
        self,
        config,
        workdir,
        *,
        force: bool = False,
        force_export: bool = False,
        beam_pipeline_args=None,
    ):
        self.config = config
        self.data_choices: list[recipe.Choice] = []  # chosen before ingest (resolve_data)
        workdir = filesystem.check(workdir, "--workdir")
        self.copy = None  # the local working copy of an object-store workdir
        if filesystem.is_object_store(workdir):
            self.copy = filesystem.WorkingCopy(
                workdir,
                skip=_temporary,
                not_pulled=_moved_aside,
                invalidate_first=(MANIFEST_FILE,),
                commit_last=_COMMIT_LAST,
            )
            self.workdir = self.copy.local
        else:
            self.workdir = pathlib.Path(workdir).resolve()
        self.force = force
        self.force_export = force_export or bool(config.export.force)
        self.beam_pipeline_args = list(beam_pipeline_args or [])

    def shown(self, text: str) -> str:
        """`text` naming the object-store workdir where it names this run's local working copy
        of it: errors, summaries and failure reports name what the user passed as --workdir."""
        return text if self.copy is None else text.replace(str(self.workdir), str(self.copy.remote))

    def artifact_report(self) -> str:
        """`artifact_report` of this run's workdir (an object store's by its URLs)."""
        return artifact_report(self.workdir, self.copy.remote if self.copy else None)

    # ----------------------------------------------------------- validation
    def validate(self, names, config=None) -> None:
        """Checks every selected stage's config before any work starts. An automatic recipe
        (pipeline.recipe) is checked as resolved for a provisional dataset: the user's own
        settings are checked before any work, the recipe's again once ingest has run."""
        config = self.config if config is None else config
        if recipe.is_auto(config) and config.data.get("channels", 0) is None:
            config = config_dict.ConfigDict(config.to_dict())
            config.data.channels = recipe.PROVISIONAL_STATS["channels"]
        if recipe.is_auto(config) and recipe.unset_fields(config):
            config, _ = recipe.resolve(config, recipe.PROVISIONAL_STATS)
        for name in names:
            _refuse_unset_fields(config, stages.get(name).sections)
            stages.get(name).validate(config)

    def resolve_recipe(self, names=()) -> None:
        """Chooses the automatic recipe's fields from the ingested data (a no-op for a
        written config): logged with their reasons and kept in <workdir>/recipe.json."""
        if not (recipe.is_auto(self.config) and recipe.unset_fields(self.config)):
            return
        _complete_manifest(self.workdir, workdir_layout.INGEST)
        stats = recipe.read_stats(self.workdir / workdir_layout.INGEST)
        self.config, choices = recipe.resolve(self.config, stats)
        for line in recipe.log_lines(choices):
            logging.info("%s", line)
        recipe.write_record(self.workdir / recipe.RECIPE_FILE, self.data_choices + choices)
        self.validate(names)

    def resolve_data(self) -> None:
        """Chooses what the automatic recipe takes from the images before ingest writes them
        (data.channels, from the source's image modes): logged, and recorded with the rest."""
        if not recipe.is_auto(self.config):
            return
        self.config, self.data_choices = recipe.resolve_data(self.config)
        for line in recipe.log_lines(self.data_choices):
            logging.info("%s", line)

    # -------------------------------------------------------------- running
    def run(self, names=None) -> dict:
        """Runs the named stages (default: all) in pipeline order; unknown names are ignored."""
        names = [name for name in stages.names() if names is None or name in names]
        self.validate(names)
        self.resolve_data()
        if self.copy is not None:
            logging.info("Working copy of %s: %s", self.copy.remote, self.workdir)
            self.copy.pull()
        self.workdir.mkdir(parents=True, exist_ok=True)
        results = {}
        for name in names:
            if name != workdir_layout.INGEST:
                # Every stage after ingest sees the recipe chosen from its output.
                self.resolve_recipe(names)
            results[name] = self._run_stage(stages.get(name))
        return results

    def _input_fingerprints(self, stage) -> dict:
        fingerprints = {}
        for upstream in stage.inputs:
            manifest = _complete_manifest(self.workdir, upstream)
            fingerprints[upstream] = manifest["output_fingerprint"]
        return fingerprints

    def _sync(self) -> None:
        """Pushes what changed in an object-store workdir's working copy (no-op locally)."""
        if self.copy is not None:
            self.copy.push()

    def _run_stage(self, stage) -> dict:
        name, stage_dir = stage.name, self.workdir / stage.name
        context = stages.Context(
            self.config,
            self.workdir,
            stage_dir,
            force=self.force,
            force_export=self.force_export,
            beam_pipeline_args=tuple(self.beam_pipeline_args),
            sync=self._sync,
        )
        options = {option: getattr(context, option) for option in stage.options}
        config_now = stage_config(self.config, name, options)
        inputs_now = self._input_fingerprints(stage)
        previous = read_manifest(stage_dir)
        if (
            not self.force
            and previous
            and previous.get("status") == "complete"
            and previous.get("config") == config_now
            and previous.get("inputs") == inputs_now
            and previous.get("output_fingerprint") == output_fingerprint(stage_dir, name)
        ):
            logging.info(
                "[%s] up to date (same config and inputs, outputs unchanged): skipping; "
                "--force reruns it",
                name,
            )
            return {"skipped": True, **previous.get("summary", {})}
        if not stage.is_chief(self.config):
            # A non-chief worker runs in lock step with the chief but leaves
            # the shared stage directory (manifest, --force moves) to it.
            logging.info("[%s] running as a non-chief worker; the chief writes %s", name, stage_dir)
            return stage.run(dataclasses.replace(context, sync=stages.no_sync))
        try:
            return self._run_chief(stage, context, previous, config_now, inputs_now)
        finally:
            # Also after a failure: committed checkpoints and a failed stage's report count.
            self._sync()

    def _run_chief(self, stage, context, previous, config_now, inputs_now) -> dict:
        name, stage_dir = stage.name, context.out_dir
        if stage.prepare is not None:
            stage.prepare(context, previous, {"config": config_now, "inputs": inputs_now})

        logging.info("[%s] running", name)
        started, t0 = _now(), time.time()
        manifest = {
            "stage": name,
            "status": "running",
            "config": config_now,
            "inputs": inputs_now,
            "started_at": started,
            "package_version": gan_keras.__version__,
            "command": sys.argv,
            "host": os.uname().nodename,
        }
        if stage.staged:
            # A stage doing its own object-store I/O is staged in the store, then copied here.
            root = self.copy.remote if self.copy and stage.object_store_io else self.workdir
            final_dir = root / name
            failed_dir = workdir_layout.failed_dir(root, name)
            # An earlier failure's leftovers are stale once the stage runs again: this run's
            # failure or success replaces them, and never mixes its error with their files.
            filesystem.rmtree(failed_dir)
            try:
                with atomic.staged_directory(
                    final_dir, keep_failed=failed_dir, commit_files=(MANIFEST_FILE,)
                ) as tmp:
                    summary = stage.run(dataclasses.replace(context, out_dir=tmp))
                    self._finish_manifest(manifest, tmp, name, summary, t0)
            except Exception as e:
                if filesystem.exists(failed_dir):
                    _write_failure(failed_dir, manifest, self.shown(f"{type(e).__name__}: {e}"), t0)
                    logging.error(
                        "[%s] failed; what it wrote is in %s (%s is unchanged)",
                        name,
                        self.shown(str(failed_dir)),
                        self.shown(str(final_dir)),
                    )
                raise
            if root is not self.workdir:
                self.copy.pull(name)
                shutil.rmtree(workdir_layout.failed_dir(self.workdir, name), ignore_errors=True)
        else:
            stage_dir.mkdir(parents=True, exist_ok=True)
            # A killed run leaves "running", which never counts as cached.
            atomic.atomic_write_json(stage_dir / MANIFEST_FILE, manifest)
            self._sync()
            summary = stage.run(context)
            self._finish_manifest(manifest, stage_dir, name, summary, t0)
        logging.info("[%s] done in %.1f s", name, time.time() - t0)
        return summary

    def _finish_manifest(self, manifest, stage_dir, stage, summary, t0):
        if self.copy is not None:
            # Paths in the summary name the store's objects, not this run's working copy.
            summary = json.loads(self.shown(json.dumps(summary, default=atomic.json_default)))
        manifest.update(
            status="complete",
            finished_at=_now(),
            duration_s=round(time.time() - t0, 2),
            output_fingerprint=output_fingerprint(stage_dir, stage),
            summary=summary,
        )
        atomic.atomic_write_json(filesystem.path(stage_dir) / MANIFEST_FILE, manifest)


def _write_failure(failed_dir, manifest, error: str, t0) -> None:
    """A manifest that says why the output in `failed_dir` is not the stage's output."""
    manifest = dict(
        manifest,
        status="failed",
        finished_at=_now(),
        duration_s=round(time.time() - t0, 2),
        error=error,
    )
    atomic.atomic_write_json(filesystem.path(failed_dir) / MANIFEST_FILE, manifest)


def artifact_report(workdir, shown_as=None) -> str:
    """Where a person finds the results, and how to look at them. `shown_as`: the
    object-store workdir that `workdir` is the working copy of, named instead of it."""
    workdir = pathlib.Path(workdir).resolve()
    lines = ["", "Pipeline artifacts:"]

    def shown(p):
        if shown_as is None:
            return p
        rel = pathlib.Path(p).relative_to(workdir).as_posix()
        return shown_as if rel == "." else filesystem.path(shown_as) / rel

    train_dir = workdir_layout.train_dir(workdir)
    samples = sorted((train_dir / "samples").glob("step_*.png"))
    if samples:
        lines.append(f"  sample grid      {shown(samples[-1])}")
    if (train_dir / "logs").exists():
        lines.append(f"  TensorBoard logs {shown(train_dir / 'logs')}")
    metrics = workdir_layout.metrics_path(workdir)
    if metrics.exists():
        lines.append(f"  metrics          {shown(metrics)}")
    base = workdir_layout.export_base_path(workdir)
    versions = layout.list_versions(base)[::-1]
    export_summary = (
        read_manifest(workdir_layout.stage_dir(workdir, workdir_layout.EXPORT)) or {}
    ).get("summary", {})
    if export_summary.get("exported") is False:
        lines.append(f"  SavedModel       not exported this run: {export_summary.get('reason')}")
    if versions:
        lines.append(f"  SavedModel       {shown(base / str(versions[0]))}")
    # Name the executables of this environment: a virtualenv need not be active.
    bin_dir = pathlib.Path(sys.executable).parent
    tensorboard = bin_dir / "tensorboard"
    tensorboard = str(tensorboard) if tensorboard.exists() else "tensorboard"
    lines += [
        "",
        # The whole workdir: its runs (train/logs, with evaluate's metrics in its HParams
        # session) side by side, and several workdirs under one parent compare in HParams.
        f"Open TensorBoard:   {tensorboard} --logdir {shown(workdir)} --port 6006",
        "                    then browse http://localhost:6006 (HParams: runs by FD)",
    ]
    if versions:
        lines.append(
            f"Serve the model:    {sys.executable} -m gan_keras.serve "
            f"--model_base_path={shown(base)} "
            "--rest_api_port=8501 --port=8500"
        )
    return "\n".join(lines)
