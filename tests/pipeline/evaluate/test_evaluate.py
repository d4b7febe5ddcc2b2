"""The evaluate stage on a tiny synthetic ingest dir (sklearn digits, 16x16)."""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import NUM_SAMPLES, REPO, real_plus_noise_fn, small_config, write_ingest

from configs import default
from gan_keras import images
from gan_keras.data import input_pipeline
from gan_keras.evaluation import feature_extractors, reference_scores
from pipeline import gate
from pipeline import judge as pipeline_judge
from pipeline.evaluate import generator_eval, scoring, summary

# ----------------------------------------------------------------------------
# Fixtures: ingest dirs written directly as GZIP TFRecords (helpers.write_ingest)
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("labelled")
    data = write_ingest(workdir)
    return workdir, data


# ----------------------------------------------------------------------------
# Fake generators
# ----------------------------------------------------------------------------


def noise_fn(num, seed, labels=None):
    return np.random.default_rng(seed + 100).integers(0, 256, size=(num, 16, 16, 1), dtype=np.uint8)


def collapsed_fn(train_x):
    def sample_fn(num, seed, labels=None):
        return np.repeat(train_x[:1], num, axis=0)

    return sample_fn


class Memorizer(keras.layers.Layer):
    """Picks a stored image per sample from z (and the label): a tiny Keras 'generator'."""

    def __init__(self, bank, **kwargs):
        super().__init__(**kwargs)
        self.bank = np.asarray(bank, np.float32)  # [K, M, H, W, C] in [-1, 1]
        self.scale = self.add_weight(shape=(), initializer="ones", trainable=False, name="scale")

    def call(self, z, label=None):
        k, m = self.bank.shape[:2]
        idx = keras.ops.cast(keras.ops.floor(keras.ops.sigmoid(z[:, 0]) * (m - 1e-3)), "int32")
        if label is not None:
            idx = keras.ops.cast(label, "int32") * m + idx
        flat = keras.ops.reshape(
            keras.ops.convert_to_tensor(self.bank), (k * m, *self.bank.shape[2:])
        )
        return keras.ops.take(flat, idx, axis=0) * self.scale


def memorizer_generator(train_x, train_y, conditional, latent_dim=8, per_class=40):
    bank = np.stack([images.to_float(train_x[train_y == c][:per_class]) for c in range(10)])
    z = keras.Input((latent_dim,), name="z")
    if conditional:
        label = keras.Input((), dtype="int32", name="label")
        return keras.Model([z, label], Memorizer(bank)(z, label))
    return keras.Model(z, Memorizer(bank.reshape(1, -1, *bank.shape[2:]))(z))


@pytest.fixture
def fake_train(monkeypatch):
    """Installs a pipeline.checkpoints.load_generator_with_info returning `holder['generator']`
    (and `holder['checkpoint']`, a description of the checkpoint it came from)."""
    holder = {
        "checkpoint": {
            "checkpoint": "latest",
            "checkpoint_step": 300,
            "checkpoint_path": "ckpt-300",
        }
    }

    def load_generator_with_info(config, workdir):
        return holder["generator"], dict(holder["checkpoint"])

    from pipeline import checkpoints

    monkeypatch.setattr(checkpoints, "load_generator_with_info", load_generator_with_info)
    return holder


# ----------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------


def test_read_split_decodes_ingested_records(labelled):
    workdir, (train_x, train_y, eval_x, eval_y) = labelled
    x, y = input_pipeline.read_split(workdir / "ingest", "eval")
    np.testing.assert_array_equal(x, eval_x)
    np.testing.assert_array_equal(y, eval_y)
    x, _ = input_pipeline.read_split(workdir / "ingest", "train", limit=700)
    assert x.shape == (700, 16, 16, 1) and x.dtype == np.uint8
    with pytest.raises(FileNotFoundError, match="ingest"):
        input_pipeline.read_split(workdir / "nowhere" / "ingest", "train")


