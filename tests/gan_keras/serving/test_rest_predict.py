"""gan_keras.serving.rest_predict: POST :predict answered before Flask, with the Flask app's
errors; every other request still Flask's."""

import helpers
import numpy as np
import pytest

from gan_keras.export import sampling_model as gan_export
from gan_keras.serving import app as serving_app

LATENT = 8
URL = "/v1/models/generator:predict"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    base = tmp_path_factory.mktemp("rest_predict") / "generator"
    generator = helpers.tiny_generator(False, 0, latent_dim=LATENT, num_classes=0, channels=1)
    gan_export.export_generator(generator, base, latent_dim=LATENT)
    app = serving_app.create_app(base, "generator", max_batch=4, poll_seconds=0)
    yield app
    app.config["REGISTRY"].stop()


def _z(n):
    return np.random.default_rng(0).standard_normal((n, LATENT)).astype(np.float32).tolist()


def test_predict_skips_flasks_request_handling_and_nothing_else_does(app):
    """The point of the route: no request context, hooks or URL map for :predict."""
    seen = []
    app.before_request_funcs.setdefault(None, []).append(lambda: seen.append(1))
    try:
        client = app.test_client()
        r = client.post(URL, json={"instances": _z(2)})
        assert r.status_code == 200 and len(r.get_json()["predictions"]) == 2
        assert r.content_type == "application/json"
        assert seen == []
        assert client.get("/v1/models/generator").status_code == 200
        assert seen == [1]
    finally:
        app.before_request_funcs[None].pop()


@pytest.mark.parametrize(
    "method, path, body, status, fragment",
    [
        # Other methods on :predict stay Flask's, with its 405.
        ("GET", URL, None, 405, "Use POST for :predict"),
        ("POST", "/v1/models/generator/metadata:predict", {"instances": _z(1)}, 404, "Malformed"),
        ("POST", "/v1/models/nobody:predict", {"instances": _z(1)}, 404, "nobody"),
        ("POST", "/v1/models/generator/versions/x:predict", {"instances": _z(1)}, 400, "'x'"),
        ("POST", "/v1/models/generator/versions/9:predict", {"instances": _z(1)}, 404, "9"),
        ("POST", URL, {"instances": _z(5)}, 400, "4"),  # over max_batch
        ("POST", URL, {"instance": _z(1)}, 400, "instances"),
    ],
)
def test_errors_are_the_flask_apps(app, method, path, body, status, fragment):
    client = app.test_client()
    r = client.open(path, method=method, json=body)
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.content_type == "application/json"
    assert fragment in r.get_json()["error"]


def test_a_body_over_the_limit_is_413_and_only_read_for_a_served_model(app, monkeypatch):
    monkeypatch.setattr(app.wsgi_app.endpoint, "max_content_length", 64)
    client = app.test_client()
    r = client.post(URL, json={"instances": _z(2)})
    assert r.status_code == 413 and r.get_json() == {"error": "Request body too large"}
    assert r.status == "413 REQUEST ENTITY TOO LARGE"  # werkzeug's status line, as Flask's
    # The model is looked up first, as the Flask route did: an unknown one is a 404.
    assert client.post("/v1/models/nobody:predict", json={"instances": _z(2)}).status_code == 404
