"""TF Serving's gRPC API, through the official tensorflow-serving-api stubs over loopback:
the same answers as REST, metadata, model status, and request errors as gRPC codes."""

import base64
import importlib.metadata

import grpc
import helpers
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from gan_keras.export import sampling_model as gan_export
from gan_keras.serving import app as serving_app
from gan_keras.serving import grpc_service

# A gRPC server beside REST per module, and parity runs over both.
pytestmark = pytest.mark.slow

LATENT = 8
CLASSES = 3
MAX_BATCH = 16


def test_tensorflow_cpu_is_installed_without_the_full_tensorflow_wheel():
    """tensorflow-serving-api declares a dependency on `tensorflow`; installed with --no-deps
    (scripts/test.sh) it must not have pulled that wheel in beside tensorflow-cpu."""
    assert importlib.metadata.version("tensorflow-cpu")
    assert importlib.metadata.version("tensorflow-serving-api")
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("tensorflow")


class Server:
    """An app's registry served over gRPC on a free loopback port, with client stubs."""

    def __init__(self, app, model_name):
        self.app = app
        self.model_name = model_name
        self.server, port = grpc_service.start_server(
            app.config["REGISTRY"],
            app.config["METRICS"],
            host="127.0.0.1",
            port=0,
            max_batch=MAX_BATCH,
            max_workers=4,
            run_predict=app.config["RUN_PREDICT"],
        )
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.rest = app.test_client()

    def close(self):
        self.channel.close()
        self.server.stop(grace=None).wait()
        self.app.config["REGISTRY"].stop()

    def predict(self, signature_name, inputs, version=None, **fields):
        request = predict_pb2.PredictRequest(**fields)
        request.model_spec.name = self.model_name
        request.model_spec.signature_name = signature_name
        if version is not None:
            request.model_spec.version.value = version
        for name, value in inputs.items():
            tensor = value if isinstance(value, tensor_pb2.TensorProto) else None
            request.inputs[name].CopyFrom(tensor or tf.make_tensor_proto(value))
        response = self.predictions.Predict(request, timeout=60)
        return {name: tf.make_ndarray(t) for name, t in response.outputs.items()}, response

    def rest_predict(self, signature_name, inputs):
        body = {
            "signature_name": signature_name,
            "inputs": {k: np.asarray(v).tolist() for k, v in inputs.items()},
        }
        r = self.rest.post(f"/v1/models/{self.model_name}:predict", json=body)
        assert r.status_code == 200, r.get_json()
        outputs = r.get_json()["outputs"]
        return outputs if isinstance(outputs, dict) else {"images_png_bytes": outputs}


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    root = tmp_path_factory.mktemp("grpc")
    made = {}
    for name, classes in (("uncond", 0), ("cond", CLASSES)):
        generator = helpers.tiny_generator(
            classes > 0, 0, latent_dim=LATENT, num_classes=CLASSES, channels=1
        )
        gan_export.export_generator(generator, root / name, latent_dim=LATENT, num_classes=classes)
        app = serving_app.create_app(root / name, name, max_batch=MAX_BATCH, poll_seconds=0)
        made[name] = Server(app, name)
    yield made
    for server in made.values():
        server.close()


def _z(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, LATENT)).astype(np.float32)


REQUESTS = {
    "uncond": [
        ("serving_default", {"z": _z(3)}),
        ("sample", {"num_samples": np.int32(4), "seed": np.int64(7)}),
        ("serving_default_png", {"z": _z(2)}),
        ("sample_png", {"num_samples": np.int32(2), "seed": np.int64(3)}),
        ("truncated_sample", {"num_samples": np.int32(2), "seed": np.int64(1), "truncation": 0.5}),
    ],
    "cond": [
        ("serving_default", {"z": _z(3), "label": np.array([0, 2, 1], np.int32)}),
        ("sample", {"num_samples": np.int32(4), "seed": np.int64(7), "label": np.int32([])}),
        ("sample", {"num_samples": np.int32(2), "seed": np.int64(7), "label": np.int32([2])}),
        ("sample_png", {"num_samples": np.int32(2), "seed": np.int64(3), "label": np.int32([])}),
    ],
}


