"""The TF-Serving-compatible REST server: endpoints, formats, errors, hot version pickup."""

import base64
import concurrent.futures
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time

import grpc
import helpers
import numpy as np
import pytest
import requests
from PIL import Image
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

from gan_keras import images as gan_images
from gan_keras.client import sampling
from gan_keras.export import sampling_model as gan_export
from gan_keras.serving import app as serving_app
from gan_keras.serving import codec

LATENT = 8
CLASSES = 3
# Failure guards only: every wait ends as soon as what it waits for has happened.
GUARD_SECONDS = 300


def tiny_generator(conditional: bool, seed: int = 0):
    return helpers.tiny_generator(
        conditional, seed, latent_dim=LATENT, num_classes=CLASSES, channels=1
    )


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    gan_export.export_generator(tiny_generator(False), root / "uncond", latent_dim=LATENT)
    gan_export.export_generator(
        tiny_generator(True), root / "cond", latent_dim=LATENT, num_classes=CLASSES
    )
    return root


@pytest.fixture(scope="module")
def uncond(bases):
    app = serving_app.create_app(bases / "uncond", "generator", max_batch=16, poll_seconds=0)
    yield app.test_client()
    app.config["REGISTRY"].stop()


@pytest.fixture(scope="module")
def cond(bases):
    app = serving_app.create_app(bases / "cond", "gen", max_batch=16, poll_seconds=0)
    yield app.test_client()
    app.config["REGISTRY"].stop()