@pytest.mark.slow
def test_metrics_rank_good_noise_and_collapsed_generators(labelled):
    workdir, (train_x, train_y, _, _) = labelled
    config = small_config()
    kw = {"conditional": False}
    good = scoring.compute_metrics(config, workdir, real_plus_noise_fn(train_x, train_y), **kw)
    noise = scoring.compute_metrics(config, workdir, noise_fn, **kw)
    collapsed = scoring.compute_metrics(config, workdir, collapsed_fn(train_x), **kw)

    assert good["extractor"] == "domain_classifier"
    assert good["classifier_eval_accuracy"] > 0.8  # digits are easy: the features are meaningful
    floor = good["references"]["real_floor"]
    ceiling = good["references"]["noise_ceiling"]
    # Real-vs-real is the best score; the good generator (real train images
    # plus slight noise) ties with it up to sampling noise.
    assert floor["frechet_distance"] < 1.2 * good["frechet_distance"]
    assert good["frechet_distance"] < 2 * floor["frechet_distance"]
    assert (
        floor["frechet_distance"]
        < min(collapsed["frechet_distance"], noise["frechet_distance"]) / 5
    )
    assert good["frechet_distance"] < collapsed["frechet_distance"]
    assert good["frechet_distance"] < noise["frechet_distance"]
    assert noise["frechet_distance"] == pytest.approx(ceiling["frechet_distance"], rel=0.3)
    assert good["kid_mean"] < collapsed["kid_mean"] and good["kid_mean"] < noise["kid_mean"]
    assert good["precision"] > 0.7 and good["recall"] > 0.7
    assert collapsed["recall"] < 0.05
    assert noise["precision"] < 0.05
    # Confident and diverse predictions on good samples; one class for collapse.
    assert good["classifier_score"] > 5.0
    assert collapsed["classifier_score"] == pytest.approx(1.0, abs=0.05)
    assert good["num_samples"] == NUM_SAMPLES and good["num_real"] == 597


@pytest.mark.slow
def test_classifier_is_cached_and_retrained_when_data_changes(labelled, tmp_path, monkeypatch):
    workdir, (train_x, train_y, _, _) = labelled
    config = small_config()
    cache = workdir / "judge"
    sample_fn = real_plus_noise_fn(train_x, train_y)
    first = scoring.compute_metrics(config, workdir, sample_fn, conditional=False)
    mtime = (cache / feature_extractors.CLASSIFIER_MODEL_FILE).stat().st_mtime_ns
    second = scoring.compute_metrics(config, workdir, sample_fn, conditional=False)
    assert (cache / feature_extractors.CLASSIFIER_MODEL_FILE).stat().st_mtime_ns == mtime
    assert second["frechet_distance"] == pytest.approx(first["frechet_distance"], rel=1e-6)
    assert second["extractor_fingerprint"] == first["extractor_fingerprint"]

    # Same cache, changed ingest data: the stale classifier is not reused.
    # (Retraining is intercepted: the decision is what is tested, not training.)
    other = tmp_path / "work"
    shutil.copytree(workdir / "ingest", other / "ingest")
    shutil.copytree(cache, other / "judge")
    write_ingest(other, num_train=1000)
    retrained = []

    def spy(cls, cache_dir, train_images, *args, **kwargs):
        retrained.append(len(train_images))
        raise _Retrained()

    monkeypatch.setattr(feature_extractors.DomainClassifier, "_train", classmethod(spy))
    with pytest.raises(_Retrained):
        scoring.compute_metrics(config, other, sample_fn, conditional=False)
    assert retrained == [1000]
    # A changed recipe (here: more epochs) retrains too.
    config.evaluate.classifier_epochs = 50
    with pytest.raises(_Retrained):
        scoring.compute_metrics(config, workdir, sample_fn, conditional=False)


class _Retrained(Exception):
    pass