@pytest.mark.parametrize(
    "model,index", [(m, i) for m, requests in REQUESTS.items() for i in range(len(requests))]
)
def test_predict_gives_the_same_answers_as_rest(servers, model, index):
    server = servers[model]
    signature_name, inputs = REQUESTS[model][index]
    outputs, response = server.predict(signature_name, inputs)
    assert response.model_spec.name == model
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == signature_name
    rest = server.rest_predict(signature_name, inputs)
    assert set(outputs) == set(rest)
    for name, value in outputs.items():
        if name.endswith("_bytes"):  # TF Serving's REST convention: {"b64": ...} per value
            assert value.dtype == object
            decoded = [base64.b64decode(item["b64"]) for item in rest[name]]
            assert list(value) == decoded
            assert all(png.startswith(b"\x89PNG") for png in decoded)
        else:
            # REST's floats are the float32 values' shortest round-tripping decimals.
            np.testing.assert_array_equal(value, np.asarray(rest[name], value.dtype))


def test_png_signatures_hold_the_images_of_the_plain_ones(servers):
    server = servers["uncond"]
    z = _z(4, seed=5)
    plain, _ = server.predict("serving_default", {"z": z})
    pngs, _ = server.predict("serving_default_png", {"z": z})
    decoded = np.stack([tf.io.decode_png(png).numpy() for png in pngs["images_png_bytes"]])
    np.testing.assert_array_equal(decoded, plain["images"])


def test_output_filter(servers):
    outputs, _ = servers["uncond"].predict("", {"z": _z(2)}, output_filter=["images"])
    assert set(outputs) == {"images"}  # "" is serving_default, as in TF Serving


def test_metadata_lists_the_signatures_as_rest_does(servers):
    server = servers["cond"]
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "cond"
    response = server.predictions.GetModelMetadata(request, timeout=60)
    assert response.model_spec.version.value == 1
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    assert {
        "serving_default",
        "sample",
        *gan_export.CONTROL_SIGNATURES,
        *gan_export.PNG_SIGNATURES,
    } <= set(signatures.signature_def)
    png = signatures.signature_def["sample_png"].outputs["images_png_bytes"]
    assert png.dtype == tf.string.as_datatype_enum
    rest = server.rest.get("/v1/models/cond/metadata").get_json()
    assert rest["metadata"]["signature_def"]["signature_def"] == {
        name: json_format.MessageToDict(
            sig, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
        )
        for name, sig in signatures.signature_def.items()
    }


def test_model_status_reports_available_versions(servers):
    server = servers["uncond"]
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "uncond"
    response = server.models.GetModelStatus(request, timeout=60)
    [status] = response.model_version_status
    assert status.version == 1
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert status.status.error_code == 0 and status.status.error_message == ""
    request.model_spec.version.value = 1
    assert len(server.models.GetModelStatus(request, timeout=60).model_version_status) == 1
    for name, version in (("other", None), ("uncond", 2)):
        bad = get_model_status_pb2.GetModelStatusRequest()
        bad.model_spec.name = name
        if version is not None:
            bad.model_spec.version.value = version
        with pytest.raises(grpc.RpcError) as e:
            server.models.GetModelStatus(bad, timeout=60)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND


def _bad_tensor():
    tensor = tf.make_tensor_proto(_z(2))
    tensor.tensor_content = tensor.tensor_content[:-4]  # one float short of [2, 8]
    return tensor


def _splat(shape, dtype=tf.float32):
    """One value and a shape: TensorFlow repeats the value to fill it."""
    tensor = tf.make_tensor_proto(0, dtype)
    for size in shape:
        tensor.tensor_shape.dim.add().size = size
    return tensor


