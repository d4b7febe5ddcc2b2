"""assets.extra/tf_serving_warmup_requests: written at export as TF Serving reads it, the same
bytes with or without tensorflow-serving-api, and replayed by our server before it serves."""

import logging

import helpers
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from gan_keras.export import layout, warmup
from gan_keras.export import sampling_model as gan_export
from gan_keras.serving import app as serving_app
from gan_keras.serving import versions as serving_versions

LATENT = 8
CLASSES = 3


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("warmup")
    for name, classes in (("uncond", 0), ("cond", CLASSES)):
        generator = helpers.tiny_generator(
            classes > 0, 0, latent_dim=LATENT, num_classes=CLASSES, channels=1
        )
        gan_export.export_generator(generator, root / name, latent_dim=LATENT, num_classes=classes)
    return root


def _records(path):
    return [r.numpy() for r in tf.data.TFRecordDataset(str(path))]


@pytest.mark.parametrize("model", ["uncond", "cond"])
def test_export_writes_prediction_logs_tf_serving_reads(bases, model):
    path = layout.asset_path(bases / model / "1", layout.WARMUP_ASSET)
    logs = [prediction_log_pb2.PredictionLog.FromString(r) for r in _records(path)]
    requests = [log.predict_log.request for log in logs]
    assert all(log.WhichOneof("log_type") == "predict_log" for log in logs)
    signatures = [r.model_spec.signature_name for r in requests]
    assert signatures.count("serving_default") == len(warmup.WARMUP_BATCH_SIZES)
    assert {"sample", "serving_default_png", "sample_png"} <= set(signatures)
    batches = sorted(
        tf.make_ndarray(r.inputs["z"]).shape[0]
        for r in requests
        if r.model_spec.signature_name == "serving_default"
    )
    assert batches == sorted(warmup.WARMUP_BATCH_SIZES)
    expected_inputs = {"z", "label"} if model == "cond" else {"z"}
    assert {
        frozenset(r.inputs) for r in requests if r.model_spec.signature_name == "serving_default"
    } == {frozenset(expected_inputs)}
    # Every request is one the exported signatures accept.
    loaded = tf.saved_model.load(str(bases / model / "1"))
    for request in requests:
        fn = loaded.signatures[request.model_spec.signature_name]
        fn(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})


def test_without_tensorflow_serving_api_the_bytes_are_the_same(monkeypatch):
    requests = warmup.generator_warmup_requests(
        LATENT, CLASSES, ["serving_default", "sample", "serving_default_png", "sample_png"]
    )
    requests.append(("serving_default", {"z": np.arange(300, dtype=np.float32).reshape(3, 100)}))
    with_protos = [warmup.encode_predict_log(s, i, model_name="m") for s, i in requests]
    with_protos += [warmup.encode_predict_log(s, i) for s, i in requests]
    monkeypatch.setattr(warmup, "_protos", lambda: None)
    without = [warmup.encode_predict_log(s, i, model_name="m") for s, i in requests]
    without += [warmup.encode_predict_log(s, i) for s, i in requests]
    assert without == with_protos
    # ...and the fallback reads what the protos wrote.
    for record, (signature_name, inputs) in zip(with_protos, requests + requests, strict=True):
        decoded_name, decoded = warmup.decode_predict_log(record)
        assert decoded_name == signature_name and set(decoded) == set(inputs)
        for name, value in inputs.items():
            np.testing.assert_array_equal(decoded[name], value)
            assert decoded[name].dtype == np.asarray(value).dtype
    other = prediction_log_pb2.PredictionLog()
    other.classify_log.request.model_spec.name = "m"
    assert warmup.decode_predict_log(other.SerializeToString()) is None


def test_server_replays_the_warmup_file_before_serving(bases, monkeypatch, caplog):
    calls = []
    run = serving_versions.Servable.run

    def spy(self, signature_name, inputs):
        calls.append((signature_name, {k: np.shape(v) for k, v in inputs.items()}))
        return run(self, signature_name, inputs)

    monkeypatch.setattr(serving_versions.Servable, "run", spy)
    with caplog.at_level(logging.INFO):
        app = serving_app.create_app(bases / "cond", "g", poll_seconds=0)
    try:
        path = layout.asset_path(bases / "cond" / "1", layout.WARMUP_ASSET)
        expected = warmup.read_warmup_requests(path)
        assert [name for name, _ in calls] == [name for name, _ in expected]
        assert ("serving_default", {"z": (16, LATENT), "label": (16,)}) in calls
        assert app.config["REGISTRY"].current().warmup_requests == len(expected)
        assert f"with {len(expected)} requests" in caplog.text
    finally:
        app.config["REGISTRY"].stop()


def test_a_failing_warmup_request_fails_the_load(bases, tmp_path):
    """As in TF Serving: the version is not served; the previous one keeps serving."""
    import shutil

    base = tmp_path / "g"
    shutil.copytree(bases / "uncond" / "1", base / "1")
    app = serving_app.create_app(base, "g", poll_seconds=0)
    try:
        shutil.copytree(bases / "uncond" / "1", base / "2")
        warmup.write_warmup_file(
            layout.asset_path(base / "2", layout.WARMUP_ASSET),
            [("serving_default", {"z": np.zeros([1, LATENT + 1], np.float32)})],
        )
        registry = app.config["REGISTRY"]
        registry.refresh()
        assert registry.current().version == 1
        status = app.test_client().get("/v1/models/g").get_json()["model_version_status"]
        assert [(s["version"], s["state"]) for s in status] == [("2", "END"), ("1", "AVAILABLE")]
        assert status[0]["status"]["error_message"]
    finally:
        app.config["REGISTRY"].stop()