def _ok_status(version="1"):
    return {
        "model_version_status": [
            {
                "version": version,
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }


def test_status_endpoints(uncond):
    r = uncond.get("/v1/models/generator")
    assert r.status_code == 200 and r.get_json() == _ok_status()
    r = uncond.get("/v1/models/generator/versions/1")
    assert r.status_code == 200 and r.get_json() == _ok_status()
    r = uncond.get("/v1/models/generator/versions/2")
    assert r.status_code == 404 and "version 2" in r.get_json()["error"]
    r = uncond.get("/v1/models/other")
    assert r.status_code == 404 and "other" in r.get_json()["error"]


def test_metadata(cond):
    for url in ("/v1/models/gen/metadata", "/v1/models/gen/versions/1/metadata"):
        r = cond.get(url)
        assert r.status_code == 200
        body = r.get_json()
        assert body["model_spec"] == {"name": "gen", "signature_name": "", "version": "1"}
        sigs = body["metadata"]["signature_def"]["signature_def"]
        assert {"serving_default", "sample"} <= set(sigs)
        z = sigs["serving_default"]["inputs"]["z"]
        assert z["dtype"] == "DT_FLOAT"
        assert [d["size"] for d in z["tensor_shape"]["dim"]] == ["-1", str(LATENT)]
        assert sigs["serving_default"]["method_name"] == "tensorflow/serving/predict"
        assert set(sigs["sample"]["inputs"]) == {"num_samples", "seed", "label"}
        assert sigs["sample"]["outputs"]["images"]["dtype"] == "DT_UINT8"
    assert cond.get("/v1/models/gen/versions/9/metadata").status_code == 404


def _z(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, LATENT)).astype(np.float32)


def test_predict_row_and_columnar_formats_agree(uncond):
    z = _z(3)
    rows_bare = uncond.post("/v1/models/generator:predict", json={"instances": z.tolist()})
    rows_named = uncond.post(
        "/v1/models/generator/versions/1:predict",
        json={"instances": [{"z": v} for v in z.tolist()], "signature_name": "serving_default"},
    )
    cols_bare = uncond.post("/v1/models/generator:predict", json={"inputs": z.tolist()})
    cols_named = uncond.post("/v1/models/generator:predict", json={"inputs": {"z": z.tolist()}})
    for r in (rows_bare, rows_named, cols_bare, cols_named):
        assert r.status_code == 200, r.get_json()
    predictions = rows_bare.get_json()["predictions"]
    assert rows_named.get_json()["predictions"] == predictions
    # Several outputs: one dict per row in the row format, a dict of lists in columnar.
    assert len(predictions) == 3 and set(predictions[0]) == {"images", "images_float"}
    outputs = cols_bare.get_json()["outputs"]
    assert cols_named.get_json()["outputs"] == outputs
    images = np.array(outputs["images"])
    images_float = np.array(outputs["images_float"])
    assert images.shape == (3, 8, 8, 1) and images_float.shape == (3, 8, 8, 1)
    assert images.min() >= 0 and images.max() <= 255
    assert np.all(np.abs(images_float) <= 1.0)
    np.testing.assert_array_equal(np.array([p["images"] for p in predictions]), images)


def test_predict_answers_what_the_saved_model_computes(bases, uncond, cond):
    # The oracle is the SavedModel itself, loaded by TensorFlow, not the server's own code path.
    import tensorflow as tf

    z = _z(3, seed=7)
    cases = (
        (uncond, "generator", bases / "uncond", {"z": z}),
        (cond, "gen", bases / "cond", {"z": z, "label": np.array([2, 0, 1], np.int32)}),
    )
    for client, name, base, inputs in cases:
        signature = tf.saved_model.load(str(base / "1")).signatures["serving_default"]
        expected = signature(**{k: tf.constant(v) for k, v in inputs.items()})
        body = {"inputs": {k: v.tolist() for k, v in inputs.items()}}
        r = client.post(f"/v1/models/{name}:predict", json=body)
        assert r.status_code == 200, r.get_json()
        outputs = r.get_json()["outputs"]
        assert set(outputs) == set(expected)
        np.testing.assert_array_equal(np.array(outputs["images"]), expected["images"].numpy())
        np.testing.assert_allclose(
            np.array(outputs["images_float"]), expected["images_float"].numpy(), rtol=0, atol=1e-6
        )


def test_predict_conditional(cond):
    z = _z(2)
    instances = [{"z": z[0].tolist(), "label": 0}, {"z": z[1].tolist(), "label": 2}]
    r = cond.post("/v1/models/gen:predict", json={"instances": instances})
    assert r.status_code == 200, r.get_json()
    rows = r.get_json()["predictions"]
    r = cond.post("/v1/models/gen:predict", json={"inputs": {"z": z.tolist(), "label": [0, 2]}})
    assert r.status_code == 200
    np.testing.assert_allclose(
        np.array(r.get_json()["outputs"]["images_float"]),
        np.array([row["images_float"] for row in rows]),
        atol=1e-6,
    )


def test_predict_sample_signature_columnar(cond, uncond):
    body = {"signature_name": "sample", "inputs": {"num_samples": 4, "seed": 3, "label": []}}
    a = cond.post("/v1/models/gen:predict", json=body).get_json()["outputs"]
    b = cond.post("/v1/models/gen:predict", json=body).get_json()["outputs"]
    assert np.array(a["images"]).shape == (4, 8, 8, 1)
    assert a == b  # same seed, same images
    body["inputs"]["seed"] = 4
    assert cond.post("/v1/models/gen:predict", json=body).get_json()["outputs"] != a
    body = {"signature_name": "sample", "inputs": {"num_samples": 2, "seed": 3, "label": [1]}}
    assert cond.post("/v1/models/gen:predict", json=body).status_code == 200
    body = {"signature_name": "sample", "inputs": {"num_samples": 2, "seed": 3}}
    r = uncond.post("/v1/models/generator:predict", json=body)
    assert r.status_code == 200 and np.array(r.get_json()["outputs"]["images"]).shape[0] == 2


BAD_REQUESTS = [
    # (url suffix, body, status, fragment of the error)
    (":predict", b"{not json", 400, "JSON Parse error"),
    (":predict", b"[1, 2]", 400, "not an object"),
    (":predict", b"{}", 400, "Missing 'inputs' or 'instances'"),
    (
        ":predict",
        json.dumps({"instances": [[0.0] * LATENT], "inputs": [[0.0] * LATENT]}),
        400,
        "not both",
    ),
    (":predict", json.dumps({"instances": [[0.0] * (LATENT - 1)]}), 400, "shape"),
    (":predict", json.dumps({"instances": [[0.0] * LATENT, [0.0]]}), 400, "rectangular"),
    (":predict", json.dumps({"instances": [["a"] * LATENT]}), 400, "expected numbers"),
    (":predict", json.dumps({"instances": []}), 400, "non-empty"),
    (":predict", json.dumps({"instances": [{"x": [0.0] * LATENT}]}), 400, "expects ['z']"),
    (":predict", json.dumps({"inputs": {"x": [[0.0] * LATENT]}}), 400, "expects ['z']"),
    (":predict", json.dumps({"instances": [[0.0] * LATENT] * 17}), 400, "max_batch"),
    (
        ":predict",
        json.dumps({"signature_name": "nope", "instances": [[0.0] * LATENT]}),
        400,
        "nope",
    ),
    (
        ":predict",
        json.dumps({"signature_name": "sample", "instances": [{"num_samples": 1, "seed": 0}]}),
        400,
        "columnar",
    ),
    (
        ":predict",
        json.dumps({"signature_name": "sample", "inputs": {"num_samples": 17, "seed": 0}}),
        400,
        "max_batch",
    ),
    (
        ":predict",
        json.dumps({"signature_name": "sample", "inputs": {"num_samples": 0, "seed": 0}}),
        400,
        "num_samples",
    ),
    (
        ":predict",
        json.dumps({"signature_name": "sample", "inputs": {"num_samples": 1.5, "seed": 0}}),
        400,
        "integers",
    ),
    (
        ":predict",
        json.dumps({"signature_name": "sample", "inputs": {"num_samples": 2}}),
        400,
        "expects",
    ),
    ("/versions/5:predict", json.dumps({"instances": [[0.0] * LATENT]}), 404, "5"),
    (":classify", json.dumps({"examples": []}), 400, "not supported"),
]


@pytest.mark.parametrize("suffix,body,status,fragment", BAD_REQUESTS)
def test_bad_requests(uncond, suffix, body, status, fragment):
    r = uncond.post(f"/v1/models/generator{suffix}", data=body, content_type="application/json")
    assert r.status_code == status, r.get_data(as_text=True)
    assert fragment in r.get_json()["error"]
    # ...and the server still answers.
    ok = uncond.post("/v1/models/generator:predict", json={"instances": [[0.0] * LATENT]})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    "body,fragment",
    [
        ({"instances": [{"z": [0.0] * LATENT, "label": 3}]}, "out of range"),
        ({"instances": [{"z": [0.0] * LATENT, "label": -1}]}, "out of range"),
        ({"instances": [{"z": [0.0] * LATENT, "label": 0.5}]}, "integers"),
        ({"instances": [{"z": [0.0] * LATENT}]}, "expects"),
        ({"inputs": {"z": [[0.0] * LATENT] * 2, "label": [1]}}, "same batch size"),
        (
            {"signature_name": "sample", "inputs": {"num_samples": 3, "seed": 0, "label": [0, 1]}},
            "one per sample",
        ),
        (
            {"signature_name": "sample", "inputs": {"num_samples": 3, "seed": 0, "label": [7]}},
            "out of range",
        ),
    ],
)
def test_bad_conditional_requests(cond, body, fragment):
    r = cond.post("/v1/models/gen:predict", json=body)
    assert r.status_code == 400
    assert fragment in r.get_json()["error"]
    assert cond.get("/v1/models/gen").status_code == 200


