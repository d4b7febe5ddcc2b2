"""The Flask app: TensorFlow Serving's REST API over the versions under a model base path.

Endpoints (as documented for TF Serving's REST API):

    GET  /v1/models/<name>[/versions/<v>]             version status
    GET  /v1/models/<name>[/versions/<v>]/metadata    signature defs
    POST /v1/models/<name>[/versions/<v>]:predict     row ("instances") or
                                                      columnar ("inputs") format
                                                      (answered before Flask:
                                                      gan_keras.serving.rest_predict)
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
    POST ...:verify                                   body: an image (PNG, GIF or JPEG)
                                                      -> JSON: the report of
                                                      `gan-verify --json` for it, plus
                                                      "served_model" and "detector"
                                                      (docs/provenance.md)
    GET  ...:card                                     JSON: model_info.json, the edit
                                                      directions, model_card.md, the
                                                      evaluation's figures, the limits
    GET  /, /ui/<name>, /static/playground/<file>     the playground, a page in the
                                                      browser (gan_keras.serving.playground)

Every PNG and GIF answered (and :project's reconstruction) carries its provenance
(gan_keras.serving.credentials): C2PA content credentials signed with `stamper`'s key, or
without one the unsigned metadata, which the app logs once, when created.

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

import asyncio
import functools
import logging
import threading
import time
import weakref

from flask import Flask, Response, g, request

from gan_keras.client import sampling
from gan_keras.client.model import RequestError, require_sampling_model
from gan_keras.export import layout
from gan_keras.provenance import detection
from gan_keras.provenance.stamp import Stamper
from gan_keras.serving import image_endpoints, playground
from gan_keras.serving.batching import Batcher
from gan_keras.serving.batching_parameters import BatchingParameters
from gan_keras.serving.codec import ServingError
from gan_keras.serving.credentials import ServerProvenance
from gan_keras.serving.models import ServedModels
from gan_keras.serving.prometheus import ServingMetrics, status_for_http
from gan_keras.serving.responses import json_response
from gan_keras.serving.rest_predict import PredictEndpoint, PredictRoute
from gan_keras.serving.versions import ModelVersions, Servable

logger = logging.getLogger(__name__)

# TF Serving's path for the Prometheus text format.
METRICS_PATH = "/monitoring/prometheus/metrics"


def _parse_path(rest: str):
    """'<name>[/versions/<v> | /labels/<l>][/metadata][:verb]' ->
    (name, version, label, metadata?, verb)."""
    verb = None
    head, sep, tail = rest.rpartition(":")
    if sep and "/" not in tail:
        rest, verb = head, tail
    parts = rest.split("/")
    name, version, label, metadata = parts[0], None, None, False
    parts = parts[1:]
    if len(parts) >= 2 and parts[0] == "versions":
        if not layout.is_version_name(parts[1]):
            raise ServingError(f"Invalid version '{parts[1]}': versions are integers", 400)
        version = int(parts[1])
        parts = parts[2:]
    elif len(parts) >= 2 and parts[0] == "labels" and parts[1]:
        label = parts[1]
        parts = parts[2:]
    if parts == ["metadata"]:
        metadata, parts = True, []
    if parts or not name:
        raise ServingError(f"Malformed request: /v1/models/{rest}", 404)
    return name, version, label, metadata, verb


def create_app(
    model_base_path=None,
    model_name: str = "generator",
    max_batch: int = 256,
    poll_seconds: float = 2.0,
    registry: ModelVersions | ServedModels | None = None,
    freeze_heap: bool = False,
    *,
    batching: BatchingParameters | None = None,
    stamper: Stamper | None = None,
    stamp_images: bool = True,
    trust_anchors: str | None = None,
) -> Flask:
    """The Flask app; ``app.config['REGISTRY']`` holds its ServedModels.

    Serves the versions under `model_base_path` as `model_name`, or the models of a
    `registry` (ServedModels.from_config_file for --model_config_file). The versions load
    what is on disk now and start polling when poll_seconds > 0; call
    ``app.config['REGISTRY'].stop()`` when done (and ``app.config['BATCHER'].stop()`` with
    `batching`: TF Serving's --enable_batching, see gan_keras.serving.batching).
    `freeze_heap` is for a process that only serves (see ModelVersions).
    `stamper` writes the provenance into every image answered (gan_keras.provenance.stamp:
    signed with a C2paSigner; the default, Stamper(), writes the unsigned metadata);
    `stamp_images=False` leaves it out, only to measure what it costs. `trust_anchors`: PEM
    text of the CA certificates :verify trusts (a signer chaining to one is "Trusted").
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    if isinstance(registry, ServedModels):
        models = registry
    else:
        versions = registry or ModelVersions(model_base_path, model_name, poll_seconds, freeze_heap)
        versions.refresh()
        if versions.current() is None:
            logger.warning(
                "No versions of %s found under %s yet; waiting for one",
                model_name,
                model_base_path,
            )
        models = ServedModels.single(versions)
    models.start()
    model_name = models.default_name

    # No Flask static route: the playground serves its own folder, and nothing else.
    app = Flask(__name__, static_folder=None)
    app.config["REGISTRY"] = models
    app.config["MAX_BATCH"] = max_batch
    metrics = ServingMetrics(model_name, None, served_versions=models.served_versions)
    app.config["METRICS"] = metrics
    batcher = Batcher(batching, metrics.observe_batch) if batching is not None else None
    app.config["BATCHER"] = batcher
    # JSON of one max_batch request of 256 latent vectors is far below this.
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024

    def run_predict(servable: Servable, name: str, signature_name: str, arrays: dict) -> dict:
        """One :predict (REST or gRPC): the model call, merged with others' when batching,
        then every PNG or GIF among its `_bytes` outputs stamped as the image endpoints' are."""
        if batcher is None:
            outputs = metrics.run_model(servable, signature_name, arrays, model_name=name)
        else:
            outputs = batcher.run(
                servable,
                signature_name,
                arrays,
                functools.partial(metrics.run_model, model_name=name),
                model_name=name,
            )
        return provenance.stamp_outputs(outputs, servable, name, signature_name, arrays)

    async def run_predict_async(servable, name, signature_name, arrays, executor) -> dict:
        """`run_predict` awaited on an event loop: with batching, a mergeable request waits in
        the queue without holding a thread; every other model call, and stamping, runs on
        `executor`."""
        loop = asyncio.get_running_loop()
        if batcher is None:
            return await loop.run_in_executor(
                executor, run_predict, servable, name, signature_name, arrays
            )
        outputs = await batcher.run_async(
            servable,
            signature_name,
            arrays,
            functools.partial(metrics.run_model, model_name=name),
            name,
            executor,
        )
        if not provenance.stamps(outputs):
            return outputs
        return await loop.run_in_executor(
            executor, provenance.stamp_outputs, outputs, servable, name, signature_name, arrays
        )

    app.config["RUN_PREDICT"] = run_predict
    provenance = ServerProvenance(
        (stamper or Stamper()) if stamp_images else None, trust_anchors=trust_anchors
    )
    provenance.log_mode()
    app.config["PROVENANCE"] = provenance

    @app.before_request
    def start_clock():
        g.start = time.perf_counter()

    @app.after_request
    def count_request(response):
        # Every /v1/models request, whatever its outcome (error handlers' answers too).
        if request.path.startswith("/v1/models/") and "start" in g:
            name = None
            try:
                name, _, _, metadata, verb = _parse_path(request.path[len("/v1/models/") :])
                api = verb or ("metadata" if metadata else "status")
            except ServingError:
                api = "malformed"
            metrics.observe(
                "REST",
                api,
                "",  # only :predict names a signature (gan_keras.serving.rest_predict)
                status_for_http(response.status_code),
                time.perf_counter() - g.start,
                # Only served names label the metrics: a client cannot add label values.
                model_name=name if name in models.names() else None,
            )
        return response

    @app.route(METRICS_PATH, methods=["GET"])
    def prometheus_metrics():
        data, content_type = metrics.exposition()
        return Response(data, content_type=content_type)

    def require_sampling(servable: Servable, verb: str) -> Servable:
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
    def models_route(rest):
        name, version, label, metadata, verb = _parse_path(rest)
        method = request.method
        if verb is None:
            if method != "GET":
                raise ServingError(f"Method {method} not allowed on {request.path}", 405)
            if name not in models.names():
                raise ServingError(f"Could not find any versions of model {name}", 404)
            if metadata:
                servable = models.resolve(name, version, label)
                return json_response(
                    {
                        "model_spec": {
                            "name": name,
                            "signature_name": "",
                            "version": str(servable.version),
                        },
                        "metadata": {"signature_def": {"signature_def": servable.signature_defs}},
                    }
                )
            return json_response({"model_version_status": models.status(name, version, label)})
        if metadata:
            raise ServingError(f"Malformed request: {request.path}", 404)
        if verb in ("classify", "regress"):
            raise ServingError(
                f"{verb} is not supported: this model only has predict signatures", 400
            )
        expected = {
            "predict": "POST",
            "sample": "GET",
            "interpolate": "GET",
            "edit": "GET",
            "project": "POST",
            "transform": "POST",
            "verify": "POST",
            "card": "GET",
        }
        if verb not in expected:
            raise ServingError(f"Malformed request: unknown method ':{verb}'", 404)
        if method != expected[verb]:
            if verb == "project":
                raise ServingError(
                    f"Use POST for :project (the PNG as the body), not {method}", 405
                )
            if verb == "verify":
                raise ServingError(
                    f"Use POST for :verify (the image as the body), not {method}", 405
                )
            if verb == "transform":
                raise ServingError(
                    "Use POST for :transform (the PNG as the body, or a "
                    f"multipart form with image and mask), not {method}",
                    405,
                )
            raise ServingError(f"Use {expected[verb]} for :{verb}, not {method}", 405)
        if verb == "predict":  # POST :predict never reaches Flask: PredictEndpoint answers it
            raise RuntimeError("POST :predict reached the Flask route past PredictRoute")
        # The version is held until the answer is built: a version swap meanwhile does not
        # unload it (gan_keras.serving.versions).
        with models.lease(name, version, label) as servable:
            if verb == "verify":
                return verify_endpoint(servable, name)
            if verb == "card":
                return playground.card_endpoint(servable, name, directions(servable), max_batch)

            def stamp(data: bytes, signature: str, **recipe) -> bytes:
                return provenance.stamp(data, servable, name, signature, **recipe)

            if verb == "transform":
                return image_endpoints.transform_endpoint(servable, stamp)
            require_sampling(servable, verb)
            if verb == "sample":
                return image_endpoints.sample_endpoint(servable, max_batch, stamp)
            if verb == "interpolate":
                return image_endpoints.interpolate_endpoint(servable, max_batch, stamp)
            if verb == "edit":
                return image_endpoints.edit_endpoint(
                    servable, max_batch, directions(servable), stamp
                )
            return image_endpoints.project_endpoint(servable, stamp)

    def verify_endpoint(servable: Servable, name: str) -> Response:
        """:verify: the body is any image (PNG, GIF or JPEG), under the app's body limit as
        :project's PNG is; its report as gan-verify --json gives it, and "served_model"."""
        if request.args:
            raise ServingError(f":verify takes no query parameters, got {sorted(request.args)}")
        mimetype = request.mimetype or ""
        if mimetype.startswith("multipart/") or mimetype == "application/x-www-form-urlencoded":
            raise ServingError(
                "send the image as the raw request body (curl --data-binary @image.png "
                f"-H 'Content-Type: image/png'), not as {mimetype}"
            )
        body = request.get_data(cache=False)
        report = provenance.verify_body(body, servable, name)
        # Without valid credentials, the version's `detect` signature (the evaluate stage's
        # detector) says how likely this model made the image (gan_keras.provenance.detection).
        detection.add_detector_report(
            report,
            body,
            servable.info,
            lambda images: run_predict(servable, name, "detect", {"images": images})["probability"],
            name,
            servable.version,
        )
        response = json_response(report)
        response.headers["X-Model-Version"] = str(servable.version)
        return response

    playground.register(app)
    # POST :predict is answered before Flask's request machinery (gan_keras.serving.rest_predict).
    endpoint = PredictEndpoint(
        models=models,
        max_batch=max_batch,
        max_content_length=app.config["MAX_CONTENT_LENGTH"],
        run_predict=run_predict,
        run_predict_async=run_predict_async,
        metrics=metrics,
        parse_path=_parse_path,
    )
    # The event-loop server (gan_keras.serving.rest_server) answers with it directly.
    app.config["PREDICT_ENDPOINT"] = endpoint
    app.wsgi_app = PredictRoute(app.wsgi_app, endpoint)
    return app
