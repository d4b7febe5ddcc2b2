"""The runner's cache rules (pipeline.runner), on tiny fake stages: fast, no TensorFlow, no
subprocess.

A stage is skipped only when its manifest says "complete", its fingerprinted config
(`runner.stage_config`: its own sections and options, less the fields that do not change
what it produces), its upstream stages' output fingerprints and its own output fingerprint
all match; `force` reruns it anyway. A wrong rule either reruns hours of training for
nothing or, worse, silently keeps an output that no longer matches its config or inputs,
so each rule here has a test that fails when the rule is broken in the runner. The
end-to-end versions (real stages, subprocesses) are in test_runner.py and
test_stage_failures.py, marked slow.

The fake stages are registered in place of the real ones (monkeypatched `stages._REGISTRY`)
with the real stages' shapes: ingest -> train -> evaluate -> export, ingest and evaluate
staged (written to a temporary sibling renamed into place), train and export written in
place, export fingerprinting the `force_export` option. Each writes a small output derived
from its config and its inputs, so a changed input gives a changed output, and records that
it ran; the runner writes the manifests, as for the real stages.
"""

import dataclasses
import json
import logging

import pytest
from absl import logging as absl_logging
from ml_collections import config_dict

from pipeline import runner, stages

STAGES = ("ingest", "train", "evaluate", "export")


def make_config(**overrides):
    """The fake pipeline's config; `overrides` as {"section.field": value}."""
    config = config_dict.ConfigDict(
        {
            "data": {"source": "folder:a", "shape": (4, 4), "beam_pipeline_args": ""},
            "train": {"steps": 3, "seed": 0},
            "evaluate": {"threshold": 0.5},
            "export": {"force": False, "model_name": "generator"},
        }
    )
    for name, value in overrides.items():
        section, field = name.split(".")
        config[section][field] = value
    return config


class FakePipeline:
    def __init__(self, workdir):
        self.workdir = workdir
        self.ran = []  # stages whose run function was called, by the latest `run`
        self.crash = set()  # stages that raise after writing part of their output
        self.prepared = []  # (stage, previous manifest) given to `prepare`
        self.results = None

    def run(self, names=None, config=None, **runner_kwargs) -> list[str]:
        """Runs the runner over the fake stages; returns the stages that actually ran."""
        self.ran = []
        pipeline_runner = runner.Runner(config or make_config(), self.workdir, **runner_kwargs)
        self.results = pipeline_runner.run(names)
        return self.ran

    def manifest(self, stage: str, suffix: str = "") -> dict:
        return json.loads((self.workdir / f"{stage}{suffix}" / "manifest.json").read_text())

    def manifests_text(self) -> dict:
        return {s: (self.workdir / s / "manifest.json").read_text() for s in STAGES}

    # ------------------------------------------------------------- fake stages
    def _started(self, context, name):
        self.ran.append(name)

    def _maybe_crash(self, name, partial_path):
        if name in self.crash:
            partial_path.parent.mkdir(parents=True, exist_ok=True)
            partial_path.write_text("half written")
            raise RuntimeError(f"{name} crashed")

    def ingest(self, context):
        self._started(context, "ingest")
        out = context.out_dir / "records.txt"
        self._maybe_crash("ingest", out)
        out.write_text(f"records of {context.config.data.source} {context.config.data.shape}\n")
        return {"records": 1}

    def train(self, context):
        self._started(context, "train")
        records = (context.workdir / "ingest" / "records.txt").read_text()
        checkpoint = context.out_dir / "checkpoints" / "ckpt.txt"
        self._maybe_crash("train", checkpoint)
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.write_text(f"{records}trained {context.config.train.steps} steps\n")
        # Not one of the stage's outputs (like TensorBoard logs): never fingerprinted.
        logs = context.out_dir / "logs" / "events.txt"
        logs.parent.mkdir(exist_ok=True)
        with open(logs, "a") as f:
            f.write("event\n")
        return {"final_step": context.config.train.steps}

    def evaluate(self, context):
        self._started(context, "evaluate")
        checkpoint = (context.workdir / "train" / "checkpoints" / "ckpt.txt").read_text()
        out = context.out_dir / "metrics.json"
        self._maybe_crash("evaluate", out)
        threshold = context.config.evaluate.threshold
        metrics = {"fd": len(checkpoint) / 100, "threshold": threshold}
        out.write_text(json.dumps(metrics))
        return metrics

    def export(self, context):
        self._started(context, "export")
        metrics = (context.workdir / "evaluate" / "metrics.json").read_text()
        out = context.out_dir / "model" / "saved_model.txt"
        self._maybe_crash("export", out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"{metrics} forced={context.force_export}\n")
        return {"exported": True}

    def prepare(self, context, previous, now):
        self.prepared.append(("train", previous))


