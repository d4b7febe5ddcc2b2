"""Training health in real runs: a D that memorises a tiny training set is reported (log line,
train manifest), and the smoke run, which is healthy, is not. (ADA's p following r_t is tested
in tests/gan_keras/training/test_ada.py, without a whole run.)"""

import json

import pytest
from helpers import run_pipeline

from pipeline import runner
from pipeline import workdir as workdir_layout

# Every test here trains a run until its health checks trip.
pytestmark = pytest.mark.slow


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
    """5% of the digits for training (~90 images), 95% held out: by step 700 D calls its
    training images real far more often than the held-out ones (it tripped at step 600 when
    this test was written)."""
    workdir = tmp_path / "work"
    result = run_pipeline(
        workdir,
        "--stages=ingest,train",
        "--config.data.eval_fraction=0.95",
        "--config.train.steps=700",
        "--config.train.batch_size=32",
    )
    health = _health(workdir)
    assert not health["ok"]
    [warning] = [w for w in health["warnings"] if w["kind"] == "d_overfitting"]
    assert warning["value"] >= warning["threshold"]
    assert "ada_target" in warning["fix"]
    # The run's own advice: 700 steps of 32 over its 90 train images, under ADA's 250 passes.
    assert "the 90 training images" in warning["fix"] and "249 passes" in warning["fix"]
    assert "training health: d overfitting" in result.stderr
    assert json.loads(json.dumps(health)) == health  # the manifest holds it as JSON
