"""The Flask app: TensorFlow Serving's REST API over the versions under a model base path.

Endpoints (as documented for TF Serving's REST API):

    GET  /v1/models/<name>[/versions/<v>]             version status
    GET  /v1/models/<name>[/versions/<v>]/metadata    signature defs
    POST /v1/models/<name>[/versions/<v>]:predict     row ("instances") or
                                                      columnar ("inputs") format
    GET  /v1/models/<name>[/versions/<v>]:sample?n=16&seed=0[&label=3][&rows=4]
                                                      [&truncation=0.7]
                                                      a PNG grid, for browsers
    GET  ...:interpolate?seed_a=1&seed_b=2[&steps=8][&format=png|gif]
                        [&label_a=0&label_b=1][&duration_ms=100]
                                                      a PNG strip or a looping GIF
    GET  ...:edit?direction=sefa_0[&seed=0][&num=4][&strengths=-3,-1.5,0,1.5,3]
                 [&label=3][&truncation=0.7]          a PNG grid: a row per sample,
                                                      a column per strength
    POST ...:project[?steps=200][&label=3]            body: a PNG of the model's
                                                      image shape -> JSON {"z" (or
                                                      "w": control_space), "psnr",
                                                      "reconstruction_png_b64"}
    GET  /monitoring/prometheus/metrics              the Prometheus text format
                                                      (gan_keras.serving.prometheus)
    POST ...:transform                                image-to-image models: body the
                                                      condition PNG (image/png), or
                                                      multipart/form-data with file
                                                      fields "image" and "mask"
                                                      (inpainting) -> the output PNG

``:sample``, ``:interpolate``, ``:edit`` and ``:project`` are for sampling
models and ``:transform`` for image-to-image ones (model_info.json's "task":
super_resolution, inpainting, translation); the other kind gets a 400 saying
which to use. ``:transform`` checks the PNGs against model_info.json's
"inputs" before the model runs: the size and channel count must match exactly
(nothing is resized, and grayscale and RGB are not converted), and the mask is
a 1-channel PNG where values >= 128 (white) are the hole; an image's alpha
channel is never read as the mask.

Errors are JSON ``{"error": "..."}`` with 400 for bad requests (naming the
query parameter at fault) and 404 for an unknown model, version or path, as
TF Serving answers. The GET endpoints follow the ``sample`` signature's seed
convention (gan_keras.export.sampling_model): ``:interpolate``'s first and last images are
``:sample?n=1&seed=<seed_a>[&label=<label_a>]`` and the same for b, and
``:edit``'s images at strength 0 are ``:sample?n=<num>&seed=<seed>``'s.
``:project``'s "psnr" is null when the reconstruction is pixel-exact
(infinite PSNR), which JSON cannot hold. These image endpoints are
gan_keras.serving.image_endpoints; the logic behind them is gan_keras.client,
shared with the command line (pipeline.generate).

The ``sample`` signature takes scalars, so call it with the columnar format:
``{"signature_name": "sample", "inputs": {"num_samples": 4, "seed": 0}}`` (add
``"label": []`` for random labels, ``[3]`` or one label per sample, on
conditional models).
"""

import logging
import threading
import time
import weakref

from flask import Flask, Response, g, request

from gan_keras.client import sampling
from gan_keras.client.model import RequestError, require_sampling_model
from gan_keras.export import layout
from gan_keras.serving import codec, image_endpoints
from gan_keras.serving.codec import ServingError
from gan_keras.serving.prometheus import ServingMetrics, status_for_http
from gan_keras.serving.responses import json_response
from gan_keras.serving.versions import ModelVersions, Servable

logger = logging.getLogger(__name__)

# TF Serving's path for the Prometheus text format.
METRICS_PATH = "/monitoring/prometheus/metrics"


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
        if not layout.is_version_name(parts[1]):
            raise ServingError(f"Invalid version '{parts[1]}': versions are integers", 400)
        version = int(parts[1])
        parts = parts[2:]
    if parts == ["metadata"]:
        metadata, parts = True, []
    if parts or not name:
        raise ServingError(f"Malformed request: /v1/models/{rest}", 404)
    return name, version, metadata, verb