@pytest.fixture
def pipeline(tmp_path, monkeypatch):
    fake = FakePipeline(tmp_path / "work")
    monkeypatch.setattr(stages, "_REGISTRY", {})

    def no_checks(config):
        pass

    for stage in (
        stages.Stage(
            name="ingest",
            sections=("data",),
            inputs=(),
            outputs=("records.txt",),
            staged=True,
            validate=no_checks,
            run=fake.ingest,
        ),
        stages.Stage(
            name="train",
            sections=("data", "train"),
            inputs=("ingest",),
            outputs=("checkpoints/*",),
            staged=False,
            validate=no_checks,
            run=fake.train,
            prepare=fake.prepare,
        ),
        stages.Stage(
            name="evaluate",
            sections=("train", "evaluate"),
            inputs=("ingest", "train"),
            outputs=("metrics.json",),
            staged=True,
            validate=no_checks,
            run=fake.evaluate,
        ),
        stages.Stage(
            name="export",
            sections=("export",),
            inputs=("train", "evaluate"),
            outputs=("model/*",),
            staged=False,
            validate=no_checks,
            run=fake.export,
            options=("force_export",),
        ),
    ):
        stages.register(stage)
    return fake


@pytest.fixture
def done(pipeline):
    """The fake pipeline after one complete run."""
    assert pipeline.run() == list(STAGES)
    pipeline.prepared.clear()
    return pipeline


# --------------------------------------------------------------------------- up to date


def test_unchanged_rerun_skips_every_stage_and_logs_up_to_date(done, caplog):
    before = done.manifests_text()
    # The runner logs through absl's logger, whose level and propagation an earlier test in the
    # same process may have changed: its records are caught at the source.
    absl_logger = absl_logging.get_absl_logger()
    absl_logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger=absl_logger.name):
            assert done.run() == []
    finally:
        absl_logger.removeHandler(caplog.handler)
    assert all(done.results[s]["skipped"] is True for s in STAGES)
    # A skipped stage still reports its summary (the CLI prints evaluate's).
    assert done.results["train"]["final_step"] == 3
    assert done.manifests_text() == before
    for stage in STAGES:
        assert f"[{stage}] up to date" in caplog.text


# ------------------------------------------------------------------------------- config


def test_changed_config_reruns_its_stage_and_downstream_but_not_upstream(done):
    before = {s: done.manifest(s) for s in STAGES}
    assert done.run(config=make_config(**{"train.steps": 4})) == ["train", "evaluate", "export"]
    assert done.results["ingest"]["skipped"] is True
    assert done.manifest("ingest") == before["ingest"]
    assert done.manifest("train")["config"]["train.steps"] == 4
    # And the new state is itself cached.
    assert done.run(config=make_config(**{"train.steps": 4})) == []


def test_config_field_outside_a_stages_sections_does_not_rerun_it(done):
    # evaluate.threshold is fingerprinted by evaluate only; export.model_name by export only.
    assert done.run(config=make_config(**{"evaluate.threshold": 0.9})) == ["evaluate", "export"]
    assert done.run(
        config=make_config(**{"evaluate.threshold": 0.9, "export.model_name": "g"})
    ) == ["export"]
    assert "evaluate.threshold" not in done.manifest("train")["config"]


def test_how_beam_runs_is_not_fingerprinted(done):
    config = make_config(**{"data.beam_pipeline_args": "--direct_num_workers=2"})
    assert done.run(config=config) == []
    assert "data.beam_pipeline_args" not in done.manifest("ingest")["config"]


