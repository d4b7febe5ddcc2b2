"""Training health in real runs: a D that memorises a tiny training set is reported (log line,
train manifest, model card), and the smoke run, which is healthy, is not."""

import json

from helpers import run_pipeline

from pipeline import runner
from pipeline import workdir as workdir_layout


def _health(workdir) -> dict:
    manifest = runner.read_manifest(workdir_layout.train_dir(workdir))
    return manifest["summary"]["health"]


def test_the_smoke_run_is_healthy(smoke_workdir):
    health = _health(smoke_workdir)
    assert health["ok"], health["warnings"]
    values = health["last_values"]
    # Every check ran: D's calls on training vs held-out images, r_t, sample diversity.
    for name in ("health/d_overfit_gap", "health/r_t", "health/diversity_ratio"):
        assert name in values, sorted(values)
    assert 0.3 < values["health/diversity_ratio"] < 3


def test_a_discriminator_memorising_90_images_is_reported(tmp_path):
    """5% of the digits for training (~90 images), 95% held out: by step 800 D calls its
    training images real far more often than the held-out ones (it tripped at step 600 when
    this test was written)."""
    workdir = tmp_path / "work"
    result = run_pipeline(
        workdir,
        "--stages=ingest,train",
        "--config.data.eval_fraction=0.95",
        "--config.train.steps=800",
        "--config.train.batch_size=32",
    )
    health = _health(workdir)
    assert not health["ok"]
    [warning] = [w for w in health["warnings"] if w["kind"] == "d_overfitting"]
    assert warning["value"] >= warning["threshold"]
    assert "ada_target" in warning["fix"]
    assert "training health: d overfitting" in result.stderr
    assert json.loads(json.dumps(health)) == health  # the manifest holds it as JSON


def test_adaptive_augmentation_engages_on_the_same_90_images(tmp_path):
    """With train.ada_target set, p rises from 0 once D's r_t passes the target (0.2 here:
    this tiny D's r_t sits near 0.6, the paper's target, at which p would hover near 0)."""
    workdir = tmp_path / "work"
    run_pipeline(
        workdir,
        "--stages=ingest,train",
        "--config.data.eval_fraction=0.95",
        "--config.train.steps=800",
        "--config.train.ada_target=0.2",
        "--config.train.ada_speed_images=20000",
    )
    summary = runner.read_manifest(workdir_layout.train_dir(workdir))["summary"]
    assert summary["ada_p"] > 0.05, summary["ada_p"]
    assert 0 <= summary["last_window_metrics"]["ada_p"] <= 1
