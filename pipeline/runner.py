"""Runs the pipeline's stages in order with TFX-style caching and manifests.

Each stage writes `<workdir>/<stage>/manifest.json`: the config sections it ran
with, fingerprints of its inputs (the upstream stages' outputs), its own output
fingerprint, start and end time and the package version. A stage whose config
sections and input fingerprints match a complete manifest, and whose outputs
are unchanged, is skipped (a logged no-op) unless forced.
"""

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
from gan_keras import io_utils

STAGES = ("ingest", "train", "evaluate", "export")


class StageSpec:
    def __init__(self, sections, inputs, outputs, staged):
        self.sections = sections  # config sections that determine the output
        self.inputs = inputs  # upstream stages
        self.outputs = outputs  # globs (relative to the stage dir) that are the output
        self.staged = staged  # written to a temp dir then renamed into place


SPECS = {
    "ingest": StageSpec(("data",), (), ("*.tfrecord.gz", "stats.json", "labels.json", "rejected.jsonl"), True),
    "train": StageSpec(("data", "model", "train"), ("ingest",), ("checkpoints/*",), False),
    "evaluate": StageSpec(("model", "train", "evaluate"), ("ingest", "train"), ("metrics.json",), True),
    "export": StageSpec(("model", "export"), ("train", "evaluate"), ("generator/*/saved_model.pb",), False),
}

# Fields that do not change what a stage produces (how it runs, not what).
_NOT_FINGERPRINTED = {"data.beam_pipeline_args"}
# Train fields that may change between runs without invalidating checkpoints:
# raising train.steps continues training from the last checkpoint.
_RESUMABLE_TRAIN_FIELDS = {"train.steps", "train.log_every", "train.sample_every",
                           "train.checkpoint_every", "train.keep_checkpoints", "train.strategy",
                           "train.jit_compile"}


class PipelineError(RuntimeError):
    """A stage cannot run: missing inputs, incompatible state, bad config."""


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def stage_config(config, stage: str, extra: dict | None = None) -> dict:
    """The flattened config fields that determine a stage's output."""
    flat = {}
    for section in SPECS[stage].sections:
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
    files = sorted({p for pattern in SPECS[stage].outputs for p in stage_dir.glob(pattern) if p.is_file()})
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
        raise PipelineError(
            f"{workdir / stage} holds no completed '{stage}' output; run that stage first "
            f"(e.g. --stages={stage},...)")
    return manifest