OK_Z = {"z": _z(2)}
BAD_PREDICTS = [
    # (model, signature, inputs, extra request fields, version, expected code, message fragment)
    ("uncond", "serving_default", OK_Z, {}, 2, "NOT_FOUND", "Specific"),
    ("uncond", "nope", OK_Z, {}, None, "INVALID_ARGUMENT", "not found in signature"),
    ("uncond", "serving_default", {}, {}, None, "INVALID_ARGUMENT", "expects ['z']"),
    ("uncond", "serving_default", {**OK_Z, "x": _z(2)}, {}, None, "INVALID_ARGUMENT", "expects"),
    ("uncond", "serving_default", {"z": _z(2).astype(np.float64)}, {}, None, "INVALID_ARGUMENT",
     "expects float32"),
    ("uncond", "serving_default", {"z": _z(2)[:, :7]}, {}, None, "INVALID_ARGUMENT", "shape"),
    ("uncond", "serving_default", {"z": np.full((1, LATENT), np.nan, np.float32)}, {}, None,
     "INVALID_ARGUMENT", "finite"),
    ("uncond", "serving_default", {"z": np.zeros((MAX_BATCH + 1, LATENT), np.float32)}, {}, None,
     "INVALID_ARGUMENT", "max_batch"),
    ("uncond", "serving_default", {"z": np.array([b"abc"])}, {}, None, "INVALID_ARGUMENT",
     "expects float32"),
    ("uncond", "serving_default", {"z": _bad_tensor()}, {}, None, "INVALID_ARGUMENT",
     "not a valid tensor"),
    # Checked before anything that size is allocated (10^10 floats).
    ("uncond", "serving_default", {"z": _splat([100_000, 100_000])}, {}, None,
     "INVALID_ARGUMENT", "shape"),
    ("uncond", "serving_default", {"z": _splat([10**6, LATENT])}, {}, None,
     "INVALID_ARGUMENT", "max_batch"),
    ("uncond", "project", {"images": _splat([1, 10**5, 10**5, 1], tf.uint8),
                           "steps": np.int32(0)}, {}, None, "INVALID_ARGUMENT", "more values"),
    ("uncond", "serving_default", OK_Z, {"output_filter": ["nope"]}, None, "INVALID_ARGUMENT",
     "output_filter"),
    ("uncond", "sample", {"num_samples": np.int32(-1), "seed": np.int64(0)}, {}, None,
     "INVALID_ARGUMENT", "num_samples"),
    ("uncond", "sample", {"num_samples": np.int32(2), "seed": np.int32(0)}, {}, None,
     "INVALID_ARGUMENT", "expects int64"),
    ("uncond", "interpolate", {"seed_a": np.int64(0), "seed_b": np.int64(1), "steps": np.int32(1)},
     {}, None, "INVALID_ARGUMENT", "steps"),
    ("cond", "serving_default", {"z": _z(2), "label": np.int32([0, 5])}, {}, None,
     "INVALID_ARGUMENT", "out of range"),
    ("cond", "serving_default", {"z": _z(2), "label": np.int32([0])}, {}, None,
     "INVALID_ARGUMENT", "batch size"),
]  # fmt: skip


@pytest.mark.parametrize("case", range(len(BAD_PREDICTS)))
def test_bad_predict_requests_are_client_errors(servers, case):
    model, signature_name, inputs, fields, version, code, fragment = BAD_PREDICTS[case]
    with pytest.raises(grpc.RpcError) as e:
        servers[model].predict(signature_name, inputs, version=version, **fields)
    assert e.value.code().name == code, e.value.details()
    assert fragment in e.value.details()
    # ...and the server still answers.
    outputs, _ = servers["uncond"].predict("serving_default", OK_Z)
    assert outputs["images"].shape == (2, 8, 8, 1)


def test_other_bad_requests(servers):
    server = servers["uncond"]
    unknown_model = predict_pb2.PredictRequest()
    unknown_model.model_spec.name = "other"
    labelled = predict_pb2.PredictRequest()
    labelled.model_spec.name = "uncond"
    labelled.model_spec.version_label = "stable"
    # An unknown model is NOT_FOUND, an unknown label INVALID_ARGUMENT, as in TF Serving.
    for request, code in (
        (unknown_model, grpc.StatusCode.NOT_FOUND),
        (labelled, grpc.StatusCode.INVALID_ARGUMENT),
    ):
        with pytest.raises(grpc.RpcError) as e:
            server.predictions.Predict(request, timeout=60)
        assert e.value.code() == code
    for fields in ([], ["signature_def", "other"]):
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=fields)
        request.model_spec.name = "uncond"
        with pytest.raises(grpc.RpcError) as e:
            server.predictions.GetModelMetadata(request, timeout=60)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:  # no classification signatures: as TF Serving
        server.predictions.Classify(classification_pb2.ClassificationRequest(), timeout=60)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_grpc_requests_are_counted_in_the_metrics(servers):
    # Counted as increments: earlier tests on this module's server made requests too.
    server = servers["cond"]

    def counts():
        text = server.rest.get("/monitoring/prometheus/metrics").get_data(as_text=True)
        found = {}
        for status in ("OK", "INVALID_ARGUMENT"):
            series = (
                f'gan_serving_requests_total{{api="predict",entrypoint="gRPC",model_name="cond",'
                f'signature_name="serving_default",status="{status}"}} '
            )
            lines = [line for line in text.splitlines() if line.startswith(series)]
            found[status] = float(lines[0][len(series) :]) if lines else 0.0
        return found

    before = counts()
    server.predict("serving_default", {"z": _z(1), "label": np.int32([1])})
    with pytest.raises(grpc.RpcError):
        server.predict("serving_default", {"z": _z(1), "label": np.int32([9])})
    after = counts()
    assert {k: after[k] - before[k] for k in after} == {"OK": 1.0, "INVALID_ARGUMENT": 1.0}
