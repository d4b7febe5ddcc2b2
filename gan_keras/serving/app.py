"""The Flask app serving a model registry over TensorFlow Serving's REST API.

Endpoints (as documented for TF Serving's REST API):

    GET  /v1/models/<name>[/versions/<v>]             version status
    GET  /v1/models/<name>[/versions/<v>]/metadata    signature defs
    POST /v1/models/<name>[/versions/<v>]:predict     row ("instances") or
                                                      columnar ("inputs") format
    GET  /v1/models/<name>[/versions/<v>]:sample?n=16&seed=0[&label=3][&rows=4]
                                                      a PNG grid, for browsers

Errors are JSON ``{"error": "..."}`` with 400 for bad requests and 404 for an
unknown model, version or path, as TF Serving answers.

The ``sample`` signature takes scalars, so call it with the columnar format:
``{"signature_name": "sample", "inputs": {"num_samples": 4, "seed": 0}}`` (add
``"label": []`` for random labels, ``[3]`` or one label per sample, on
conditional models).
"""

import json
import logging

import numpy as np
from flask import Flask, Response, request

from gan_keras import export_layout
from gan_keras import images as gan_images
from gan_keras.serving import codec
from gan_keras.serving.codec import ServingError
from gan_keras.serving.registry import ModelRegistry, Servable

logger = logging.getLogger(__name__)

def _json(obj, status: int = 200) -> Response:
    return Response(json.dumps(obj, separators=(",", ":")) + "\n", status=status,
                    mimetype="application/json")


def _parse_path(rest: str):
    """'<name>[/versions/<v>][/metadata][:verb]' -> (name, version, metadata?, verb)."""
    verb = None
    head, sep, tail = rest.rpartition(":")
    if sep and "/" not in tail:
        rest, verb = head, tail
    parts = rest.split("/")
    name, version, metadata = parts[0], None, False
    parts = parts[1:]
    if len(parts) >= 2 and parts[0] == "versions":
        if not export_layout.is_version_name(parts[1]):
            raise ServingError(f"Invalid version '{parts[1]}': versions are integers", 400)
        version = int(parts[1])
        parts = parts[2:]
    if parts == ["metadata"]:
        metadata, parts = True, []
    if parts or not name:
        raise ServingError(f"Malformed request: /v1/models/{rest}", 404)
    return name, version, metadata, verb