@pytest.mark.slow
def test_run_evaluate_writes_metrics_logs_and_gate(labelled, fake_train, tmp_path):
    workdir, (train_x, train_y, _, _) = labelled
    fake_train["generator"] = memorizer_generator(train_x, train_y, conditional=False)
    config = small_config()
    out = workdir / "evaluate"
    metrics = generator_eval.run_evaluate(config, workdir, out)
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["frechet_distance"] == pytest.approx(metrics["frechet_distance"])
    for key in (
        "frechet_distance",
        "kid_mean",
        "kid_std",
        "classifier_score",
        "precision",
        "recall",
        "extractor",
        "num_samples",
        "num_real",
        "references",
        "classifier_eval_accuracy",
    ):
        assert key in on_disk, key
    assert on_disk["blessed"] is True
    assert on_disk["gate"]["metric"] == "frechet_distance"
    assert on_disk["gate"]["baseline"] is None
    assert on_disk["gate"]["threshold"] is None  # inf: stored as null, strict JSON
    json.loads((out / "metrics.json").read_text(), parse_constant=_reject_constant)
    # Into the training run's TensorBoard run (train/test_tensorboard_hparams.py reads it).
    assert list((workdir / "train" / "logs").glob("events.out.tfevents.*"))
    assert gate.check_blessing(workdir) == (True, on_disk["gate"]["reason"])
    # Which checkpoint was scored, and a line a person can read.
    assert on_disk["model"]["checkpoint_step"] == 300 and on_disk["model"]["checkpoint"] == "latest"
    assert on_disk["summary"] == summary.quality_summary(on_disk)
    assert on_disk["summary"].startswith(
        f"FD {summary._number(on_disk['frechet_distance'])}: real-data floor "
    )
    assert "checkpoint step 300 (latest)" in on_disk["summary"]
    # The packaged reference list has nothing for this judge: said in one field.
    assert "reference_models" not in on_disk["references"]
    assert on_disk["extractor_fingerprint"][:12] in on_disk["references_note"]

    # Threshold below the measured value: rejected, and the export gate agrees.
    config.evaluate.threshold = metrics["frechet_distance"] / 2
    rejected = generator_eval.run_evaluate(config, workdir, out)
    assert rejected["blessed"] is False
    assert "above the threshold" in rejected["gate"]["reason"]
    blessed, reason = gate.check_blessing(workdir)
    assert not blessed and "above the threshold" in reason


