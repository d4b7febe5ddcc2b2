"""The evaluate stage's detector (pipeline.evaluate.detector_eval) and where its figures and
weights go: metrics.json, TensorBoard, evaluate/detector/, the export's `detect` signature and
the model card; and an export from a workdir without a detector.

The smoke workdir (tests/conftest.py, shared, read-only) holds a run with the detector on
(evaluate.detector defaults to True); the stage-level tests read it or copy it.
"""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from configs import smoke
from gan_keras.export import layout
from gan_keras.provenance import detector as detector_lib
from pipeline.evaluate import detector_eval, generator_eval
from pipeline.export import export_stage


def test_config_fields_are_validated():
    config = smoke.get_config()
    generator_eval.validate_config(config)
    # Values a config file or a --config.evaluate.<field> flag can set (ml_collections keeps
    # the field's type, a bool where an int goes, or None).
    for field, value, message in [
        ("detector", None, "must be a bool"),
        ("detector_steps", 0, "must be an integer in"),
        ("detector_steps", True, "must be an integer in"),
        ("detector_steps", None, "must be an integer in"),
        ("detector_steps", 10**7, "must be an integer in"),
    ]:
        bad = smoke.get_config()
        setattr(bad.evaluate, field, value)
        with pytest.raises(ValueError, match=rf"config\.evaluate\.{field}=.*{message}"):
            generator_eval.validate_config(bad)


def test_turned_off_it_trains_nothing_and_says_so(tmp_path):
    config = smoke.get_config()
    config.evaluate.detector = False
    entry = detector_eval.run_detector(
        config, tmp_path, tmp_path, None, np.zeros([0]), conditional=False, num_classes=None
    )
    assert entry == {
        "note": "not trained (evaluate.detector=False): the export has no detect signature"
    }
    assert not (tmp_path / detector_lib.STAGE_SUBDIR).exists()


@pytest.mark.slow
def test_metrics_tensorboard_and_model_card_carry_the_detectors_auc(smoke_workdir):
    metrics = json.loads((smoke_workdir / "evaluate" / "metrics.json").read_text())
    entry = metrics["detector"]
    for key in detector_lib.AUC_KEYS:
        assert 0.0 <= entry[key] <= 1.0, key
    # The smoke generator (300 steps on digits) is easy to tell from real digits.
    assert entry["auc_clean"] > 0.9, entry
    assert entry["eval_generated"] == metrics["num_samples"]
    assert entry["eval_real"] == metrics["num_real"]
    assert entry["train_real"] == entry["train_generated"] == metrics["num_real_train"]
    saved = json.loads((smoke_workdir / "evaluate" / "detector" / "detector.json").read_text())
    assert saved["weights_sha256"] == entry["weights_sha256"]
    assert saved["auc_clean"] == entry["auc_clean"]

    acc = event_accumulator.EventAccumulator(
        str(smoke_workdir / "train" / "logs"), size_guidance={"tensors": 0}
    )
    acc.Reload()
    for key in detector_lib.AUC_KEYS:
        assert f"evaluate/detector/{key}" in acc.Tags()["tensors"], key

    model_dir = smoke_workdir / "export" / "generator" / "1"
    info = json.loads(layout.asset_path(model_dir, layout.MODEL_INFO_ASSET).read_text())
    assert "detect" in info["signatures"]
    assert info["detector"]["weights_sha256"] == entry["weights_sha256"]
    card = layout.asset_path(model_dir, layout.MODEL_CARD_ASSET).read_text()
    intended_use = " ".join(card[card.index("## Intended use") :].split())
    assert f"{entry['auc_clean']:.3f} clean, {entry['auc_jpeg75']:.3f} after JPEG" in intended_use
    assert f"FD {metrics['frechet_distance']:.4g}. A stronger generator makes this AUC lower" in (
        intended_use
    )


@pytest.mark.slow
def test_detect_signature_matches_the_keras_detector(smoke_workdir):
    """The exported signature against the classifier the evaluate stage saved. (The export,
    detect included, loads where the project is not importable: test_end_to_end.py.)"""
    model_dir = smoke_workdir / "export" / "generator" / "1"
    loaded = tf.saved_model.load(str(model_dir))
    sampled = loaded.signatures["sample"](
        num_samples=tf.constant(4), seed=tf.constant(0, tf.int64)
    )["images"]
    noise = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 1), dtype=np.uint8)
    images = np.concatenate([noise, sampled.numpy()])
    probabilities = loaded.signatures["detect"](images=tf.constant(images))["probability"]
    model, _ = detector_lib.load_detector(smoke_workdir / "evaluate" / "detector")
    expected = detector_lib.probabilities(model, images)
    np.testing.assert_allclose(probabilities.numpy(), expected, rtol=1e-4, atol=1e-6)
    # Its own samples (of other latents than it was trained or scored on) it calls its own.
    assert np.mean(expected[6:]) > 0.5


@pytest.mark.slow
def test_export_without_a_detector_works_as_before(smoke_workdir, tmp_path):
    """A workdir evaluated before the detector existed (or with evaluate.detector=False)."""
    workdir = tmp_path / "work"
    for stage in ("ingest", "train", "evaluate"):
        shutil.copytree(smoke_workdir / stage, workdir / stage)
    shutil.rmtree(workdir / "evaluate" / detector_lib.STAGE_SUBDIR)
    result = export_stage.run_export(smoke.get_config(), workdir, workdir / "export")
    assert result["exported"] and result["version"] == 1
    model_dir = workdir / "export" / "generator" / "1"
    info = json.loads(layout.asset_path(model_dir, layout.MODEL_INFO_ASSET).read_text())
    assert "detect" not in info["signatures"] and "detector" not in info
    assert "sample" in info["signatures"]