def create_app(model_base_path, model_name: str = "generator", max_batch: int = 256,
               poll_seconds: float = 2.0, registry: ModelRegistry | None = None) -> Flask:
    """The Flask app; ``app.config['REGISTRY']`` holds its ModelRegistry.

    The registry loads what is on disk now and starts polling when
    poll_seconds > 0; call ``app.config['REGISTRY'].stop()`` when done.
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    registry = registry or ModelRegistry(model_base_path, model_name, poll_seconds)
    registry.refresh()
    if registry.current() is None:
        logger.warning("No versions of %s found under %s yet; waiting for one",
                       model_name, model_base_path)
    registry.start()

    app = Flask(__name__)
    app.config["REGISTRY"] = registry
    app.config["MAX_BATCH"] = max_batch
    # JSON of one max_batch request of 256 latent vectors is far below this.
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024

    def resolve(name: str, version: int | None) -> Servable:
        if name != model_name:
            raise ServingError(f"Servable not found for request: Latest({name})", 404)
        return registry.get(version)

    @app.errorhandler(ServingError)
    def serving_error(e: ServingError):
        return _json({"error": e.message}, e.status)

    @app.errorhandler(404)
    def not_found(e):
        return _json({"error": f"Malformed request: {request.method} {request.path}"}, 404)

    @app.errorhandler(405)
    def bad_method(e):
        return _json({"error": f"Method {request.method} not allowed on {request.path}"}, 405)

    @app.errorhandler(413)
    def too_large(e):
        return _json({"error": "Request body too large"}, 413)

    @app.errorhandler(500)
    def internal(e):
        return _json({"error": "Internal server error"}, 500)

    @app.route("/v1/models/<path:rest>", methods=["GET", "POST"])
    def models(rest):
        name, version, metadata, verb = _parse_path(rest)
        method = request.method
        if verb is None:
            if method != "GET":
                raise ServingError(f"Method {method} not allowed on {request.path}", 405)
            if name != model_name:
                raise ServingError(f"Could not find any versions of model {name}", 404)
            if metadata:
                servable = registry.get(version)
                return _json({
                    "model_spec": {"name": model_name, "signature_name": "",
                                   "version": str(servable.version)},
                    "metadata": {"signature_def": {"signature_def": servable.signature_defs}},
                })
            return _json({"model_version_status": registry.status(version)})
        if metadata:
            raise ServingError(f"Malformed request: {request.path}", 404)
        if verb == "predict":
            if method != "POST":
                raise ServingError(f"Use POST for :predict, not {method}", 405)
            servable = resolve(name, version)
            signature_name, arrays, row_format = codec.decode_predict_request(
                request.get_data(cache=False), servable)
            codec.check_limits(arrays, servable, max_batch)
            outputs = servable.run(signature_name, arrays)
            return _json(codec.encode_predict_response(outputs, row_format))
        if verb == "sample":
            if method != "GET":
                raise ServingError(f"Use GET for :sample, not {method}", 405)
            return _sample_png(resolve(name, version), max_batch)
        if verb in ("classify", "regress"):
            raise ServingError(f"{verb} is not supported: this model only has predict "
                               "signatures", 400)
        raise ServingError(f"Malformed request: unknown method ':{verb}'", 404)

    return app


def _int_arg(name: str, default: int | None) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ServingError(f"query parameter {name}={raw!r} is not an integer") from None


def _sample_png(servable: Servable, max_batch: int) -> Response:
    if "sample" not in servable.signatures:
        raise ServingError("this model has no 'sample' signature")
    n, seed = _int_arg("n", 16), _int_arg("seed", 0)
    label, rows = _int_arg("label", None), _int_arg("rows", None)
    unknown = set(request.args) - {"n", "seed", "label", "rows"}
    if unknown:
        raise ServingError(f"unknown query parameters {sorted(unknown)}: use n, seed, label, rows")
    if rows is not None and rows < 1:
        raise ServingError(f"rows must be >= 1, got {rows}")
    inputs = {"num_samples": np.int32(min(max(n, 0), 2**31 - 1)),
              "seed": np.int64(seed) if -(2**63) <= seed < 2**63 else None}
    if inputs["seed"] is None:
        raise ServingError(f"seed={seed} does not fit in int64")
    conditional = "label" in servable.input_specs["sample"]
    if label is not None and not conditional:
        raise ServingError("this model is unconditional: it takes no label")
    if conditional:
        inputs["label"] = np.array([] if label is None else [label], np.int64)
    codec.check_limits(inputs, servable, max_batch)
    if conditional:
        inputs["label"] = inputs["label"].astype(np.int32)
    outputs = servable.run("sample", inputs)
    grid = gan_images.make_grid(outputs["images"],
                                rows=rows if rows is None else min(rows, n))
    response = Response(gan_images.encode_png(grid), mimetype="image/png")
    response.headers["X-Model-Version"] = str(servable.version)
    return response


def run_server(model_base_path, model_name: str = "generator", *, host: str = "127.0.0.1",
               port: int = 8501, max_batch: int = 256, poll_seconds: float = 2.0,
               threads: int = 4) -> None:
    """Serves the app on waitress until interrupted, then stops the registry's poller."""
    import waitress

    flask_app = create_app(model_base_path, model_name, max_batch, poll_seconds)
    logger.info("Serving %s from %s on http://%s:%d/v1/models/%s", model_name, model_base_path,
                host, port, model_name)
    try:
        waitress.serve(flask_app, host=host, port=port, threads=threads)
    finally:
        flask_app.config["REGISTRY"].stop()