def test_unknown_paths_and_methods(uncond):
    assert uncond.get("/v1/models/generator:predict").status_code == 405
    assert uncond.post("/v1/models/generator").status_code == 405
    r = uncond.get("/v1/models/generator/versions/x")
    assert r.status_code == 400 and "error" in r.get_json()
    # A label this server does not have: TF Serving's INVALID_ARGUMENT (test_model_config.py).
    r = uncond.get("/v1/models/generator/labels/stable")
    assert r.status_code == 400
    assert r.get_json()["error"] == "Unrecognized servable version label: stable"
    r = uncond.get("/nothing/here")
    assert r.status_code == 404 and "error" in r.get_json()
    r = uncond.post("/v1/models/other:predict", json={"instances": [[0.0] * LATENT]})
    assert r.status_code == 404 and "other" in r.get_json()["error"]


def _png(response):
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "image/png"
    return np.array(Image.open(io.BytesIO(response.data)))


def test_sample_png(cond, uncond):
    a = _png(cond.get("/v1/models/gen:sample?n=4&seed=1&label=2"))
    b = _png(cond.get("/v1/models/gen:sample?n=4&seed=1&label=2"))
    np.testing.assert_array_equal(a, b)
    # A 2x2 grid of 8x8 images with 2-pixel padding.
    assert a.shape == (2 * 10 + 2, 2 * 10 + 2)
    c = _png(cond.get("/v1/models/gen:sample?n=4&seed=1&label=0"))
    assert not np.array_equal(a, c)
    # Defaults: 16 images of seed 0 with random labels (the sample signature's), in a 4x4 grid.
    default = _png(cond.get("/v1/models/gen:sample"))
    body = {"signature_name": "sample", "inputs": {"num_samples": 16, "seed": 0, "label": []}}
    sampled = np.array(
        cond.post("/v1/models/gen:predict", json=body).get_json()["outputs"]["images"], np.uint8
    )
    np.testing.assert_array_equal(default, gan_images.make_grid(sampled, rows=4)[..., 0])
    wide = _png(uncond.get("/v1/models/generator/versions/1:sample?n=3&rows=1"))
    assert wide.shape == (12, 3 * 10 + 2)
    for url, fragment in [
        ("/v1/models/gen:sample?n=17", "max_batch"),
        ("/v1/models/gen:sample?n=2&label=3", "out of range"),
        ("/v1/models/gen:sample?n=two", "not an integer"),
        ("/v1/models/gen:sample?size=2", "unknown query"),
    ]:
        r = cond.get(url)
        assert r.status_code == 400 and fragment in r.get_json()["error"], url
    r = uncond.get("/v1/models/generator:sample?label=1")
    assert r.status_code == 400 and "unconditional" in r.get_json()["error"]


