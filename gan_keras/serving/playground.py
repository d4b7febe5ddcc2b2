"""The playground: a page in the browser for every served model, from the model server itself.

    GET /                                  the page, for the default model (or ?model=NAME)
    GET /ui/<name>                         the page for a served model (404 JSON otherwise)
    GET /static/playground/<file>          its HTML, CSS and JavaScript (static/playground/)
    GET /playground/config.json            the served models' names and the upload limit
    GET /v1/models/<name>[/versions/<v>]:card
                                           what an export says about itself: model_info.json,
                                           the edit directions, model_card.md, the evaluation's
                                           headline figures and the request limits

The page is static files shipped in the package (no CDN, no build step, so it works offline)
and calls nothing but this server's REST API (docs/playground.md). It exists so a person can
reach the controls (truncation, walks, edits, projection, style mixing, image-to-image) without
typing URLs, and so the API is exercised the way a browser client uses it.

Security: nothing outside ``static/playground/`` is ever served. The files there are listed
once, when the app is made, and a request is answered only when its name is exactly one of
them: `..`, encoded or double-encoded separators, absolute paths and backslashes never reach
the file system, they are just names that are not on the list (404). Every playground
response carries a Content-Security-Policy that allows scripts and styles from this origin
only (no inline script or style), images from this origin and the page's own blob: URLs, and
requests to this origin only; plus X-Content-Type-Options: nosniff.
"""

import hashlib
import logging
import math
import pathlib
import re

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import NotFound

from gan_keras.client import transform
from gan_keras.client.model import is_image_to_image, task_name
from gan_keras.export import layout
from gan_keras.serving import codec, image_endpoints
from gan_keras.serving.codec import ServingError
from gan_keras.serving.responses import json_response
from gan_keras.serving.versions import Servable

logger = logging.getLogger(__name__)

STATIC_DIR = pathlib.Path(__file__).resolve().parent / "static" / "playground"
STATIC_URL = "/static/playground"
# What may be served from STATIC_DIR: plain lower-case names of these types, no folders.
STATIC_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\.(html|js|css|svg|png)")
_MIMETYPES = {
    "html": "text/html",
    "js": "text/javascript",
    "css": "text/css",
    "svg": "image/svg+xml",
    "png": "image/png",
}

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # The page shows the API's images as blob: URLs of the bytes it fetched.
        "img-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}

# The evaluation's figures the page shows (evaluation.json has many more).
_HEADLINE_KEYS = ("frechet_distance", "kid_mean", "precision", "recall")
_TRUNCATION_KEYS = ("psi", "frechet_distance", "precision", "recall")


def list_static_files(directory=STATIC_DIR) -> dict[str, tuple[bytes, str, str]]:
    """name -> (bytes, mimetype, ETag) of every servable file directly in `directory`.

    Read once: the page is a few small files, and a fixed list is what makes "nothing else
    is ever served" hold whatever a request's path says."""
    files = {}
    for path in sorted(pathlib.Path(directory).iterdir()):
        match = STATIC_NAME.fullmatch(path.name)
        if match is None or not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        files[path.name] = (data, _MIMETYPES[match.group(1)], hashlib.sha256(data).hexdigest()[:32])
    if "index.html" not in files:
        raise FileNotFoundError(f"The playground's index.html is missing from {directory}")
    return files


def _with_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response


def _static_response(files: dict, name: str) -> Response:
    if name not in files:
        raise NotFound()  # the app's 404: {"error": "Malformed request: GET <path>"}
    data, mimetype, etag = files[name]
    if mimetype.startswith("text/"):
        mimetype += "; charset=utf-8"
    response = Response(data, content_type=mimetype)
    response.set_etag(etag)
    # Revalidated on every load (a 304 when unchanged), so a new package version shows at once.
    response.headers["Cache-Control"] = "no-cache"
    return response.make_conditional(request)


def create_blueprint(directory=STATIC_DIR) -> Blueprint:
    """The playground's routes; `directory` holds index.html and the files it loads."""
    files = list_static_files(directory)
    blueprint = Blueprint("playground", __name__)

    @blueprint.after_request
    def security_headers(response: Response) -> Response:
        return _with_security_headers(response)

    @blueprint.route("/", methods=["GET"])
    def index():
        return _static_response(files, "index.html")

    @blueprint.route("/ui/<name>", methods=["GET"])
    def model_page(name: str):
        models = current_app.config["REGISTRY"]
        if name not in models.names():
            raise ServingError(f"Could not find any versions of model {name}", 404)
        return _static_response(files, "index.html")

    # merge_slashes=False: "//etc/passwd" is a name to refuse (404), not a redirect to follow.
    @blueprint.route(f"{STATIC_URL}/<path:name>", methods=["GET"], merge_slashes=False)
    def static_file(name: str):
        return _static_response(files, name)

    @blueprint.route("/playground/config.json", methods=["GET"])
    def config():
        models = current_app.config["REGISTRY"]
        return json_response(
            {
                "models": models.names(),
                "default_model": models.default_name,
                "max_upload_bytes": current_app.config["MAX_CONTENT_LENGTH"],
            }
        )

    return blueprint