def _diff(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [k for k in keys if old.get(k) != new.get(k)]


class Runner:
    def __init__(self, config, workdir, *, force: bool = False, force_export: bool = False,
                 beam_pipeline_args=None):
        self.config = config
        self.workdir = pathlib.Path(workdir).resolve()
        self.force = force
        self.force_export = force_export or bool(config.export.force)
        self.beam_pipeline_args = list(beam_pipeline_args or [])

    # ----------------------------------------------------------- validation
    def validate(self, stages) -> None:
        """Checks every selected stage's config before any work starts."""
        from pipeline import evaluate, export, ingest, train

        validators = {
            "ingest": lambda: ingest.validate_config(self.config.data),
            "train": lambda: train.validate_config(self.config),
            "evaluate": lambda: evaluate.validate_config(self.config),
            "export": lambda: export.validate_config(self.config),
        }
        for stage in stages:
            if stage not in STAGES:
                raise PipelineError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
            validators[stage]()

    # -------------------------------------------------------------- running
    def run(self, stages=STAGES) -> dict:
        stages = [s for s in STAGES if s in stages]
        self.validate(stages)
        self.workdir.mkdir(parents=True, exist_ok=True)
        results = {}
        for stage in stages:
            results[stage] = self._run_stage(stage)
        return results

    def _input_fingerprints(self, stage) -> dict:
        fingerprints = {}
        for upstream in SPECS[stage].inputs:
            manifest = _complete_manifest(self.workdir, upstream)
            fingerprints[upstream] = manifest["output_fingerprint"]
        return fingerprints

    def _run_stage(self, stage) -> dict:
        stage_dir = self.workdir / stage
        extra = {"force_export": self.force_export} if stage == "export" else None
        config_now = stage_config(self.config, stage, extra)
        inputs_now = self._input_fingerprints(stage)
        previous = read_manifest(stage_dir)
        if (not self.force and previous and previous.get("status") == "complete"
                and previous.get("config") == config_now and previous.get("inputs") == inputs_now
                and previous.get("output_fingerprint") == output_fingerprint(stage_dir, stage)):
            logging.info("[%s] up to date (same config and inputs, outputs unchanged): skipping; "
                         "--force reruns it", stage)
            return {"skipped": True, **previous.get("summary", {})}
        if stage == "train":
            from pipeline import train

            if not train.is_chief_process(self.config):
                # A non-chief worker trains in lock step with the chief but leaves
                # the shared train/ directory (manifest, --force moves) to it.
                logging.info("[train] running as a non-chief worker; the chief writes %s", stage_dir)
                return self._execute(stage, stage_dir)
            self._prepare_train_dir(stage_dir, previous, config_now, inputs_now)

        logging.info("[%s] running", stage)
        started, t0 = _now(), time.time()
        manifest = {
            "stage": stage,
            "status": "running",
            "config": config_now,
            "inputs": inputs_now,
            "started_at": started,
            "package_version": gan_keras.__version__,
            "command": sys.argv,
            "host": os.uname().nodename,
        }
        if SPECS[stage].staged:
            with io_utils.staged_directory(stage_dir) as tmp:
                summary = self._execute(stage, tmp)
                self._finish_manifest(manifest, tmp, stage, summary, t0)
        else:
            stage_dir.mkdir(parents=True, exist_ok=True)
            # A killed run leaves "running", which never counts as cached.
            io_utils.atomic_write_json(stage_dir / "manifest.json", manifest)
            summary = self._execute(stage, stage_dir)
            self._finish_manifest(manifest, stage_dir, stage, summary, t0)
        logging.info("[%s] done in %.1f s", stage, time.time() - t0)
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

    def _prepare_train_dir(self, stage_dir, previous, config_now, inputs_now):
        """Resume when compatible; refuse to mix checkpoints of another model or data."""
        has_checkpoints = any((stage_dir / "checkpoints").glob("*.index"))
        if not has_checkpoints:
            return
        if self.force:
            aside = stage_dir.with_name(f"train.replaced-{datetime.datetime.now():%Y%m%d-%H%M%S}")
            shutil.move(str(stage_dir), str(aside))
            logging.warning("[train] --force: previous training moved to %s; starting from scratch", aside)
            return
        if previous is None:
            raise PipelineError(f"{stage_dir} holds checkpoints but no manifest.json; "
                                "cannot tell what produced them (use --force to start over)")
        changed = [k for k in _diff(previous.get("config", {}), config_now) if k not in _RESUMABLE_TRAIN_FIELDS]
        if changed:
            raise PipelineError(
                f"{stage_dir} holds checkpoints of a different configuration (changed: {', '.join(changed)}); "
                "use --force to start training over (the old run is kept aside) or another --workdir")
        if previous.get("inputs") != inputs_now:
            raise PipelineError(
                f"{stage_dir} holds checkpoints trained on different ingested data; "
                "use --force to start training over or another --workdir")

    def _execute(self, stage, out_dir) -> dict:
        out_dir = pathlib.Path(out_dir)
        if stage == "ingest":
            from pipeline import ingest
            return ingest.run_ingest(self.config.data, out_dir, self.beam_pipeline_args)
        if stage == "train":
            from pipeline import train
            return train.run_train(self.config, self.workdir)
        if stage == "evaluate":
            from pipeline import evaluate
            return evaluate.run_evaluate(self.config, self.workdir, out_dir)
        if stage == "export":
            from pipeline import export
            return export.run_export(self.config, self.workdir, out_dir, force_export=self.force_export)
        raise PipelineError(f"unknown stage {stage!r}")


def artifact_report(workdir) -> str:
    """Where a person finds the results, and how to look at them."""
    workdir = pathlib.Path(workdir).resolve()
    lines = ["", "Pipeline artifacts:"]
    samples = sorted((workdir / "train" / "samples").glob("step_*.png"))
    if samples:
        lines.append(f"  sample grid      {samples[-1]}")
    if (workdir / "train" / "logs").exists():
        lines.append(f"  TensorBoard logs {workdir / 'train' / 'logs'}")
    metrics = workdir / "evaluate" / "metrics.json"
    if metrics.exists():
        lines.append(f"  metrics          {metrics}")
    base = workdir / "export" / "generator"
    versions = sorted((int(p.name) for p in base.glob("*") if p.name.isdigit()), reverse=True)
    export_summary = (read_manifest(workdir / "export") or {}).get("summary", {})
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
        f"Open TensorBoard:   {tensorboard} --logdir {workdir / 'train' / 'logs'} --port 6006",
        "                    then browse http://localhost:6006",
    ]
    if versions:
        lines.append(f"Serve the model:    {sys.executable} -m gan_keras.serve --model_base_path={base} "
                     "--port=8501")
    return "\n".join(lines)