def test_hot_pickup_rollback_and_failed_version(tmp_path):
    base = tmp_path / "generator"
    app = serving_app.create_app(base, "generator", poll_seconds=0)
    client = app.test_client()
    registry = app.config["REGISTRY"]
    z = {"instances": [[0.5] * LATENT]}
    # Nothing exported yet: the server runs and says so.
    r = client.get("/v1/models/generator")
    assert r.status_code == 404 and "Could not find any versions" in r.get_json()["error"]
    assert client.post("/v1/models/generator:predict", json=z).status_code == 404

    gan_export.export_generator(tiny_generator(False, seed=1), base, latent_dim=LATENT)
    registry.refresh()
    v1 = client.post("/v1/models/generator:predict", json=z).get_json()["predictions"]
    gan_export.export_generator(tiny_generator(False, seed=2), base, latent_dim=LATENT)
    registry.refresh()
    assert client.get("/v1/models/generator").get_json() == _ok_status("2")
    v2 = client.post("/v1/models/generator:predict", json=z).get_json()["predictions"]
    assert v1 != v2
    assert client.post("/v1/models/generator/versions/1:predict", json=z).status_code == 404

    # A broken version 3 is reported, and version 2 keeps serving.
    (base / "3").mkdir()
    (base / "3" / "saved_model.pb").write_bytes(b"garbage")
    registry.refresh()
    status = client.get("/v1/models/generator").get_json()["model_version_status"]
    assert [(s["version"], s["state"]) for s in status] == [("3", "END"), ("2", "AVAILABLE")]
    assert status[0]["status"]["error_message"]
    assert client.post("/v1/models/generator:predict", json=z).get_json()["predictions"] == v2

    # Removing versions rolls back to the highest one left, then unloads.
    shutil.rmtree(base / "3")
    shutil.rmtree(base / "2")
    registry.refresh()
    assert client.get("/v1/models/generator").get_json() == _ok_status("1")
    assert client.post("/v1/models/generator:predict", json=z).get_json()["predictions"] == v1
    shutil.rmtree(base / "1")
    registry.refresh()
    assert client.get("/v1/models/generator").status_code == 404


