"""The playground's HTTP side (gan_keras.serving.playground): the page at / and /ui/<model>, its
static files and nothing else, the security headers, and :card.

The page itself, in a real browser, is test_playground_browser.py."""

import ast
import fnmatch
import html.parser
import http.client
import json
import re

import helpers
import numpy as np
import pytest
from flask import Flask

from gan_keras.export import layout
from gan_keras.export import sampling_model as gan_export
from gan_keras.serving import app as serving_app
from gan_keras.serving import codec, playground
from gan_keras.serving.models import ServedModels

LATENT = 8
STATIC_FILES = sorted(path.name for path in playground.STATIC_DIR.iterdir())

EVALUATION = {
    "summary": "FD 7.9: real-data floor 0.32, noise 95; 500 samples, domain_classifier features",
    "distance_name": "FD",
    "frechet_distance": 7.9,
    "precision": 0.7,
    "recall": 0.5,
    "kid_mean": float("nan"),  # not a finite number: left out as null
    "blessed": True,
    "gate": {"reason": "frechet_distance=7.9 is at most the threshold 10"},
    "controls": {
        "truncation": {
            "rows": [
                {"psi": 1.0, "frechet_distance": 7.9, "precision": 0.7, "recall": 0.5},
                {"psi": 0.5, "frechet_distance": 20.1, "precision": 0.9, "recall": 0.2},
                "not a row",
            ]
        },
        "nearest_neighbours": {
            "ratio": 1.4,
            "samples_closer_than_real_eval_5th_percentile": 0.03,
            "closest_pairs": [{"sample": 1, "train": 2, "distance": 0.5}],
        },
    },
    "model": {"checkpoint": "/somewhere/private/ckpt-3"},
}
CARD = "# Model card: `generate` model\n\n## Evaluation\n\n- Summary: FD 7.9\n"


@pytest.fixture(scope="module")
def empty_app(tmp_path_factory):
    """An app serving nothing yet: the page and its files need no model."""
    flask_app = serving_app.create_app(tmp_path_factory.mktemp("empty"), "g", poll_seconds=0)
    yield flask_app
    flask_app.config["REGISTRY"].stop()


@pytest.fixture(scope="module")
def client(empty_app):
    return empty_app.test_client()


def _error(response, status=404):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    return response.get_json()["error"]


def _csp(response) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    return {
        parts[0]: parts[1:]
        for parts in (directive.split() for directive in policy.split(";"))
        if parts
    }


# --- the page and its files -----------------------------------------------------------------


def test_index_at_root_and_model_pages(client):
    root = client.get("/")
    assert root.status_code == 200 and root.mimetype == "text/html"
    assert b'<script type="module" src="/static/playground/playground.js">' in root.data
    page = client.get("/ui/g")
    assert page.status_code == 200 and page.data == root.data
    # Unknown models: TF Serving's JSON error, not the page.
    assert _error(client.get("/ui/nope")) == "Could not find any versions of model nope"
    for path in ("/ui/", "/ui/g/more", "/ui/g%2Fmore"):
        _error(client.get(path))
    assert "not allowed" in _error(client.post("/"), 405)


@pytest.mark.parametrize("path", ["/", "/ui/g", *(f"/static/playground/{f}" for f in STATIC_FILES)])
def test_security_headers(client, path):
    response = client.get(path)
    assert response.status_code == 200
    csp = _csp(response)
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert csp["img-src"] == ["'self'", "blob:"]
    assert csp["connect-src"] == ["'self'"] and csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    policy = response.headers["Content-Security-Policy"]
    for loose in ("unsafe-inline", "unsafe-eval", "data:", "http:", "https:", "*"):
        assert loose not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_static_files_types_and_revalidation(client):
    types = {
        "html": "text/html",
        "js": "text/javascript",
        "css": "text/css",
        "svg": "image/svg+xml",
    }
    for name in STATIC_FILES:
        response = client.get(f"/static/playground/{name}")
        assert response.status_code == 200, name
        assert response.mimetype == types[name.rsplit(".", 1)[1]], name
        assert response.headers["Cache-Control"] == "no-cache"
        again = client.get(
            f"/static/playground/{name}", headers={"If-None-Match": response.headers["ETag"]}
        )
        assert again.status_code == 304 and again.data == b""


