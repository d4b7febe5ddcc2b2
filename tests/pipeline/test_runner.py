"""The pipeline runner: config overrides, validation before work, caching, resume rules."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf
from helpers import REPO, run_pipeline

from configs import smoke
from pipeline import runner, stages


@pytest.mark.slow
def test_unknown_config_field_fails_before_any_work(tmp_path):
    workdir = tmp_path / "work"
    result = run_pipeline(workdir, "--config.train.stepz=5", check=False)
    assert result.returncode != 0
    assert "stepz" in result.stderr
    assert not workdir.exists()


@pytest.mark.slow
def test_wrong_type_fails_before_any_work_naming_the_field(tmp_path):
    workdir = tmp_path / "work"
    result = run_pipeline(workdir, "--config.train.steps=many", check=False)
    assert result.returncode != 0
    assert "train.steps" in result.stderr
    assert not workdir.exists()


@pytest.mark.slow
def test_invalid_value_fails_before_any_work_naming_the_field(tmp_path):
    workdir = tmp_path / "work"
    result = run_pipeline(workdir, "--config.train.loss=wasserstein", check=False)
    assert result.returncode == 1
    assert "train.loss" in result.stderr and "wasserstein" in result.stderr
    assert not workdir.exists()


@pytest.mark.slow
def test_console_script_runs_the_same_entry_point(smoke_workdir, tmp_path):
    script = shutil.which("gan-pipeline", path=os.path.dirname(sys.executable))
    assert script, "the gan-pipeline console script is not installed (pip install -e .)"
    workdir = tmp_path / "work"
    result = subprocess.run(
        [
            script,
            f"--config={REPO / 'configs/smoke.py'}",
            f"--workdir={workdir}",
            "--stages=ingest",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # The same stage as `python -m pipeline.run` ran: the same records, config and report.
    manifest = json.loads((workdir / "ingest" / "manifest.json").read_text())
    smoke_manifest = json.loads((smoke_workdir / "ingest" / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["output_fingerprint"] == smoke_manifest["output_fingerprint"]
    assert manifest["config"] == smoke_manifest["config"]
    assert "[ingest] running" in result.stderr and "Pipeline artifacts:" in result.stdout


@pytest.mark.slow
def test_unknown_stage_is_rejected(tmp_path):
    result = run_pipeline(tmp_path / "work", "--stages=ingest,deploy", check=False)
    assert result.returncode != 0 and "deploy" in result.stderr


@pytest.mark.slow
def test_stage_without_its_inputs_names_the_missing_stage(tmp_path):
    result = run_pipeline(tmp_path / "work", "--stages=train", check=False)
    assert result.returncode == 1
    assert "no completed 'ingest' output" in result.stderr


def _copy(smoke_workdir, tmp_path, stages=("ingest", "train")):
    workdir = tmp_path / "work"
    for stage in stages:
        shutil.copytree(smoke_workdir / stage, workdir / stage)
    return workdir


@pytest.mark.slow
def test_raising_train_steps_continues_from_the_last_checkpoint(smoke_workdir, tmp_path):
    workdir = _copy(smoke_workdir, tmp_path)
    config = smoke.get_config()
    config.train.steps = 320
    config.train.log_every = 5
    runner.Runner(config, workdir).run(["ingest", "train"])
    manifest = json.loads((workdir / "train" / "manifest.json").read_text())
    assert manifest["summary"]["start_step"] == 300
    assert manifest["summary"]["final_step"] == 320
    assert manifest["config"]["train.steps"] == 320


@pytest.mark.slow
def test_changed_model_with_existing_checkpoints_needs_force(smoke_workdir, tmp_path):
    workdir = _copy(smoke_workdir, tmp_path)
    config = smoke.get_config()
    config.model.g_width = 12
    with pytest.raises(stages.PipelineError, match="changed: model.g_width"):
        runner.Runner(config, workdir).run(["train"])
    config.train.steps = 10
    runner.Runner(config, workdir, force=True).run(["train"])
    manifest = json.loads((workdir / "train" / "manifest.json").read_text())
    assert manifest["summary"]["start_step"] == 0 and manifest["summary"]["final_step"] == 10
    # The previous run was moved aside, not deleted.
    assert len(list(tmp_path.glob("work/train.replaced-*/checkpoints/ckpt-300.index"))) == 1


@pytest.mark.slow
def test_tampered_output_is_not_taken_as_cached(smoke_workdir, tmp_path):
    workdir = _copy(smoke_workdir, tmp_path, stages=("ingest",))
    config = smoke.get_config()
    stats_path = workdir / "ingest" / "stats.json"
    stats_path.write_text(stats_path.read_text() + " ")
    results = runner.Runner(config, workdir).run(["ingest"])
    assert results["ingest"].get("skipped") is not True  # it reran...
    assert not stats_path.read_text().endswith(" ")  # ...and rewrote the tampered file
    manifest = json.loads((workdir / "ingest" / "manifest.json").read_text())
    assert manifest["output_fingerprint"] == runner.output_fingerprint(workdir / "ingest", "ingest")
    assert not list(workdir.glob(".ingest.*"))  # no temp directories left behind


def test_stage_config_ignores_how_beam_runs():
    a, b = smoke.get_config(), smoke.get_config()
    b.data.beam_pipeline_args = "--direct_num_workers=2"
    assert runner.stage_config(a, "ingest") == runner.stage_config(b, "ingest")
    b.data.resolution = 32
    assert runner.stage_config(a, "ingest") != runner.stage_config(b, "ingest")


@pytest.mark.parametrize(
    "override, field",
    [
        ("train.ema_half_life_images=-5.0", "train.ema_half_life_images"),
        ("train.ema_rampup=2.0", "train.ema_rampup"),
        ("model.batch_norm_momentum=1.0", "model.batch_norm_momentum"),
        ("model.network_resolution=30", "model.network_resolution"),
    ],
)
def test_recipe_fields_are_validated_before_any_work(override, field):
    config = smoke.get_config()
    section, _, assignment = override.partition(".")
    name, _, value = assignment.partition("=")
    config[section][name] = type(config[section][name])(value)
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        stages.get("train").validate(config)


# ----------------------------------------------------------------------------
# Caching across stages: what reruns, what is refused, and the flags that override it
# ----------------------------------------------------------------------------


def _manifests(workdir):
    return {
        stage: json.loads((workdir / stage / "manifest.json").read_text())
        for stage in stages.names()
    }


def _versions(workdir):
    return sorted(
        int(p.name) for p in (workdir / "export" / "generator").iterdir() if p.name.isdigit()
    )


@pytest.mark.slow
def test_changed_config_reruns_its_stage_whose_new_output_reruns_the_next_and_force_flags(
    smoke_workdir, tmp_path
):
    # The judge too: same data and recipe, so the evaluate stage reuses it rather than retraining.
    workdir = _copy(
        smoke_workdir, tmp_path, stages=("ingest", "train", "evaluate", "export", "judge")
    )
    before = _manifests(workdir)
    config = smoke.get_config()
    config.evaluate.threshold = 1e-3  # no model gets below this: the gate now says no

    results = runner.Runner(config, workdir).run()
    after = _manifests(workdir)
    # Upstream of the change: up to date, untouched.
    assert results["ingest"]["skipped"] is True and results["train"]["skipped"] is True
    assert (after["ingest"], after["train"]) == (before["ingest"], before["train"])
    # The stage whose config changed reran...
    assert "skipped" not in results["evaluate"]
    assert after["evaluate"]["config"]["evaluate.threshold"] == 1e-3
    assert after["evaluate"]["started_at"] >= before["evaluate"]["finished_at"]
    metrics = json.loads((workdir / "evaluate" / "metrics.json").read_text())
    assert metrics["blessed"] is False and "above the threshold" in metrics["gate"]["reason"]
    assert after["evaluate"]["output_fingerprint"] != before["evaluate"]["output_fingerprint"]
    # ...and so did the export, whose own config did not change but whose input did: the gate
    # now refuses, so no new version.
    assert after["export"]["config"] == before["export"]["config"]
    assert after["export"]["inputs"] == {
        "train": before["train"]["output_fingerprint"],
        "evaluate": after["evaluate"]["output_fingerprint"],
    }
    assert "skipped" not in results["export"]
    assert (
        results["export"]["exported"] is False
        and "above the threshold" in results["export"]["reason"]
    )
    assert _versions(workdir) == [1]

    # --force_export exports what the gate refused, with the evaluation that refused it.
    result = run_pipeline(workdir, "--stages=export", "--force_export")
    assert "[export] running" in result.stderr
    assert _versions(workdir) == [1, 2]
    summary = json.loads((workdir / "export" / "manifest.json").read_text())["summary"]
    assert (summary["exported"], summary["forced"], summary["version"]) == (True, True, 2)
    evaluation = workdir / "export" / "generator" / "2" / "assets.extra" / "evaluation.json"
    assert json.loads(evaluation.read_text()) == metrics
    assert str(workdir / "export" / "generator" / "2") in result.stdout
    # The stage is up to date now (same config and inputs); --force reruns it all the same.
    result = run_pipeline(workdir, "--stages=export", "--force_export", "--force")
    assert "[export] running" in result.stderr and "up to date" not in result.stderr
    assert _versions(workdir) == [1, 2, 3]


@pytest.mark.slow
def test_checkpoints_of_other_ingested_data_are_refused(smoke_workdir, tmp_path):
    workdir = _copy(smoke_workdir, tmp_path)
    train_manifest = (workdir / "train" / "manifest.json").read_text()
    old_fingerprint = json.loads((workdir / "ingest" / "manifest.json").read_text())[
        "output_fingerprint"
    ]
    # The data re-ingested (here: another train/eval split) under the existing checkpoints.
    other_data = smoke.get_config()
    other_data.data.eval_fraction = 0.3
    results = runner.Runner(other_data, workdir).run(["ingest"])
    assert "skipped" not in results["ingest"]
    assert (
        json.loads((workdir / "ingest" / "manifest.json").read_text())["output_fingerprint"]
        != old_fingerprint
    )

    # The train config is the one the checkpoints were trained with; only the data differ.
    config = smoke.get_config()
    with pytest.raises(stages.PipelineError, match="trained on different ingested data"):
        runner.Runner(config, workdir).run(["train"])
    assert (workdir / "train" / "manifest.json").read_text() == train_manifest
    assert sorted(p.name for p in (workdir / "train" / "checkpoints").glob("*.index")) == [
        "ckpt-100.index",
        "ckpt-200.index",
        "ckpt-300.index",
    ]

    # Checkpoints that nothing says the origin of are refused too.
    (workdir / "train" / "manifest.json").unlink()
    with pytest.raises(stages.PipelineError, match="holds checkpoints but no manifest.json"):
        runner.Runner(config, workdir).run(["train"])
    assert tf.train.latest_checkpoint(str(workdir / "train" / "checkpoints")).endswith("ckpt-300")


@pytest.mark.slow
def test_beam_pipeline_args_reach_beam_and_do_not_change_the_records(
    smoke_workdir, tmp_path, capfd
):
    # Beam's worker processes import pipeline.ingest by name.
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    workdir = tmp_path / "work"
    result = run_pipeline(
        workdir,
        "--stages=ingest",
        "--beam_pipeline_args=--direct_num_workers=2 --direct_running_mode=multi_processing",
        env=env,
    )
    # Two SDK worker processes ran the pipeline (the default runs it in this process)...
    harnesses = [
        line
        for line in result.stderr.splitlines()
        if "Python sdk harness starting" in line and "Worker:" not in line
    ]
    assert len(harnesses) == 2, result.stderr[-4000:]
    # ...and wrote the same records: how Beam runs is not part of the stage's config.
    manifest = json.loads((workdir / "ingest" / "manifest.json").read_text())
    smoke_manifest = json.loads((smoke_workdir / "ingest" / "manifest.json").read_text())
    assert manifest["output_fingerprint"] == smoke_manifest["output_fingerprint"]
    assert manifest["config"] == smoke_manifest["config"]

    # The runner hands its Beam options to Beam: a bad one fails the stage (Beam's argument
    # parser exits), and no output is left.
    bad = tmp_path / "bad"
    with pytest.raises(SystemExit):
        runner.Runner(
            smoke.get_config(), bad, beam_pipeline_args=["--direct_running_mode=bogus"]
        ).run(["ingest"])
    assert "--direct_running_mode: invalid choice: 'bogus'" in capfd.readouterr().err
    assert not (bad / "ingest").exists() and not list(bad.glob(".ingest.*"))
