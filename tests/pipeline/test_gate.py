"""The gate refuses a generator whose training collapsed, whatever its score, and lets a
D-overfitting warning through (its samples are what the score judges)."""

import json

from pipeline import gate
from pipeline import workdir as workdir_layout


def _metrics(*kinds):
    warnings = [{"kind": kind, "step": 1500} for kind in kinds]
    return {"frechet_distance": 1.0, "training_health": {"ok": not kinds, "warnings": warnings}}


def test_mode_collapse_refuses_the_blessing(tmp_path):
    decision = gate.decide_gate(_metrics("mode_collapse"), "frechet_distance", 5.0, tmp_path)
    assert decision["blessed"] is False
    assert decision["reason"] == "training health: mode collapse at step 1500"


def test_overfitting_and_healthy_runs_are_judged_by_the_score(tmp_path):
    for metrics in (_metrics(), _metrics("d_overfitting"), {"frechet_distance": 1.0}):
        assert gate.decide_gate(metrics, "frechet_distance", 5.0, tmp_path)["blessed"] is True


def test_training_health_reads_the_train_manifest(tmp_path):
    assert gate.training_health(tmp_path) is None
    train = workdir_layout.train_dir(tmp_path)
    train.mkdir(parents=True)
    health = {"ok": True, "warnings": []}
    (train / "manifest.json").write_text(json.dumps({"summary": {"health": health}}))
    assert gate.training_health(tmp_path) == health