class _PageScan(html.parser.HTMLParser):
    """What a strict CSP would block in the page: inline scripts, styles and handlers."""

    def __init__(self):
        super().__init__()
        self.problems, self.urls, self._in_script = [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            self._in_script = True
            if "src" not in attrs:
                self.problems.append("<script> without src")
        for name, value in attrs.items():
            if name == "style" or name.startswith("on"):
                self.problems.append(f"{name}= on <{tag}>")
            if name in ("src", "href"):
                self.urls.append(value)

    def handle_endtag(self, tag):
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.problems.append("inline script text")


def test_page_is_self_contained():
    """No inline script or style (the CSP would block them), nothing from another origin, and
    every module the page imports is shipped beside it."""
    scan = _PageScan()
    scan.feed((playground.STATIC_DIR / "index.html").read_text())
    assert scan.problems == []
    assert scan.urls and all(re.fullmatch(r"/(static/playground/[a-z_.]+)?", u) for u in scan.urls)
    for url in scan.urls:
        if url.startswith("/static/playground/"):
            assert url.rsplit("/", 1)[1] in STATIC_FILES, url
    for name in STATIC_FILES:
        # An SVG names its XML namespace with a URL that is never fetched.
        text = (
            (playground.STATIC_DIR / name)
            .read_text()
            .replace('xmlns="http://www.w3.org/2000/svg"', "")
        )
        assert not re.search(r"https?:|//[a-z0-9.-]+\.[a-z]{2,}/", text), name  # offline
        assert "innerHTML" not in text and "eval(" not in text, name
        for module in re.findall(r'from "([^"]+)"', text):
            assert module.startswith("./") and module[2:] in STATIC_FILES, (name, module)


# Each names a real file outside the folder (static/playground/../../ is gan_keras/serving/,
# and four levels up is the repository), or the root file system.
TRAVERSALS = [
    "/static/playground/../../app.py",
    "/static/playground/../../../../setup.py",
    "/static/playground/%2e%2e/%2e%2e/app.py",
    "/static/playground/%2E%2E%2F%2E%2E%2Fplayground.py",
    "/static/playground/..%2f..%2fapp.py",
    "/static/playground/..%5c..%5capp.py",
    "/static/playground/..\\..\\app.py",
    "/static/playground/%252e%252e%252f%252e%252e%252fapp.py",
    "/static/playground/%25252e%25252e/%25252e%25252e/app.py",
    "/static/playground//etc/passwd",
    "/static/playground/%2fetc%2fpasswd",
    "/static/playground/C:\\Windows\\win.ini",
    "/static/playground/index.html%00.js",
    "/static/playground/index.html/",
    "/static/playground/./index.html",
    "/static/playground/",
    "/static/playground/INDEX.HTML",
    "/static/playground.py",
    "/static/app.py",
    "/static/../app.py",
    "/ui/..%2f..%2fapp.py",
    "/ui/%2e%2e",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_is_404(client, path):
    response = client.get(path)
    assert response.status_code == 404, path
    assert response.mimetype == "application/json"
    assert b"import" not in response.data and b"root:" not in response.data


def test_traversal_over_real_http(empty_app):
    """The same paths as raw request lines through the REST server (http.client sends them as given:
    no client-side normalisation of `..`)."""
    with helpers.RestServerThread(empty_app, threads=2) as server:
        for path in [*TRAVERSALS, "/static/playground/../../../../../../../../etc/passwd"]:
            connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
            try:
                connection.putrequest("GET", path, skip_accept_encoding=True)
                connection.endheaders()
                response = connection.getresponse()
                body = response.read()
            finally:
                connection.close()
            assert response.status in (400, 404), (path, response.status)
            assert b"import" not in body and b"root:" not in body, path
        ok = http.client.HTTPConnection(server.host, server.port, timeout=10)
        ok.request("GET", "/static/playground/playground.js")
        assert ok.getresponse().status == 200
        ok.close()


def test_only_listed_files_are_served(tmp_path):
    """Names are matched against the folder's listing made at start-up: other types, upper
    case, sub-folders and symbolic links (even to a listed type) are never served."""
    folder = tmp_path / "static"
    (folder / "sub").mkdir(parents=True)
    (folder / "index.html").write_text("<!doctype html><title>x</title>")
    (folder / "a.js").write_text("export const a = 1;")
    (folder / "notes.txt").write_text("secret")
    (folder / "Upper.JS").write_text("no")
    (folder / "sub" / "b.js").write_text("no")
    (tmp_path / "outside.js").write_text("secret")
    (folder / "link.js").symlink_to(tmp_path / "outside.js")
    assert sorted(playground.list_static_files(folder)) == ["a.js", "index.html"]
    flask_app = Flask(__name__, static_folder=None)
    playground.register(flask_app, folder)
    client = flask_app.test_client()
    assert client.get("/static/playground/a.js").status_code == 200
    for name in ("notes.txt", "Upper.JS", "sub/b.js", "link.js", "../outside.js"):
        assert client.get(f"/static/playground/{name}").status_code == 404, name
    (folder / "index.html").unlink()
    with pytest.raises(FileNotFoundError, match="index.html"):
        playground.list_static_files(folder)


def test_config(client):
    body = client.get("/playground/config.json").get_json()
    assert body == {"models": ["g"], "default_model": "g", "max_upload_bytes": 64 * 1024 * 1024}


def test_package_data_ships_the_folder():
    """setup.py's package_data for gan_keras.serving covers every file the page needs."""
    tree = ast.parse((helpers.REPO / "setup.py").read_text())
    package_data = next(
        ast.literal_eval(keyword.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for keyword in node.keywords
        if keyword.arg == "package_data"
    )
    patterns = package_data["gan_keras.serving"]
    for name in STATIC_FILES:
        assert any(fnmatch.fnmatch(f"static/playground/{name}", p) for p in patterns), name


# --- :card --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def card_app(tmp_path_factory):
    """Version 1 with a model card and an evaluation, version 2 with neither."""
    base = tmp_path_factory.mktemp("card") / "g"
    generator = helpers.tiny_generator(False, latent_dim=LATENT)
    directions = {"towards_x": np.ones(LATENT, np.float32)}
    assets = {layout.EVALUATION_ASSET: json.dumps(EVALUATION), layout.MODEL_CARD_ASSET: CARD}
    gan_export.export_generator(
        generator, base, latent_dim=LATENT, directions=directions, extra_assets=assets
    )
    gan_export.export_generator(generator, base, latent_dim=LATENT)
    models = ServedModels.from_config_file(
        _config_file(base.parent, base, "all {}"), file_system_poll_seconds=0
    )
    flask_app = serving_app.create_app(registry=models, max_batch=32)
    yield flask_app
    models.stop()


def _config_file(folder, base, policy):
    path = folder / "models.config"
    path.write_text(
        f'model_config_list {{ config {{ name: "g" base_path: "{base}" '
        f"model_platform: 'tensorflow' model_version_policy {{ {policy} }} }} }}"
    )
    return path


@pytest.mark.slow
def test_card(card_app):
    client = card_app.test_client()
    response = client.get("/v1/models/g/versions/1:card")
    assert response.status_code == 200 and response.headers["X-Model-Version"] == "1"
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    card = response.get_json()
    assert card["model_spec"] == {"name": "g", "version": "1"} and card["task"] == "generate"
    assert card["model_info"]["image_shape"] == [8, 8, 1]
    assert "edit" in card["signatures"] and "style_mix" not in card["signatures"]
    assert [d["name"] for d in card["directions"]][-1] == "towards_x"
    assert card["model_card"] == CARD
    evaluation = card["evaluation"]
    assert evaluation["summary"] == EVALUATION["summary"] and evaluation["blessed"] is True
    assert evaluation["headline"] == {
        "frechet_distance": 7.9,
        "kid_mean": None,
        "precision": 0.7,
        "recall": 0.5,
    }
    assert evaluation["gate_reason"] == EVALUATION["gate"]["reason"]
    assert evaluation["truncation"] == EVALUATION["controls"]["truncation"]["rows"][:2]
    assert evaluation["nearest_neighbours"]["ratio"] == 1.4
    assert evaluation["nearest_neighbours"]["near_copy_share"] == 0.03
    assert "private" not in response.get_data(as_text=True)  # only the figures the page shows
    assert card["limits"] == {
        "max_batch": 32,
        "max_body_bytes": 64 * 1024 * 1024,
        "max_interpolation_steps": 32,
        "max_edit_strengths": 64,
        "max_project_steps": codec.MAX_PROJECT_STEPS,
    }
    # The latest version has neither a card nor an evaluation: nulls, not an error.
    bare = client.get("/v1/models/g:card").get_json()
    assert bare["model_spec"]["version"] == "2"
    assert bare["model_card"] is None and bare["evaluation"] is None
    assert "towards_x" not in [d["name"] for d in bare["directions"]]
    # Read-only, no parameters, known models only.
    assert "Use GET for :card" in _error(client.post("/v1/models/g:card"), 405)
    assert "takes no query parameters" in _error(client.get("/v1/models/g:card?x=1"), 400)
    _error(client.get("/v1/models/nope:card"), 404)
    _error(client.get("/v1/models/g/versions/7:card"), 404)


@pytest.mark.slow
def test_card_of_a_damaged_evaluation(card_app):
    """A version whose evaluation.json does not parse still has a card (evaluation: null)."""
    servable = card_app.config["REGISTRY"].resolve("g", 1)
    path = layout.asset_path(servable.path, layout.EVALUATION_ASSET)
    good = path.read_bytes()
    try:
        path.write_bytes(b"{not json")
        card = card_app.test_client().get("/v1/models/g/versions/1:card").get_json()
        assert card["evaluation"] is None and card["model_card"] == CARD
        path.write_text("[1, 2]")
        assert playground.evaluation_highlights([1, 2]) is None
    finally:
        path.write_bytes(good)


def test_evaluation_highlights_of_an_image_to_image_model():
    metrics = {
        "summary": "PSNR 24.1 dB",
        "methods": {"model": {"psnr": 24.1, "ssim": 0.8}, "bicubic": {"psnr": 22.0, "ssim": "x"}},
    }
    highlights = playground.evaluation_highlights(metrics)
    assert highlights["methods"] == {
        "model": {"psnr": 24.1, "ssim": 0.8},
        "bicubic": {"psnr": 22.0, "ssim": None},
    }
    assert highlights["truncation"] == [] and highlights["nearest_neighbours"] is None
