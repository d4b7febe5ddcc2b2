"""Provenance on the PNGs :predict answers with (the `*_png` signatures' `_bytes` outputs), over
REST and over gRPC: each carries the facts as the image endpoints' images do, signed with a key,
and the recipe names the signature, the request's inputs (by hash) and the image's index."""

import base64

import grpc
import helpers
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from gan_keras.provenance import facts as facts_lib
from gan_keras.provenance import metadata, signing, stamp, verify
from gan_keras.serving import app as serving_app
from gan_keras.serving import grpc_service

pytestmark = pytest.mark.slow

LATENT = 8


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return helpers.export_tiny_generators(
        tmp_path_factory.mktemp("predict_png"), latent_dim=LATENT, num_classes=3
    )


def _z(n, seed):
    return np.random.default_rng(seed).standard_normal((n, LATENT)).astype(np.float32)


def _rest_pngs(client, z) -> list[bytes]:
    r = client.post(
        "/v1/models/gen:predict",
        json={"signature_name": "serving_default_png", "instances": z.tolist()},
    )
    assert r.status_code == 200, r.get_json()
    return [base64.b64decode(p["b64"]) for p in r.get_json()["predictions"]]


def _grpc_pngs(app, z) -> list[bytes]:
    server, port = grpc_service.start_server(
        app.config["REGISTRY"],
        app.config["METRICS"],
        host="127.0.0.1",
        port=0,
        max_batch=16,
        max_workers=2,
        run_predict=app.config["RUN_PREDICT"],
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "gen"
            request.model_spec.signature_name = "serving_default_png"
            request.inputs["z"].CopyFrom(tf.make_tensor_proto(z))
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            response = stub.Predict(request, timeout=60)
        return list(tf.make_ndarray(response.outputs["images_png_bytes"]))
    finally:
        server.stop(grace=None).wait()


@pytest.mark.parametrize("api", ["rest", "grpc"])
def test_predict_pngs_carry_the_facts(base, api):
    app = serving_app.create_app(base / "uncond", "gen", 16, 0)
    try:
        z = _z(3, seed=1)
        pngs = _rest_pngs(app.test_client(), z) if api == "rest" else _grpc_pngs(app, z)
        other = _rest_pngs(app.test_client(), _z(3, seed=2))
    finally:
        app.config["REGISTRY"].stop()
    assert len(pngs) == 3
    model = {
        "name": "gen",
        "version": 1,
        "export_fingerprint": facts_lib.export_fingerprint(base / "uncond" / "1"),
    }
    hashes = set()
    for index, png in enumerate(pngs):
        read = metadata.read_metadata(png)
        assert read is not None, f"{api}: image {index} has no provenance"
        assert read["facts"]["model"] == model
        recipe = read["facts"]["recipe"]
        assert recipe["signature"] == "serving_default_png" and recipe["endpoint"] == "predict"
        assert recipe["index"] == index
        hashes.add(recipe["input_sha256"])
        assert verify.verify_bytes(png)["status"] == "unsigned"
    # One hash per request, 64 hex digits, and another request's inputs hash differently.
    [digest] = hashes
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert metadata.read_metadata(other[0])["facts"]["recipe"]["input_sha256"] != digest


def test_predict_pngs_are_signed_with_a_key(base, tmp_path):
    ca = helpers.make_test_credentials(tmp_path)
    signer = signing.C2paSigner(ca.key_path, ca.chain_path)
    app = serving_app.create_app(base / "uncond", "gen", 16, 0, stamper=stamp.Stamper(signer))
    try:
        [png] = _grpc_pngs(app, _z(1, seed=3))
    finally:
        app.config["REGISTRY"].stop()
    state, manifest, _ = helpers.read_c2pa(png, signing.MIME_TYPES["png"], anchors=ca.ca_pem)
    assert state == "Trusted" and manifest["signature_info"]["common_name"] == ca.common_name
    report = verify.verify_bytes(png)
    assert report["status"] == "signed" and report["pixels_match"] is True
    assert report["recipe"]["endpoint"] == "predict"


def test_outputs_that_are_not_images_are_left_alone():
    from gan_keras.serving.credentials import ServerProvenance

    outputs = {
        "images": np.zeros((2, 4, 4, 1), np.uint8),
        "names_bytes": np.array([b"not an image", b"GIF8"], object),
    }
    stamped = ServerProvenance(stamp.Stamper()).stamp_outputs(outputs, None, "m", "s", {})
    assert stamped["images"] is outputs["images"]
    assert list(stamped["names_bytes"]) == [b"not an image", b"GIF8"]