def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def _export_evaluation(workdir, version, metrics):
    path = pathlib.Path(
        workdir, "export", "generator", str(version), "assets.extra", "evaluation.json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics))


@pytest.mark.slow
def test_gate_compares_with_the_exported_version(labelled, fake_train, tmp_path):
    src, (train_x, train_y, _, _) = labelled
    workdir = tmp_path / "work"
    shutil.copytree(src / "ingest", workdir / "ingest")
    if (src / "judge").exists():
        shutil.copytree(src / "judge", workdir / "judge")
    fake_train["generator"] = memorizer_generator(train_x, train_y, conditional=False)
    config = small_config()
    out = workdir / "evaluate"
    current = generator_eval.run_evaluate(config, workdir, out)
    fd = current["frechet_distance"]
    same_space = {
        "extractor": current["extractor"],
        "extractor_fingerprint": current["extractor_fingerprint"],
    }

    # The exported version (highest = 3) was better: not blessed.
    _export_evaluation(workdir, 1, {**same_space, "frechet_distance": fd * 10})
    _export_evaluation(workdir, 3, {**same_space, "frechet_distance": fd / 2})
    (workdir / "export" / "generator" / ".3.tmp-x").mkdir()  # temp dirs are not versions
    worse = generator_eval.run_evaluate(config, workdir, out)
    assert worse["blessed"] is False
    assert worse["gate"]["baseline"]["version"] == 3
    assert "worse than exported version 3" in worse["gate"]["reason"]
    assert gate.check_blessing(workdir)[0] is False

    # A tolerance large enough lets it through.
    config.evaluate.baseline_tolerance = 1.5
    assert generator_eval.run_evaluate(config, workdir, out)["blessed"] is True
    config.evaluate.baseline_tolerance = 0.0

    # Exported version worse than the current model: blessed.
    _export_evaluation(workdir, 4, {**same_space, "frechet_distance": fd * 2})
    better = generator_eval.run_evaluate(config, workdir, out)
    assert better["blessed"] is True and better["gate"]["baseline"]["version"] == 4

    # check_blessing re-reads the exports: a better version exported after the evaluation wins.
    _export_evaluation(workdir, 5, {**same_space, "frechet_distance": fd / 3})
    blessed, reason = gate.check_blessing(workdir)
    assert not blessed and "version 5" in reason

    # A different feature space is never compared.
    _export_evaluation(
        workdir,
        6,
        {"extractor": "inception_v3", "extractor_fingerprint": "x", "frechet_distance": 0.0},
    )
    other = generator_eval.run_evaluate(config, workdir, out)
    assert other["blessed"] is True and other["gate"]["baseline"] is None
    assert "not comparable" in other["gate"]["reason"]


def test_check_blessing_without_evaluation(tmp_path):
    blessed, reason = gate.check_blessing(tmp_path)
    assert not blessed and "run the evaluate stage" in reason


def test_conditional_model_gets_intra_fid_and_label_accuracy(labelled, fake_train, tmp_path):
    workdir, (train_x, train_y, _, _) = labelled
    config = small_config(conditional=True)
    config.evaluate.gate_metric = "intra_frechet_distance"
    fake_train["generator"] = memorizer_generator(train_x, train_y, conditional=True)
    metrics = generator_eval.run_evaluate(config, workdir, tmp_path / "evaluate")
    assert set(metrics["per_class_frechet_distance"]) == {str(c) for c in range(10)}
    assert metrics["intra_frechet_distance"] == pytest.approx(
        np.mean(list(metrics["per_class_frechet_distance"].values()))
    )
    # The memorizer returns real images of the requested class.
    assert metrics["generated_label_accuracy"] > 0.8
    assert metrics["gate"]["metric"] == "intra_frechet_distance" and metrics["blessed"] is True

    # Ignoring the label (wrong class images) is caught by the label accuracy.
    wrong = memorizer_generator(train_x, (train_y + 1) % 10, conditional=True)
    fake_train["generator"] = wrong
    bad = generator_eval.run_evaluate(config, workdir, tmp_path / "evaluate")
    assert bad["generated_label_accuracy"] < 0.3
    assert bad["intra_frechet_distance"] > metrics["intra_frechet_distance"]


@pytest.mark.slow
def test_unlabelled_data_uses_a_rotation_classifier(tmp_path):
    train_x, _, _, _ = write_ingest(tmp_path, labelled=False, num_train=800)
    config = small_config()
    config.evaluate.classifier_min_steps = 150
    metrics = scoring.compute_metrics(
        config, tmp_path, real_plus_noise_fn(train_x, np.zeros(len(train_x))), conditional=False
    )
    assert metrics["classifier"]["mode"] == "rotation"
    assert "rotation" in metrics["classifier"]["task"]
    assert metrics["classifier_score"] is None and "rotation" in metrics["classifier_score_note"]
    assert metrics["classifier_eval_accuracy"] > 0.5  # 4-way chance is 0.25
    assert metrics["frechet_distance"] < metrics["references"]["noise_ceiling"]["frechet_distance"]


def test_validate_config_names_the_field():
    for field, value, match in [
        ("extractor", "vgg", "config.evaluate.extractor"),
        ("num_samples", 1, "config.evaluate.num_samples"),
        ("gate_metric", "precision", "config.evaluate.gate_metric"),
        ("threshold", float("nan"), "config.evaluate.threshold"),
        ("kid_subset_size", 1, "config.evaluate.kid_subset_size"),
    ]:
        config = default.get_config()
        setattr(config.evaluate, field, value)
        with pytest.raises(ValueError, match=match):
            generator_eval.validate_config(config)
    config = default.get_config()
    config.evaluate.gate_metric = "intra_frechet_distance"
    with pytest.raises(ValueError, match="conditional"):
        generator_eval.validate_config(config)
    generator_eval.validate_config(default.get_config())


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(keras.utils, "get_file", refuse)
    import keras.src.utils.file_utils as file_utils

    monkeypatch.setattr(file_utils, "get_file", refuse)


def test_inception_without_weights_is_skipped_not_downloaded(labelled, no_network, tmp_path):
    workdir, (train_x, train_y, _, _) = labelled
    with pytest.raises(feature_extractors.ExtractorUnavailable, match="never downloaded"):
        feature_extractors.KerasInceptionV3Extractor("")
    with pytest.raises(FileNotFoundError, match="inception_weights"):
        feature_extractors.KerasInceptionV3Extractor(str(tmp_path / "missing.h5"))
    config = small_config()
    config.evaluate.extractor = "keras_inception_v3"
    metrics = scoring.compute_metrics(
        config, workdir, real_plus_noise_fn(train_x, train_y), conditional=False
    )
    assert metrics["extractor"] == "domain_classifier"
    assert "keras_inception_v3" in metrics["skipped_extractors"]


@pytest.mark.slow
def test_inception_from_a_local_weights_file(no_network, tmp_path):
    # Random weights written locally stand in for the ImageNet file, in the
    # same legacy HDF5 layout as inception_v3_weights_..._notop.h5.
    model = keras.applications.InceptionV3(
        include_top=False, weights=None, input_shape=(299, 299, 3), pooling="avg"
    )
    weights = tmp_path / "inception_v3_notop.h5"
    try:
        import h5py
        from keras.src.legacy.saving import legacy_h5_format

        with h5py.File(weights, "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, model)
    except ImportError:  # private API moved: the Keras 3 format exercises the same path
        weights = tmp_path / "inception_v3_notop.weights.h5"
        model.save_weights(weights)
    extractor = feature_extractors.KerasInceptionV3Extractor(str(weights), batch_size=2)
    gray = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 1), dtype=np.uint8)
    features, probs = extractor.predict(gray)
    assert features.shape == (3, 2048) and features.dtype == np.float64 and probs is None
    assert np.all(np.isfinite(features))
    # Grayscale is replicated to RGB: the same image in RGB gives the same features.
    np.testing.assert_allclose(
        extractor.features(np.repeat(gray, 3, axis=-1)), features, rtol=1e-5, atol=1e-6
    )
    assert extractor.info["name"] == "keras_inception_v3" and len(extractor.fingerprint) == 64


