"""Runs the pipeline's stages in order with TFX-style caching and manifests.

Each stage writes `<workdir>/<stage>/manifest.json`: the config sections it ran
with, fingerprints of its inputs (the upstream stages' outputs), its own output
fingerprint, start and end time and the package version. A stage whose config
sections and input fingerprints match a complete manifest, and whose outputs
are unchanged, is skipped (a logged no-op) unless forced.

The stages themselves (what they read, write and run) are registered in
pipeline.stages; nothing here names one, except the final artifact report.
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

import gan_keras
from gan_keras import export_layout, io_utils
from pipeline import stages
from pipeline import workdir as workdir_layout

# Fields that do not change what a stage produces (how it runs, not what).
_NOT_FINGERPRINTED = {"data.beam_pipeline_args"}


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


def read_manifest(stage_dir) -> dict | None:
    path = pathlib.Path(stage_dir) / "manifest.json"
    if not path.exists():
        return None
    try:
        return io_utils.read_json(path)
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
        self.workdir = pathlib.Path(workdir).resolve()
        self.force = force
        self.force_export = force_export or bool(config.export.force)
        self.beam_pipeline_args = list(beam_pipeline_args or [])

    # ----------------------------------------------------------- validation
    def validate(self, names) -> None:
        """Checks every selected stage's config before any work starts."""
        for name in names:
            stages.get(name).validate(self.config)

    # -------------------------------------------------------------- running
    def run(self, names=None) -> dict:
        """Runs the named stages (default: all) in pipeline order; unknown names are ignored."""
        names = [name for name in stages.names() if names is None or name in names]
        self.validate(names)
        self.workdir.mkdir(parents=True, exist_ok=True)
        results = {}
        for name in names:
            results[name] = self._run_stage(stages.get(name))
        return results

    def _input_fingerprints(self, stage) -> dict:
        fingerprints = {}
        for upstream in stage.inputs:
            manifest = _complete_manifest(self.workdir, upstream)
            fingerprints[upstream] = manifest["output_fingerprint"]
        return fingerprints

    def _run_stage(self, stage) -> dict:
        name, stage_dir = stage.name, self.workdir / stage.name
        context = stages.Context(
            self.config,
            self.workdir,
            stage_dir,
            force=self.force,
            force_export=self.force_export,
            beam_pipeline_args=tuple(self.beam_pipeline_args),
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
            return stage.run(context)
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
            failed_dir = workdir_layout.failed_dir(self.workdir, name)
            try:
                with io_utils.staged_directory(stage_dir, keep_failed=failed_dir) as tmp:
                    summary = stage.run(dataclasses.replace(context, out_dir=tmp))
                    self._finish_manifest(manifest, tmp, name, summary, t0)
            except Exception as e:
                if failed_dir.exists():
                    _write_failure(failed_dir, manifest, e, t0)
                    logging.error(
                        "[%s] failed; what it wrote is in %s (%s is unchanged)",
                        name,
                        failed_dir,
                        stage_dir,
                    )
                raise
            # A success makes an older failure's leftovers stale.
            shutil.rmtree(failed_dir, ignore_errors=True)
        else:
            stage_dir.mkdir(parents=True, exist_ok=True)
            # A killed run leaves "running", which never counts as cached.
            io_utils.atomic_write_json(stage_dir / "manifest.json", manifest)
            summary = stage.run(context)
            self._finish_manifest(manifest, stage_dir, name, summary, t0)
        logging.info("[%s] done in %.1f s", name, time.time() - t0)
        return summary

    def _finish_manifest(self, manifest, stage_dir, stage, summary, t0):
        manifest.update(
            status="complete",
            finished_at=_now(),
            duration_s=round(time.time() - t0, 2),
            output_fingerprint=output_fingerprint(stage_dir, stage),
            summary=summary,
        )
        io_utils.atomic_write_json(pathlib.Path(stage_dir) / "manifest.json", manifest)


def _write_failure(failed_dir, manifest, error, t0) -> None:
    """A manifest that says why the output in `failed_dir` is not the stage's output."""
    manifest = dict(
        manifest,
        status="failed",
        finished_at=_now(),
        duration_s=round(time.time() - t0, 2),
        error=f"{type(error).__name__}: {error}",
    )
    io_utils.atomic_write_json(pathlib.Path(failed_dir) / "manifest.json", manifest)


def artifact_report(workdir) -> str:
    """Where a person finds the results, and how to look at them."""
    workdir = pathlib.Path(workdir).resolve()
    lines = ["", "Pipeline artifacts:"]
    train_dir = workdir_layout.train_dir(workdir)
    samples = sorted((train_dir / "samples").glob("step_*.png"))
    if samples:
        lines.append(f"  sample grid      {samples[-1]}")
    if (train_dir / "logs").exists():
        lines.append(f"  TensorBoard logs {train_dir / 'logs'}")
    metrics = workdir_layout.metrics_path(workdir)
    if metrics.exists():
        lines.append(f"  metrics          {metrics}")
    base = workdir_layout.export_base_path(workdir)
    versions = export_layout.list_versions(base)[::-1]
    export_summary = (
        read_manifest(workdir_layout.stage_dir(workdir, workdir_layout.EXPORT)) or {}
    ).get("summary", {})
    if export_summary.get("exported") is False:
        lines.append(f"  SavedModel       not exported this run: {export_summary.get('reason')}")
    if versions:
        lines.append(f"  SavedModel       {base / str(versions[0])}")
    # Name the executables of this environment: a virtualenv need not be active.
    bin_dir = pathlib.Path(sys.executable).parent
    tensorboard = bin_dir / "tensorboard"
    tensorboard = str(tensorboard) if tensorboard.exists() else "tensorboard"
    lines += [
        "",
        # The whole workdir: its runs (train/logs, with evaluate's metrics in its HParams
        # session) side by side, and several workdirs under one parent compare in HParams.
        f"Open TensorBoard:   {tensorboard} --logdir {workdir} --port 6006",
        "                    then browse http://localhost:6006 (HParams: runs by FD)",
    ]
    if versions:
        lines.append(
            f"Serve the model:    {sys.executable} -m gan_keras.serve --model_base_path={base} "
            "--rest_api_port=8501 --port=8500"
        )
    return "\n".join(lines)