def test_force_export_option_is_fingerprinted_with_the_exports_config(done):
    assert done.run(force_export=True) == ["export"]
    assert done.manifest("export")["config"]["force_export"] is True
    # config.export.force is the same option.
    assert done.run(config=make_config(**{"export.force": True})) == ["export"]
    assert done.run() == ["export"]


# ----------------------------------------------------------------- upstream fingerprints


def test_changed_upstream_output_reruns_downstream_whose_own_config_is_unchanged(done):
    export_before = done.manifest("export")
    assert done.run(config=make_config(**{"evaluate.threshold": 0.9})) == ["evaluate", "export"]
    export_after = done.manifest("export")
    assert export_after["config"] == export_before["config"]
    assert export_after["inputs"] == {
        "train": done.manifest("train")["output_fingerprint"],
        "evaluate": done.manifest("evaluate")["output_fingerprint"],
    }
    assert export_after["inputs"]["evaluate"] != export_before["inputs"]["evaluate"]


def test_upstream_rerun_with_identical_output_leaves_downstream_cached(done):
    # Fingerprints are of content: re-ingesting the same records invalidates nothing.
    assert done.run(["ingest"], force=True) == ["ingest"]
    assert done.run() == []


# -------------------------------------------------------------------------------- force


def test_force_reruns_the_selected_stages_even_when_up_to_date(done):
    assert done.run(["train"], force=True) == ["train"]
    assert done.run(force=True) == list(STAGES)
    assert all("skipped" not in done.results[s] for s in STAGES)


# ------------------------------------------------------------------------------ outputs


def test_output_changed_in_place_is_not_taken_as_cached(done):
    checkpoint = done.workdir / "train" / "checkpoints" / "ckpt.txt"
    text = checkpoint.read_text()
    checkpoint.write_text(text.replace("trained 3", "trained 9"))  # same size, other content
    # train rewrites the output it had, so what reads it is still up to date.
    assert done.run() == ["train"]
    assert checkpoint.read_text() == text


@pytest.mark.parametrize("change", ["deleted", "added"])
def test_deleted_or_added_output_file_is_not_taken_as_cached(done, change):
    if change == "deleted":
        (done.workdir / "evaluate" / "metrics.json").unlink()
        assert done.run() == ["evaluate"]
    else:
        (done.workdir / "train" / "checkpoints" / "ckpt-old.txt").write_text("stray")
        # train writes in place and keeps what is there (as real checkpoints are kept), so
        # the stray file is part of its new output, and what reads that output reruns too.
        assert done.run() == ["train", "evaluate", "export"]


def test_files_outside_a_stages_outputs_do_not_invalidate_it(done):
    (done.workdir / "train" / "logs" / "events.txt").write_text("other events\n")
    (done.workdir / "evaluate" / "plot.png").write_bytes(b"\x89PNG")
    assert done.run() == []


# ------------------------------------------------------------ incomplete and failed runs


@pytest.mark.parametrize("status", ["running", "failed", None])
def test_manifest_not_marked_complete_is_not_taken_as_cached(done, status):
    path = done.workdir / "train" / "manifest.json"
    manifest = json.loads(path.read_text())
    if status is None:
        del manifest["status"]
    else:
        manifest["status"] = status
    path.write_text(json.dumps(manifest))  # config, inputs and output fingerprint still match
    assert done.run() == ["train"]
    assert done.manifest("train")["status"] == "complete"


def test_crash_mid_stage_leaves_a_running_manifest_and_the_stage_reruns(done):
    done.crash.add("train")
    config = make_config(**{"train.steps": 4})
    with pytest.raises(RuntimeError, match="train crashed"):
        done.run(config=config)
    assert done.ran == ["train"]  # nothing downstream ran on the half-written output
    crashed = done.manifest("train")
    assert crashed["status"] == "running" and crashed["config"]["train.steps"] == 4
    assert "output_fingerprint" not in crashed

    done.crash.clear()
    assert done.run(config=config) == ["train", "evaluate", "export"]
    assert done.manifest("train")["status"] == "complete"