class _Exported(tf.Module):
    def __init__(self, generator):
        super().__init__()
        self.generator = generator

    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="z")])
    def serve(self, z):
        x = self.generator(z, training=False)
        return {
            "images": tf.cast(tf.clip_by_value(tf.round((x + 1.0) * 127.5), 0, 255), tf.uint8),
            "images_float": x,
        }


@pytest.mark.slow
def test_standalone_command_scores_the_highest_exported_version(labelled, tmp_path):
    src, (train_x, train_y, _, _) = labelled
    workdir = tmp_path / "work"
    shutil.copytree(src / "ingest", workdir / "ingest")
    if (src / "judge").exists():  # same data and recipe: reused, not retrained
        shutil.copytree(src / "judge", workdir / "judge")
    base = workdir / "export" / "generator"
    good = _Exported(memorizer_generator(train_x, train_y, conditional=False))
    tf.saved_model.save(good, str(base / "2"), signatures={"serving_default": good.serve})
    (base / "1").mkdir(parents=True)  # lower version: must not be picked
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "pipeline.evaluate",
        f"--model_base_path={base}",
        f"--workdir={workdir}",
        f"--config={REPO / 'configs' / 'default.py'}",
        f"--config.evaluate.num_samples={NUM_SAMPLES}",
        "--config.evaluate.classifier_epochs=1",
        "--config.evaluate.classifier_min_steps=300",
        "--config.evaluate.classifier_batch_size=64",
        "--config.evaluate.kid_subsets=5",
        "--config.evaluate.kid_subset_size=100",
        "--config.evaluate.classifier_score_splits=5",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "frechet_distance:" in proc.stdout
    written = json.loads((workdir / "evaluate" / "standalone_2.json").read_text())
    assert written["model"]["version"] == 2 and written["model"]["latent_dim"] == 8
    assert written["num_samples"] == NUM_SAMPLES
    assert written["frechet_distance"] < written["references"]["noise_ceiling"]["frechet_distance"]