@pytest.mark.slow
def test_real_server_polls_and_serves_concurrently(tmp_path):
    """Over loopback through the REST server: polling picks up a new version with no restart."""
    base = tmp_path / "generator"
    gan_export.export_generator(tiny_generator(False, seed=1), base, latent_dim=LATENT)
    app = serving_app.create_app(base, "generator", poll_seconds=0.2)
    try:
        with helpers.RestServerThread(app, threads=4) as server:
            url = f"{server.url}/v1/models/generator"
            assert requests.get(url, timeout=60).json() == _ok_status("1")
            body = {"instances": _z(2).tolist()}

            def predict(_):
                r = requests.post(url + ":predict", json=body, timeout=60)
                return r.status_code, r.json()

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                results = list(pool.map(predict, range(24)))
            assert all(code == 200 for code, _ in results)
            assert all(out == results[0][1] for _, out in results)

            r = requests.post(url + ":predict", data=b"{oops", timeout=60)
            assert r.status_code == 400 and "JSON" in r.json()["error"]

            gan_export.export_generator(tiny_generator(False, seed=2), base, latent_dim=LATENT)
            deadline = time.monotonic() + GUARD_SECONDS
            while requests.get(url, timeout=60).json() != _ok_status("2"):
                assert time.monotonic() < deadline, (
                    f"version 2 not picked up after {GUARD_SECONDS} s"
                )
                time.sleep(0.1)
            new = requests.post(url + ":predict", json=body, timeout=60).json()
            assert new != results[0][1]
            png = requests.get(url + ":sample?n=4&seed=0", timeout=60)
            assert png.status_code == 200 and png.headers["Content-Type"] == "image/png"
            assert png.headers["X-Model-Version"] == "2"
        assert not server._thread.is_alive()  # stop() ends the server loop
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=5)
    finally:
        app.config["REGISTRY"].stop()


def test_float_outputs_round_trip_float32_exactly():
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            np.tanh(rng.normal(0, 0.3, 20000)),
            rng.normal(0, 1, 1000) * 10.0 ** rng.integers(-40, 38, 1000),
            [0.0, -0.0, 1.0, -1.0, 3.4e38, 1e-45, np.inf, -np.inf],
        ]
    ).astype(np.float32)
    text = json.dumps(codec.encode_predict_response({"y": x}, row_format=False))
    back = np.array(json.loads(text)["outputs"], np.float32)
    np.testing.assert_array_equal(back, x)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["console_script", "module"])