def test_failed_staged_stage_never_replaces_the_previous_good_output(done):
    good_manifest = (done.workdir / "evaluate" / "manifest.json").read_text()
    good_metrics = (done.workdir / "evaluate" / "metrics.json").read_text()
    done.crash.add("evaluate")
    with pytest.raises(RuntimeError, match="evaluate crashed"):
        done.run(config=make_config(**{"evaluate.threshold": 0.9}))
    assert (done.workdir / "evaluate" / "manifest.json").read_text() == good_manifest
    assert (done.workdir / "evaluate" / "metrics.json").read_text() == good_metrics
    assert not list(done.workdir.glob(".evaluate*"))  # no temporary directory left
    # The good output is still the cached one for its config.
    done.crash.clear()
    assert done.run() == []


def test_failed_staged_stage_keeps_its_partial_output_until_a_later_success(done):
    done.crash.add("evaluate")
    with pytest.raises(RuntimeError, match="evaluate crashed"):
        done.run(config=make_config(**{"evaluate.threshold": 0.9}))
    failed = done.workdir / "evaluate.failed"
    assert (failed / "metrics.json").read_text() == "half written"
    manifest = done.manifest("evaluate", ".failed")
    assert manifest["status"] == "failed" and "evaluate crashed" in manifest["error"]

    done.crash.clear()
    assert done.run(config=make_config(**{"evaluate.threshold": 0.9})) == ["evaluate", "export"]
    assert not failed.exists()


def test_a_second_failure_that_writes_nothing_leaves_no_record_of_the_first(done):
    done.crash.add("evaluate")
    with pytest.raises(RuntimeError, match="evaluate crashed"):
        done.run(config=make_config(**{"evaluate.threshold": 0.9}))
    assert (done.workdir / "evaluate.failed" / "metrics.json").exists()

    # Fails again before writing anything: no failed directory of its own, and the first
    # failure's partial file and error must not pass as this run's.
    def fails_before_writing(context):
        done.ran.append("evaluate")
        raise ValueError("bad threshold")

    stages._REGISTRY["evaluate"] = dataclasses.replace(
        stages._REGISTRY["evaluate"], run=fails_before_writing
    )
    with pytest.raises(ValueError, match="bad threshold"):
        done.run(config=make_config(**{"evaluate.threshold": 0.8}))
    assert not (done.workdir / "evaluate.failed").exists()
    assert json.loads((done.workdir / "evaluate" / "metrics.json").read_text())["threshold"] != 0.8


# ------------------------------------------------------------------------ missing inputs


def test_stage_without_its_inputs_fails_naming_the_missing_upstream_stage(pipeline):
    with pytest.raises(stages.PipelineError, match="no completed 'ingest' output"):
        pipeline.run(["train"])
    assert pipeline.ran == [] and not (pipeline.workdir / "train").exists()
    pipeline.run(["ingest"])
    with pytest.raises(stages.PipelineError, match="no completed 'train' output"):
        pipeline.run(["evaluate"])
    assert pipeline.ran == [] and not (pipeline.workdir / "evaluate").exists()


def test_upstream_that_never_completed_counts_as_missing(done):
    path = done.workdir / "ingest" / "manifest.json"
    path.write_text(json.dumps(dict(json.loads(path.read_text()), status="running")))
    with pytest.raises(stages.PipelineError, match="no completed 'ingest' output"):
        done.run(["train"], force=True)
    assert done.ran == []


# ----------------------------------------------------------------------- stage selection


def test_selected_stages_run_in_pipeline_order_and_others_are_left_alone(done):
    assert done.run(["export", "train"], force=True) == ["train", "export"]
    # An unselected upstream is not rerun, even when its config changed: the selected stage
    # reads what the workdir holds, and its own fingerprints have not changed.
    assert done.run(["evaluate"], config=make_config(**{"data.source": "folder:b"})) == []
    assert done.manifest("ingest")["config"]["data.source"] == "folder:a"


def test_prepare_runs_only_for_a_stage_that_is_not_up_to_date(done):
    done.run()
    assert done.prepared == []
    done.run(config=make_config(**{"train.steps": 4}))
    [(stage, previous)] = done.prepared
    assert stage == "train" and previous["config"]["train.steps"] == 3