def register(app: Flask, directory=STATIC_DIR) -> None:
    """Adds the playground's routes to the model server's app (gan_keras.serving.app)."""
    app.register_blueprint(create_blueprint(directory))


# --- :card -----------------------------------------------------------------------------------


def _read_asset(servable: Servable, name: str) -> bytes | None:
    try:
        return layout.asset_path(servable.path, name).read_bytes()
    except FileNotFoundError:
        return None


def _number(value) -> float | None:
    """A finite number as JSON holds it, else None (evaluation.json is not trusted blindly)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def evaluation_highlights(metrics) -> dict | None:
    """The figures of evaluation.json the page shows: the summary line placing the FD between
    the real-data floor, the reference generators and noise; the headline scores; the gate's
    decision; the truncation trade-off (FD, precision, recall per psi); the nearest-neighbour
    (memorisation) check; and an image-to-image model's table beside its references."""
    if not isinstance(metrics, dict):
        return None
    gate = metrics.get("gate") if isinstance(metrics.get("gate"), dict) else {}
    controls = metrics.get("controls") if isinstance(metrics.get("controls"), dict) else {}
    truncation = controls.get("truncation") if isinstance(controls.get("truncation"), dict) else {}
    rows = [
        {key: _number(row.get(key)) for key in _TRUNCATION_KEYS}
        for row in truncation.get("rows") or []
        if isinstance(row, dict)
    ]
    nearest = controls.get("nearest_neighbours")
    nearest = nearest if isinstance(nearest, dict) else {}
    methods = metrics.get("methods") if isinstance(metrics.get("methods"), dict) else {}
    return {
        "summary": _text(metrics.get("summary")),
        "distance_name": _text(metrics.get("distance_name")),
        "frechet_distance_description": _text(metrics.get("frechet_distance_description")),
        "headline": {key: _number(metrics.get(key)) for key in _HEADLINE_KEYS if key in metrics},
        "blessed": metrics.get("blessed") if isinstance(metrics.get("blessed"), bool) else None,
        "gate_reason": _text(gate.get("reason")),
        "truncation": [row for row in rows if row["psi"] is not None],
        "nearest_neighbours": {
            "ratio": _number(nearest.get("ratio")),
            "near_copy_share": _number(nearest.get("samples_closer_than_real_eval_5th_percentile")),
            "note": _text(nearest.get("note")),
        }
        if nearest
        else None,
        "methods": {
            str(name): {key: _number(value) for key, value in scores.items()}
            for name, scores in methods.items()
            if isinstance(scores, dict)
        },
    }


def _limits(servable: Servable, max_batch: int) -> dict:
    """The request limits the page checks before it sends (the server checks them again)."""
    max_body = current_app.config["MAX_CONTENT_LENGTH"]
    limits = {
        "max_batch": max_batch,
        "max_body_bytes": max_body,
        "max_interpolation_steps": min(image_endpoints.MAX_INTERPOLATION_STEPS, max_batch),
        "max_edit_strengths": image_endpoints.MAX_EDIT_STRENGTHS,
        "max_project_steps": codec.MAX_PROJECT_STEPS,
    }
    if is_image_to_image(servable):
        try:
            shapes = transform.transform_input_shapes(servable)
        except ValueError:  # not a usable image-to-image export; :transform says why
            shapes = {}
        limits["transform_inputs"] = {k: list(v) if v else None for k, v in shapes.items()}
        limit = codec.transform_body_limit(shapes) if shapes else None
        limits["max_transform_body_bytes"] = min(limit, max_body) if limit else max_body
    return limits


def card_endpoint(servable: Servable, name: str, directions: list[dict], max_batch: int):
    """GET :card: what the export says about itself, for the playground (read-only).

    {"model_spec", "task", "model_info" (model_info.json), "directions" (directions.json's
    entries), "model_card" (model_card.md's text, or null), "evaluation"
    (`evaluation_highlights` of evaluation.json, or null), "limits"}. An export without a
    card or an evaluation (e.g. exported with --force) still answers, with nulls."""
    if request.args:
        raise ServingError(f":card takes no query parameters, got {sorted(request.args)}")
    card = _read_asset(servable, layout.MODEL_CARD_ASSET)
    evaluation = _read_asset(servable, layout.EVALUATION_ASSET)
    metrics = None
    if evaluation is not None:
        try:
            metrics = evaluation_highlights(codec.parse_json(evaluation))
        except ServingError as e:  # a damaged file: say so rather than fail the card
            logger.warning("Could not read %s's evaluation: %s", servable.path, e.message)
    response = json_response(
        {
            "model_spec": {"name": name, "version": str(servable.version)},
            "task": task_name(servable),
            "model_info": servable.info,
            "signatures": sorted(servable.signatures),
            "directions": directions,
            "model_card": card.decode("utf-8", errors="replace") if card is not None else None,
            "evaluation": metrics,
            "limits": _limits(servable, max_batch),
        }
    )
    response.headers["X-Model-Version"] = str(servable.version)
    return _with_security_headers(response)