def test_command_line_server(bases, tmp_path, how):
    """`gan-serve` (setup.py's console script) and `python -m gan_keras.serve` parse
    tensorflow_model_server's flags and serve REST and gRPC over loopback on the ports they
    bound (0: the OS picks one)."""
    env = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=str(helpers.REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    if how == "console_script":
        script = shutil.which("gan-serve", path=os.path.dirname(sys.executable))
        assert script, "the gan-serve console script is not installed (pip install -e .)"
        cmd = [script]
    else:
        cmd = [sys.executable, "-m", "gan_keras.serve"]
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd
            + [
                f"--model_base_path={bases / 'cond'}",
                "--model_name=gen",
                "--port=0",
                "--rest_api_port=0",
                "--max_batch=4",
                "--file_system_poll_wait_seconds=0",
                "--rest_api_num_threads=2",
                "--rest_api_timeout_in_ms=5000",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    try:
        # The server logs the ports it bound (0: a free one) once its sockets are bound.
        deadline = time.monotonic() + GUARD_SECONDS
        while not (
            match := re.search(
                r"Serving gen from \S+ on (http://127\.0\.0\.1:[1-9]\d*)/v1/models/gen",
                log.read_text(),
            )
        ):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"no address logged after {GUARD_SECONDS} s"
            time.sleep(0.05)
        url = f"{match.group(1)}/v1/models/gen"
        assert requests.get(url, timeout=60).json() == _ok_status()
        grpc_port = re.search(r"Serving gen over gRPC on 127\.0\.0\.1:([1-9]\d*)", log.read_text())
        assert grpc_port, log.read_text()[-3000:]
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port.group(1)}") as channel:
            status_request = get_model_status_pb2.GetModelStatusRequest()
            status_request.model_spec.name = "gen"
            [status] = (
                model_service_pb2_grpc.ModelServiceStub(channel)
                .GetModelStatus(status_request, timeout=60)
                .model_version_status
            )
            assert (status.version, status.state) == (1, status.AVAILABLE)
        r = requests.get(url + ":sample?n=5", timeout=60)
        assert r.status_code == 400 and "max_batch=4" in r.json()["error"]
        r = requests.get(url + ":sample?n=4&label=1&seed=3", timeout=60)
        assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
        # The images of the exported version for that seed and label.
        expected = sampling.generate(bases / "cond", num=4, seed=3, label=1)
        np.testing.assert_array_equal(
            np.array(Image.open(io.BytesIO(r.content))),
            gan_images.make_grid(expected, rows=2)[..., 0],
        )
    finally:
        proc.terminate()
        proc.wait(timeout=GUARD_SECONDS)


def _metric(text: str, name: str, **labels) -> float | None:
    """The value of one sample in Prometheus text, or None if absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def test_prometheus_metrics_per_app(bases):
    """/monitoring/prometheus/metrics (TF Serving's path): requests by signature and status,
    latency histograms, the served version; each app counts on its own registry."""
    apps = [
        serving_app.create_app(bases / "uncond", "generator", max_batch=4, poll_seconds=0)
        for _ in range(2)
    ]
    try:
        first, second = (app.test_client() for app in apps)
        url = "/v1/models/generator:predict"
        for _ in range(3):
            assert first.post(url, json={"instances": _z(2).tolist()}).status_code == 200
        assert first.post(url, data=b"{oops").status_code == 400
        assert first.post(url, json={"instances": _z(5).tolist()}).status_code == 400
        assert first.get("/v1/models/generator/versions/7").status_code == 404
        r = first.get("/monitoring/prometheus/metrics")
        assert r.status_code == 200 and r.content_type.startswith("text/plain")
        text = r.get_data(as_text=True)
        requests_total = "gan_serving_requests_total"
        ok = {"entrypoint": "REST", "api": "predict", "signature_name": "serving_default"}
        assert _metric(text, requests_total, status="OK", **ok) == 3
        assert _metric(text, requests_total, status="INVALID_ARGUMENT", **ok) == 1
        # The unparsable body never named a signature.
        assert _metric(text, requests_total, status="INVALID_ARGUMENT", signature_name="") == 1
        assert _metric(text, requests_total, api="status", status="NOT_FOUND") == 1
        count = "gan_serving_request_latency_seconds_count"
        assert _metric(text, count, **ok) == 4
        assert _metric(text, "gan_serving_model_run_seconds_count") == 3
        assert _metric(text, "gan_serving_model_version", model_name="generator") == 1
        # The second app saw none of it.
        other = second.get("/monitoring/prometheus/metrics").get_data(as_text=True)
        assert _metric(other, requests_total, **ok) is None
        assert _metric(other, "gan_serving_model_version") == 1
    finally:
        for app in apps:
            app.config["REGISTRY"].stop()


def test_png_signature_answers_b64_over_rest(uncond):
    """Outputs named *_bytes come back as {"b64": ...}, as TF Serving's REST API answers them."""
    z = _z(3)
    r = uncond.post(
        "/v1/models/generator:predict",
        json={"signature_name": "serving_default_png", "instances": z.tolist()},
    )
    assert r.status_code == 200, r.get_json()
    predictions = r.get_json()["predictions"]
    assert len(predictions) == 3 and all(set(p) == {"b64"} for p in predictions)
    images = uncond.post("/v1/models/generator:predict", json={"instances": z.tolist()})
    expected = np.array([p["images"] for p in images.get_json()["predictions"]], np.uint8)
    decoded = [np.array(Image.open(io.BytesIO(base64.b64decode(p["b64"])))) for p in predictions]
    np.testing.assert_array_equal(np.stack(decoded)[..., None], expected)
    r = uncond.post(
        "/v1/models/generator:predict",
        json={"signature_name": "sample_png", "inputs": {"num_samples": 2, "seed": 0}},
    )
    assert [set(x) for x in r.get_json()["outputs"]] == [{"b64"}, {"b64"}]


def test_string_outputs_follow_the_bytes_naming_rule():
    outputs = {
        "images_png_bytes": np.array([b"\x89PNG\x00", b"\xff"], object),
        "names": np.array([b"a", "b\u00e9".encode()], object),
    }
    assert codec.encode_predict_response(outputs, row_format=False) == {
        "outputs": {
            "images_png_bytes": [{"b64": "iVBORwA="}, {"b64": "/w=="}],
            "names": ["a", "b\u00e9"],
        }
    }
    rows = codec.encode_predict_response(outputs, row_format=True)["predictions"]
    assert rows[1] == {"images_png_bytes": {"b64": "/w=="}, "names": "b\u00e9"}


def _same_as_float32(a, b) -> bool:
    """Equal JSON values, floats compared as the float32 values they stand for."""
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(_same_as_float32(a[k], b[k]) for k in a)
        )
    if isinstance(a, list):
        return (
            isinstance(b, list)
            and len(a) == len(b)
            and all(_same_as_float32(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, float) or isinstance(b, float):
        return np.float32(a) == np.float32(b)
    return a == b and type(a) is type(b)


@pytest.mark.parametrize("row_format", [False, True])
def test_predict_json_is_what_json_dumps_writes(row_format):
    """The :predict answer (orjson, straight from numpy) holds the same values as the
    lists-and-json.dumps encoding, and falls back to it for NaN/Infinity."""
    rng = np.random.default_rng(0)
    outputs = {
        "images": rng.integers(0, 256, (3, 4, 4, 1), dtype=np.uint8),
        "images_float": np.tanh(rng.normal(0, 1, (3, 4, 4, 1))).astype(np.float32),
        "z": (rng.normal(0, 1, (3, 8)) * 10.0 ** rng.integers(-30, 30, (3, 8))).astype(np.float32),
        "label": np.array([0, 2, 1], np.int32),
        "images_png_bytes": np.array([b"\x89PNG", b"a", b"\xff"], object),
    }
    fast = json.loads(codec.predict_response_json(outputs, row_format))
    slow = json.loads(json.dumps(codec.encode_predict_response(outputs, row_format)))
    assert _same_as_float32(fast, slow)
    key = "predictions" if row_format else "outputs"
    images = fast[key]["images"] if not row_format else [row["images"] for row in fast[key]]
    np.testing.assert_array_equal(np.array(images, np.uint8), outputs["images"])
    psnr = {"psnr": np.array([np.inf, 20.5], np.float32)}
    assert json.loads(codec.predict_response_json(psnr, row_format)) == {key: [np.inf, 20.5]}


@pytest.mark.slow
def test_asking_for_grpc_without_tensorflow_serving_api_is_an_error(tmp_path):
    """--port serves gRPC; without its protos (an optional install) the server says what to
    install instead of silently serving REST only."""
    code = (
        "import sys; sys.modules['tensorflow_serving'] = None\n"  # as if not installed
        "from gan_keras import serve\n"
        f"sys.argv = ['gan-serve', '--model_base_path={tmp_path}', '--port=8500']\n"
        "serve.console_main()\n"
    )
    env = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=str(helpers.REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    assert "pip install --no-deps tensorflow-serving-api" in result.stderr
