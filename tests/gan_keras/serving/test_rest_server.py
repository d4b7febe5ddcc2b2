"""gan_keras.serving.rest_server: the REST server `gan-serve` runs, over loopback.

:predict is answered on the event loop (batched requests wait without a thread), every other
request by the Flask app; answers and errors are the Flask app's (its test client's) byte for
byte.
"""

import concurrent.futures
import http.client
import json

import helpers
import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from gan_keras.export import sampling_model as gan_export
from gan_keras.serving import app as serving_app
from gan_keras.serving import rest_predict
from gan_keras.serving.batching_parameters import BatchingParameters

LATENT = 8
URL = "/v1/models/generator:predict"
GUARD_SECONDS = 60  # failure guard only


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    base = tmp_path_factory.mktemp("rest_server") / "generator"
    generator = helpers.tiny_generator(False, 0, latent_dim=LATENT, num_classes=0, channels=1)
    gan_export.export_generator(generator, base, latent_dim=LATENT)
    return base


@pytest.fixture
def make_server(base):
    made = []

    def make(batching=None, threads=2):
        app = serving_app.create_app(
            base, "generator", max_batch=300, poll_seconds=0, batching=batching
        )
        server = helpers.RestServerThread(app, threads=threads).start()
        made.append((app, server))
        return app, server

    yield make
    for app, server in made:
        server.stop()
        if app.config["BATCHER"] is not None:
            app.config["BATCHER"].stop()
        app.config["REGISTRY"].stop()


def _z(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, LATENT)).astype(np.float32).tolist()


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", URL, {"instances": _z(2)}),
        ("POST", URL, {"signature_name": "serving_default", "inputs": {"z": _z(3)}}),
        ("POST", URL, {"instances": _z(260)}),  # a body too large for the loop: on a worker
        ("GET", URL, None),  # Flask's 405
        ("POST", "/v1/models/generator/metadata:predict", {"instances": _z(1)}),
        ("POST", "/v1/models/nobody:predict", {"instances": _z(1)}),
        ("POST", "/v1/models/generator/versions/x:predict", {"instances": _z(1)}),
        ("POST", "/v1/models/generator/labels/stable:predict", {"instances": _z(1)}),
        ("POST", URL, {"instances": _z(301)}),  # over max_batch
        ("POST", URL, {"instance": _z(1)}),
        ("POST", URL, "not json"),
        ("GET", "/v1/models/generator", None),
        ("GET", "/v1/models/generator/metadata", None),
    ],
)
def test_answers_are_the_flask_apps_byte_for_byte(make_server, method, path, body):
    app, server = make_server()
    data = None if body is None else json.dumps(body).encode()
    if path == URL and body == {"instances": _z(260)}:
        assert len(data) > rest_predict.LOOP_BODY_BYTES
    want = app.test_client().open(path, method=method, data=data)
    got = requests.request(method, server.url + path, data=data, timeout=GUARD_SECONDS)
    assert got.status_code == want.status_code, got.text
    assert got.content == want.get_data()
    assert got.headers["Content-Type"] == want.headers["Content-Type"]
    # Both were counted under the same labels (signature, status, model).
    text = app.test_client().get("/monitoring/prometheus/metrics").get_data(True)
    counted = [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "gan_serving_requests_total"
    ]
    assert counted and all(value == 2 for _, value in counted), counted


@pytest.mark.parametrize("rows", [1, 120])  # 120 rows: a body decoded on the worker
def test_waiting_requests_hold_no_thread_and_merge(make_server, rows):
    """One worker thread, eight concurrent requests, a batch that runs only once full: they
    can all be answered only if none holds a thread while it waits."""
    params = BatchingParameters(
        max_batch_size=8 * rows, batch_timeout_micros=3_600_000_000, num_batch_threads=1
    )
    app, server = make_server(batching=params, threads=1)
    servable = app.config["REGISTRY"].current()
    cases = [_z(rows, seed) for seed in range(8)]
    if rows > 1:
        assert len(json.dumps({"instances": cases[0]})) > rest_predict.LOOP_BODY_BYTES

    def call(z):
        r = requests.post(server.url + URL, json={"instances": z}, timeout=GUARD_SECONDS)
        assert r.status_code == 200, r.text
        return np.asarray([row["images"] for row in r.json()["predictions"]], np.float32)

    with concurrent.futures.ThreadPoolExecutor(len(cases)) as pool:
        answers = list(pool.map(call, cases))
    for z, answer in zip(cases, answers, strict=True):
        want = servable.run("serving_default", {"z": np.asarray(z, np.float32)})["images"]
        np.testing.assert_allclose(answer, want, atol=1e-5)
    text = requests.get(server.url + "/monitoring/prometheus/metrics", timeout=60).text
    counts = {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name in ("gan_serving_batch_size_count", "gan_serving_batch_size_sum")
    }
    assert counts == {
        "gan_serving_batch_size_count": 1.0,
        "gan_serving_batch_size_sum": 8.0 * rows,
    }


@pytest.mark.parametrize("batching", [None, BatchingParameters(num_batch_threads=1)])
def test_a_body_over_the_limit_is_413_declared_or_chunked(make_server, monkeypatch, batching):
    app, server = make_server(batching=batching)
    endpoint = app.config["PREDICT_ENDPOINT"]
    monkeypatch.setattr(endpoint, "max_content_length", 64)
    body = json.dumps({"instances": _z(2)}).encode()
    connection = http.client.HTTPConnection(server.host, server.port, timeout=GUARD_SECONDS)
    try:
        connection.request("POST", URL, body, {"Content-Type": "application/json"})
        declared = connection.getresponse()
        assert declared.status == 413
        assert json.loads(declared.read()) == {"error": "Request body too large"}
    finally:
        connection.close()
    connection = http.client.HTTPConnection(server.host, server.port, timeout=GUARD_SECONDS)
    try:
        chunks = (body[i : i + 16] for i in range(0, len(body), 16))
        connection.request("POST", URL, chunks, encode_chunked=True)
        chunked = connection.getresponse()
        assert chunked.status == 413
        assert json.loads(chunked.read()) == {"error": "Request body too large"}
    finally:
        connection.close()
    # Within the limit, a chunked body is answered as any other.
    monkeypatch.setattr(endpoint, "max_content_length", 64 * 1024)
    connection = http.client.HTTPConnection(server.host, server.port, timeout=GUARD_SECONDS)
    try:
        connection.request("POST", URL, iter([body[:10], body[10:]]), encode_chunked=True)
        ok = connection.getresponse()
        assert ok.status == 200 and len(json.loads(ok.read())["predictions"]) == 2
    finally:
        connection.close()
