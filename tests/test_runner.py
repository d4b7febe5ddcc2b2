"""The pipeline runner: config overrides, validation before work, caching, resume rules."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, run_pipeline

from configs import smoke
from pipeline import runner, stages


def test_unknown_config_field_fails_before_any_work(tmp_path):
    workdir = tmp_path / "work"
    result = run_pipeline(workdir, "--config.train.stepz=5", check=False)
    assert result.returncode != 0
    assert "stepz" in result.stderr
    assert not workdir.exists()


def test_wrong_type_fails_before_any_work_naming_the_field(tmp_path):
    workdir = tmp_path / "work"
    result = run_pipeline(workdir, "--config.train.steps=many", check=False)
    assert result.returncode != 0
    assert "train.steps" in result.stderr
    assert not workdir.exists()


def test_invalid_value_fails_before_any_work_naming_the_field(tmp_path):
    workdir = tmp_path / "work"
    result = run_pipeline(workdir, "--config.train.loss=wasserstein", check=False)
    assert result.returncode == 1
    assert "train.loss" in result.stderr and "wasserstein" in result.stderr
    assert not workdir.exists()


def test_console_script_runs_the_same_entry_point(tmp_path):
    script = shutil.which("gan-pipeline", path=os.path.dirname(sys.executable))
    assert script, "the gan-pipeline console script is not installed (pip install -e .)"
    workdir = tmp_path / "work"
    result = subprocess.run([script, f"--config={REPO / 'configs/smoke.py'}", f"--workdir={workdir}",
                             "--stages=ingest"], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((workdir / "ingest" / "manifest.json").read_text())["status"] == "complete"


def test_unknown_stage_is_rejected(tmp_path):
    result = run_pipeline(tmp_path / "work", "--stages=ingest,deploy", check=False)
    assert result.returncode != 0 and "deploy" in result.stderr


def test_stage_without_its_inputs_names_the_missing_stage(tmp_path):
    result = run_pipeline(tmp_path / "work", "--stages=train", check=False)
    assert result.returncode == 1
    assert "no completed 'ingest' output" in result.stderr


def _copy(smoke_workdir, tmp_path, stages=("ingest", "train")):
    workdir = tmp_path / "work"
    for stage in stages:
        shutil.copytree(smoke_workdir / stage, workdir / stage)
    return workdir


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


def test_tampered_output_is_not_taken_as_cached(smoke_workdir, tmp_path):
    workdir = _copy(smoke_workdir, tmp_path, stages=("ingest",))
    config = smoke.get_config()
    stats_path = workdir / "ingest" / "stats.json"
    stats_path.write_text(stats_path.read_text() + " ")
    runner.Runner(config, workdir).run(["ingest"])
    manifest = json.loads((workdir / "ingest" / "manifest.json").read_text())
    assert manifest["output_fingerprint"] == runner.output_fingerprint(workdir / "ingest", "ingest")
    assert not list(workdir.glob(".ingest.*"))  # no temp directories left behind


def test_stage_config_ignores_how_beam_runs():
    a, b = smoke.get_config(), smoke.get_config()
    b.data.beam_pipeline_args = "--direct_num_workers=2"
    assert runner.stage_config(a, "ingest") == runner.stage_config(b, "ingest")
    b.data.resolution = 32
    assert runner.stage_config(a, "ingest") != runner.stage_config(b, "ingest")


@pytest.mark.parametrize("override, field", [
    ("train.ema_half_life_images=-5.0", "train.ema_half_life_images"),
    ("train.ema_rampup=2.0", "train.ema_rampup"),
    ("model.batch_norm_momentum=1.0", "model.batch_norm_momentum"),
    ("model.network_resolution=30", "model.network_resolution"),
])
def test_recipe_fields_are_validated_before_any_work(override, field):
    config = smoke.get_config()
    section, _, assignment = override.partition(".")
    name, _, value = assignment.partition("=")
    config[section][name] = type(config[section][name])(value)
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        stages.get("train").validate(config)