# ----------------------------------------------------------------------------
# Reference scores and the one-line summary
# ----------------------------------------------------------------------------


def _reference(fingerprint="judge-a", num_samples=5000, fd=8.3, **extra):
    return {
        "judge_fingerprint": fingerprint,
        "num_samples": num_samples,
        "name": "article DCGAN",
        "images": 300_000,
        "frechet_distance": fd,
        "frechet_distance_std": 0.4,
        "seeds": 3,
        "command": "python -m benchmarks.quality",
        **extra,
    }


def test_reference_lookup_matches_judge_fingerprint_and_sample_count_only(tmp_path):
    entries = [
        _reference(),
        _reference(fingerprint="judge-b"),
        _reference(num_samples=10_000),
        _reference(fd=48.9, images=60_000),
    ]
    path = tmp_path / "reference_scores.json"
    path.write_text(json.dumps(entries))
    assert reference_scores.lookup("judge-a", 5000, path) == [entries[0], entries[3]]
    assert reference_scores.lookup("judge-b", 5000, path) == [entries[1]]
    assert reference_scores.lookup("judge-a", 10_000, path) == [entries[2]]
    assert reference_scores.lookup("judge-c", 5000, path) == []
    # The packaged file is valid (and ships empty until benchmarks.quality fills it).
    assert isinstance(reference_scores.load(), list)
    path.write_text(json.dumps([{"name": "x"}]))
    with pytest.raises(ValueError, match="entry 0 lacks judge_fingerprint"):
        reference_scores.lookup("judge-a", 5000, path)


def _metrics(fd, references=(), model=None):
    return {
        "frechet_distance": fd,
        "num_samples": 5000,
        "extractor": "domain_classifier",
        "references": {
            "real_floor": {"frechet_distance": 0.32},
            "noise_ceiling": {"frechet_distance": 95.4},
            **({"reference_models": list(references)} if references else {}),
        },
        "model": model or {},
    }


def test_summary_places_the_model_between_floor_references_and_noise():
    line = summary.quality_summary(
        _metrics(
            7.9,
            [_reference(), _reference(fd=48.9, images=60_000)],
            {"checkpoint": "best by in-training FD", "checkpoint_step": 3500},
        )
    )
    assert line.startswith(
        "FD 7.9: real-data floor 0.32, article DCGAN (300k images) 8.3, "
        "article DCGAN (60k images) 48.9, noise 95.4; "
    )
    assert "0.95x the article DCGAN (300k images), 0.16x the article DCGAN (60k images)" in line
    assert "checkpoint step 3500 (best by in-training FD), 5000 samples" in line
    line = summary.quality_summary(_metrics(7.9))
    assert line.startswith("FD 7.9: real-data floor 0.32, noise 95.4; no reference generator")


def test_metrics_carry_the_reference_scores_of_the_same_judge(
    labelled, fake_train, tmp_path, monkeypatch
):
    src, (train_x, train_y, _, _) = labelled
    workdir = tmp_path / "work"
    shutil.copytree(src / "ingest", workdir / "ingest")
    if (src / "judge").exists():
        shutil.copytree(src / "judge", workdir / "judge")
    fake_train["generator"] = memorizer_generator(train_x, train_y, conditional=False)
    config = small_config()
    judge = pipeline_judge.load_judge(config, workdir)
    entries = [
        _reference(judge.fingerprint, NUM_SAMPLES, fd=2.0),
        _reference(judge.fingerprint, 5000),
        _reference("another judge", NUM_SAMPLES),
    ]
    monkeypatch.setattr(reference_scores, "load", lambda path=None: entries)
    metrics = generator_eval.run_evaluate(config, workdir, workdir / "evaluate")
    assert metrics["references"]["reference_models"] == entries[:1]
    assert "references_note" not in metrics
    assert "article DCGAN (300k images) 2" in metrics["summary"]
    assert f"{metrics['frechet_distance'] / 2.0:.2g}x the article DCGAN" in metrics["summary"]
    assert (
        json.loads((workdir / "evaluate" / "metrics.json").read_text())["summary"]
        == metrics["summary"]
    )