def create_app(
    model_base_path,
    model_name: str = "generator",
    max_batch: int = 256,
    poll_seconds: float = 2.0,
    registry: ModelVersions | None = None,
    freeze_heap: bool = False,
) -> Flask:
    """The Flask app; ``app.config['REGISTRY']`` holds its ModelVersions.

    The versions load what is on disk now and start polling when
    poll_seconds > 0; call ``app.config['REGISTRY'].stop()`` when done.
    `freeze_heap` is for a process that only serves (see ModelVersions).
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    registry = registry or ModelVersions(model_base_path, model_name, poll_seconds, freeze_heap)
    registry.refresh()
    if registry.current() is None:
        logger.warning(
            "No versions of %s found under %s yet; waiting for one", model_name, model_base_path
        )
    registry.start()

    app = Flask(__name__)
    app.config["REGISTRY"] = registry
    app.config["MAX_BATCH"] = max_batch
    metrics = ServingMetrics(model_name, lambda: getattr(registry.current(), "version", None))
    app.config["METRICS"] = metrics
    # JSON of one max_batch request of 256 latent vectors is far below this.
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024

    def resolve(name: str, version: int | None) -> Servable:
        return registry.resolve(name, version)

    @app.before_request
    def start_clock():
        g.start = time.perf_counter()

    @app.after_request
    def count_request(response):
        # Every /v1/models request, whatever its outcome (error handlers' answers too).
        if request.path.startswith("/v1/models/") and "start" in g:
            try:
                _, _, metadata, verb = _parse_path(request.path[len("/v1/models/") :])
                api = verb or ("metadata" if metadata else "status")
            except ServingError:
                api = "malformed"
            metrics.observe(
                "REST",
                api,
                g.get("signature_name", ""),
                status_for_http(response.status_code),
                time.perf_counter() - g.start,
            )
        return response

    @app.route(METRICS_PATH, methods=["GET"])
    def prometheus_metrics():
        data, content_type = metrics.exposition()
        return Response(data, content_type=content_type)

    def sampling_servable(name: str, version: int | None, verb: str) -> Servable:
        servable = resolve(name, version)
        require_sampling_model(
            servable,
            f":{verb}",
            "POST the condition PNG to :transform, or call serving_default with :predict",
        )
        return servable

    directions_cache = weakref.WeakKeyDictionary()  # Servable -> its directions.json entries
    directions_lock = threading.Lock()

    def directions(servable: Servable) -> list[dict]:
        with directions_lock:
            if servable not in directions_cache:
                try:
                    directions_cache[servable] = sampling.load_directions(servable.path)
                except (OSError, ValueError) as e:  # unreadable: offer indices only
                    logger.warning("Could not read the directions of %s: %s", servable.path, e)
                    directions_cache[servable] = []
            return directions_cache[servable]

    @app.errorhandler(ServingError)
    def serving_error(e: ServingError):
        return json_response({"error": e.message}, e.status)

    @app.errorhandler(RequestError)
    def request_error(e: RequestError):
        return json_response({"error": str(e)}, 400)

    @app.errorhandler(400)
    def bad_request(e):  # werkzeug's own, e.g. a malformed multipart body
        return json_response({"error": getattr(e, "description", None) or "Bad request"}, 400)

    @app.errorhandler(404)
    def not_found(e):
        return json_response({"error": f"Malformed request: {request.method} {request.path}"}, 404)

    @app.errorhandler(405)
    def bad_method(e):
        return json_response(
            {"error": f"Method {request.method} not allowed on {request.path}"}, 405
        )

    @app.errorhandler(413)
    def too_large(e):
        return json_response({"error": "Request body too large"}, 413)

    @app.errorhandler(500)
    def internal(e):
        return json_response({"error": "Internal server error"}, 500)

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
                return json_response(
                    {
                        "model_spec": {
                            "name": model_name,
                            "signature_name": "",
                            "version": str(servable.version),
                        },
                        "metadata": {"signature_def": {"signature_def": servable.signature_defs}},
                    }
                )
            return json_response({"model_version_status": registry.status(version)})
        if metadata:
            raise ServingError(f"Malformed request: {request.path}", 404)
        if verb == "predict":
            if method != "POST":
                raise ServingError(f"Use POST for :predict, not {method}", 405)
            servable = resolve(name, version)
            signature_name, arrays, row_format = codec.decode_predict_request(
                request.get_data(cache=False), servable
            )
            g.signature_name = signature_name
            codec.check_limits(arrays, servable, max_batch, signature_name)
            outputs = metrics.run_model(servable, signature_name, arrays)
            return Response(
                codec.predict_response_json(outputs, row_format), mimetype="application/json"
            )
        if verb in ("sample", "interpolate", "edit"):
            if method != "GET":
                raise ServingError(f"Use GET for :{verb}, not {method}", 405)
            servable = sampling_servable(name, version, verb)
            if verb == "sample":
                return image_endpoints.sample_endpoint(servable, max_batch)
            if verb == "interpolate":
                return image_endpoints.interpolate_endpoint(servable, max_batch)
            return image_endpoints.edit_endpoint(servable, max_batch, directions(servable))
        if verb == "project":
            if method != "POST":
                raise ServingError(
                    f"Use POST for :project (the PNG as the body), not {method}", 405
                )
            return image_endpoints.project_endpoint(sampling_servable(name, version, verb))
        if verb == "transform":
            if method != "POST":
                raise ServingError(
                    "Use POST for :transform (the PNG as the body, or a "
                    f"multipart form with image and mask), not {method}",
                    405,
                )
            return image_endpoints.transform_endpoint(resolve(name, version))
        if verb in ("classify", "regress"):
            raise ServingError(
                f"{verb} is not supported: this model only has predict signatures", 400
            )
        raise ServingError(f"Malformed request: unknown method ':{verb}'", 404)

    return app
