"""The Flask app serving a model registry over TensorFlow Serving's REST API.

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
(infinite PSNR), which JSON cannot hold. The logic behind these endpoints is
gan_keras.client.sampling, shared with the command line (pipeline.generate).

The ``sample`` signature takes scalars, so call it with the columnar format:
``{"signature_name": "sample", "inputs": {"num_samples": 4, "seed": 0}}`` (add
``"label": []`` for random labels, ``[3]`` or one label per sample, on
conditional models).
"""

import base64
import json
import logging
import os
import threading
import time
import weakref

import numpy as np
from flask import Flask, Response, g, request

from gan_keras import images as gan_images
from gan_keras.client import sampling
from gan_keras.export import layout
from gan_keras.serving import codec
from gan_keras.serving.codec import ServingError
from gan_keras.serving.prometheus import ServingMetrics, status_for_http
from gan_keras.serving.versions import ModelRegistry, Servable

logger = logging.getLogger(__name__)

MAX_INTERPOLATION_STEPS = 256
MAX_EDIT_STRENGTHS = 64
DEFAULT_EDIT_NUM = 4
GIF_FRAME_MS_RANGE = (20, 10_000)
INT64_RANGE = (-(2**63), 2**63 - 1)
# TF Serving's path for the Prometheus text format.
METRICS_PATH = "/monitoring/prometheus/metrics"


def _json(obj, status: int = 200) -> Response:
    return Response(
        json.dumps(obj, separators=(",", ":")) + "\n", status=status, mimetype="application/json"
    )


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
    registry: ModelRegistry | None = None,
    freeze_heap: bool = False,
) -> Flask:
    """The Flask app; ``app.config['REGISTRY']`` holds its ModelRegistry.

    The registry loads what is on disk now and starts polling when
    poll_seconds > 0; call ``app.config['REGISTRY'].stop()`` when done.
    `freeze_heap` is for a process that only serves (ModelRegistry's).
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    registry = registry or ModelRegistry(model_base_path, model_name, poll_seconds, freeze_heap)
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
        sampling.require_sampling_model(
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
        return _json({"error": e.message}, e.status)

    @app.errorhandler(sampling.RequestError)
    def request_error(e: sampling.RequestError):
        return _json({"error": str(e)}, 400)

    @app.errorhandler(400)
    def bad_request(e):  # werkzeug's own, e.g. a malformed multipart body
        return _json({"error": getattr(e, "description", None) or "Bad request"}, 400)

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
                return _json(
                    {
                        "model_spec": {
                            "name": model_name,
                            "signature_name": "",
                            "version": str(servable.version),
                        },
                        "metadata": {"signature_def": {"signature_def": servable.signature_defs}},
                    }
                )
            return _json({"model_version_status": registry.status(version)})
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
                return _sample_png(servable, max_batch)
            if verb == "interpolate":
                return _interpolate(servable, max_batch)
            return _edit(servable, max_batch, directions(servable))
        if verb == "project":
            if method != "POST":
                raise ServingError(
                    f"Use POST for :project (the PNG as the body), not {method}", 405
                )
            return _project(sampling_servable(name, version, verb))
        if verb == "transform":
            if method != "POST":
                raise ServingError(
                    "Use POST for :transform (the PNG as the body, or a "
                    f"multipart form with image and mask), not {method}",
                    405,
                )
            return _transform(resolve(name, version))
        if verb in ("classify", "regress"):
            raise ServingError(
                f"{verb} is not supported: this model only has predict signatures", 400
            )
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


def _int_param(
    name: str,
    default: int | None = None,
    *,
    required: bool = False,
    low: int | None = None,
    high: int | None = None,
) -> int | None:
    """An integer query parameter; missing, malformed or out of [low, high] -> 400 naming it."""
    value = _int_arg(name, default)
    if value is None:
        if required:
            raise ServingError(f"query parameter {name} is required")
        return None
    if (low is not None and value < low) or (high is not None and value > high):
        raise ServingError(f"query parameter {name} must be in [{low}, {high}], got {value}")
    return value


def _seed_param(name: str, default: int | None = None, required: bool = False) -> int:
    value = _int_arg(name, default)
    if value is None:
        if required:
            raise ServingError(f"query parameter {name} is required")
        return value
    if not INT64_RANGE[0] <= value <= INT64_RANGE[1]:
        raise ServingError(f"query parameter {name}={value} does not fit in int64")
    return value


def _truncation_param(servable: Servable) -> float | None:
    raw = request.args.get("truncation")
    if raw is None or raw == "":
        return None
    try:
        psi = float(raw)
    except ValueError:
        raise ServingError(f"query parameter truncation={raw!r} is not a number") from None
    if not 0.0 <= psi <= 1.0:  # NaN fails too
        raise ServingError(f"query parameter truncation must be in [0, 1], got {raw}")
    sampling.require_signature(servable, "truncated_sample")
    return psi


def _label_param(
    servable: Servable, name: str, signature_name: str, required: bool = False
) -> int | None:
    """A label query parameter: in range for conditional models, absent for unconditional ones."""
    label = _int_arg(name, None)
    sampling.check_label(servable, label, name, required=required, signature_name=signature_name)
    return label


def _known_params(*names: str) -> None:
    unknown = set(request.args) - set(names)
    if unknown:
        raise ServingError(f"unknown query parameters {sorted(unknown)}: use {', '.join(names)}")


def _image_response(data: bytes, mimetype: str, servable: Servable) -> Response:
    response = Response(data, mimetype=mimetype)
    response.headers["X-Model-Version"] = str(servable.version)
    return response


def _sample_png(servable: Servable, max_batch: int) -> Response:
    if "sample" not in servable.signatures:
        raise ServingError("this model has no 'sample' signature")
    n, seed = _int_arg("n", 16), _int_arg("seed", 0)
    label, rows = _int_arg("label", None), _int_arg("rows", None)
    unknown = set(request.args) - {"n", "seed", "label", "rows", "truncation"}
    if unknown:
        raise ServingError(
            f"unknown query parameters {sorted(unknown)}: use n, seed, label, rows, truncation"
        )
    if rows is not None and rows < 1:
        raise ServingError(f"rows must be >= 1, got {rows}")
    truncation = _truncation_param(servable)
    inputs = {
        "num_samples": np.int32(min(max(n, 0), 2**31 - 1)),
        "seed": np.int64(seed) if -(2**63) <= seed < 2**63 else None,
    }
    if inputs["seed"] is None:
        raise ServingError(f"seed={seed} does not fit in int64")
    conditional = "label" in servable.input_specs["sample"]
    if label is not None and not conditional:
        raise ServingError("this model is unconditional: it takes no label")
    if conditional:
        inputs["label"] = np.array([] if label is None else [label], np.int64)
    codec.check_limits(inputs, servable, max_batch)
    images = sampling.sample_images(servable, num=n, seed=seed, label=label, truncation=truncation)
    grid = gan_images.make_grid(images, rows=rows if rows is None else min(rows, n))
    return _image_response(gan_images.encode_png(grid), "image/png", servable)


def _interpolate(servable: Servable, max_batch: int) -> Response:
    _known_params("seed_a", "seed_b", "steps", "format", "label_a", "label_b", "duration_ms")
    sampling.require_signature(servable, "interpolate")
    seed_a = _seed_param("seed_a", required=True)
    seed_b = _seed_param("seed_b", required=True)
    steps = _int_param(
        "steps", sampling.DEFAULT_INTERPOLATION_STEPS, low=2, high=MAX_INTERPOLATION_STEPS
    )
    if steps > max_batch:
        raise ServingError(
            f"query parameter steps={steps} is more than this server's --max_batch={max_batch}"
        )
    image_format = request.args.get("format") or "png"
    if image_format.lower() not in ("png", "gif"):
        raise ServingError(f"query parameter format must be png or gif, got {image_format!r}")
    image_format = image_format.lower()
    duration_ms = _int_param(
        "duration_ms", None, low=GIF_FRAME_MS_RANGE[0], high=GIF_FRAME_MS_RANGE[1]
    )
    if duration_ms is not None and image_format != "gif":
        raise ServingError("query parameter duration_ms applies only to format=gif")
    label_a = _label_param(servable, "label_a", "interpolate", required=True)
    label_b = _label_param(servable, "label_b", "interpolate", required=True)
    images = sampling.interpolate_images(
        servable, seed_a=seed_a, seed_b=seed_b, steps=steps, label_a=label_a, label_b=label_b
    )
    if image_format == "gif":
        data = sampling.encode_gif(images, duration_ms or sampling.DEFAULT_GIF_FRAME_MS)
        return _image_response(data, "image/gif", servable)
    return _image_response(sampling.strip_png(images), "image/png", servable)


def _edit(servable: Servable, max_batch: int, entries: list[dict]) -> Response:
    _known_params("direction", "seed", "num", "strengths", "label", "truncation")
    sampling.require_signature(servable, "edit")
    sampling.require_signature(servable, "truncated_sample")
    seed = _seed_param("seed", 0)
    raw_direction = request.args.get("direction")
    if raw_direction is None or raw_direction.strip() == "":
        names = ", ".join(entry["name"] for entry in entries) or "indices"
        raise ServingError(f"query parameter direction is required (a name or index: {names})")
    try:
        direction = sampling.resolve_direction(raw_direction, entries)
    except sampling.RequestError as e:
        raise ServingError(f"query parameter direction: {e}") from None
    raw_strengths = request.args.get("strengths") or ",".join(
        f"{s:g}" for s in sampling.DEFAULT_EDIT_STRENGTHS
    )
    strengths = sampling.parse_floats(raw_strengths, "query parameter strengths")
    if len(strengths) > MAX_EDIT_STRENGTHS:
        raise ServingError(
            f"query parameter strengths has {len(strengths)} values; at most {MAX_EDIT_STRENGTHS}"
        )
    num = _int_param("num", DEFAULT_EDIT_NUM, low=1, high=max_batch)
    if num * len(strengths) > max_batch:
        raise ServingError(
            f"query parameters num x strengths = {num} x {len(strengths)} images "
            f"is more than this server's --max_batch={max_batch}"
        )
    label = _label_param(servable, "label", "edit")
    truncation = _truncation_param(servable)
    images = sampling.edit_images(
        servable,
        num=num,
        seed=seed,
        direction=direction,
        strengths=strengths,
        label=label,
        truncation=truncation,
    )
    return _image_response(gan_images.encode_png(sampling.edit_grid(images)), "image/png", servable)


def _project(servable: Servable) -> Response:
    _known_params("steps", "label")
    sampling.require_signature(servable, "project")
    steps = _int_param("steps", sampling.DEFAULT_PROJECT_STEPS, low=0, high=codec.MAX_PROJECT_STEPS)
    label = _label_param(servable, "label", "project", required=True)
    mimetype = request.mimetype or ""
    if mimetype.startswith("multipart/"):
        raise ServingError(
            "send the PNG as the raw request body (curl --data-binary "
            "@image.png -H 'Content-Type: image/png'), not as a form"
        )
    body = request.get_data(cache=False)
    if mimetype == "application/json" or body.lstrip()[:1] in (b"{", b"["):
        raise ServingError(
            'this endpoint takes a PNG body; send JSON to :predict with "signature_name": "project"'
        )
    shape = sampling.image_shape(servable)
    try:
        image = sampling.decode_png(body, shape)
    except sampling.RequestError as e:
        raise ServingError(f"request body: {e}") from None
    out = sampling.project_image(servable, image, steps=steps, label=label)
    space = sampling.control_space(servable)  # "z", or "w" for a StyleGAN2 generator
    png = gan_images.encode_png(out["reconstruction"])
    response = _json(
        {
            space: codec.json_floats(out[space]),
            "psnr": sampling.psnr_for_json(out["psnr"]),
            "reconstruction_png_b64": base64.b64encode(png).decode("ascii"),
        }
    )
    response.headers["X-Model-Version"] = str(servable.version)
    return response


def _transform_request(servable: Servable, shapes: dict) -> dict[str, bytes]:
    """{"image": PNG bytes(, "mask": PNG bytes)} from a raw PNG body or a multipart form."""
    mimetype = request.mimetype or ""
    if mimetype == "multipart/form-data":
        files, form = request.files, request.form
        text_fields = sorted(set(form) & {"image", "mask"})
        if text_fields:
            raise ServingError(
                f"form field {text_fields[0]!r} must be a file part (curl -F "
                f"{text_fields[0]}=@{text_fields[0]}.png), not text"
            )
        unknown = sorted((set(files) | set(form)) - {"image", "mask"})
        if unknown:
            raise ServingError(f"unknown form fields {unknown}: use image and mask")
        repeated = [name for name in files if len(files.getlist(name)) > 1]
        if repeated:
            raise ServingError(
                f"form field {repeated[0]!r} given more than once: :transform "
                "takes one image per request"
            )
        data = {name: files[name].read() for name in files}
        if "image" not in data:
            raise ServingError(
                f"form field 'image' is missing ({sampling.describe_transform_inputs(servable)})"
            )
        return data
    if mimetype.startswith("multipart/") or mimetype == "application/x-www-form-urlencoded":
        raise ServingError(
            f"send the PNG as the raw body (Content-Type: image/png) or as "
            f"multipart/form-data file fields, not {mimetype}"
        )
    body = request.get_data(cache=False)
    if mimetype == "application/json" or body.lstrip()[:1] in (b"{", b"["):
        raise ServingError(
            'this endpoint takes a PNG body; send JSON to :predict (signature "serving_default")'
        )
    if "mask" in shapes:
        raise ServingError(
            f"this {sampling.task_name(servable)} model needs a mask: send multipart/form-data "
            "with file fields image and mask (curl -F image=@in.png -F mask=@mask.png); "
            f"{sampling.describe_transform_inputs(servable)}"
        )
    return {"image": body}


def _transform(servable: Servable) -> Response:
    sampling.require_image_to_image(
        servable, ":transform", "use :sample, :interpolate, :edit or :project (or :predict)"
    )
    if request.args:
        raise ServingError(f":transform takes no query parameters, got {sorted(request.args)}")
    shapes = sampling.transform_input_shapes(servable)
    limit = codec.transform_body_limit(shapes)
    if limit is not None:
        if request.content_length is not None and request.content_length > limit:
            raise ServingError(
                f"request body of {request.content_length} bytes is over this "
                f"model's :transform limit of {limit} bytes",
                413,
            )
        # Bodies without a Content-Length are cut off at the limit too (werkzeug answers 413).
        request.max_content_length = min(limit, request.max_content_length or limit)
    data = _transform_request(servable, shapes)
    png = sampling.transform_png(servable, data["image"], data.get("mask"))
    return _image_response(png, "image/png", servable)


def default_rest_threads() -> int:
    """TF Serving's default for --rest_api_num_threads: 4 per CPU this process may run on."""
    return 4 * len(os.sched_getaffinity(0))


def run_server(
    model_base_path,
    model_name: str = "generator",
    *,
    host: str = "127.0.0.1",
    rest_api_port: int | None = 8501,
    grpc_port: int | None = 8500,
    max_batch: int = 256,
    poll_seconds: float = 2.0,
    rest_api_num_threads: int = 0,
    rest_api_timeout_in_ms: int = 30_000,
    grpc_max_threads: int = 0,
) -> None:
    """Serves REST (waitress) and gRPC on one registry until interrupted.

    A port of 0 binds a free one, which is logged; None leaves that API out. The
    REST server runs on this thread; the gRPC one (gan_keras.serving.grpc_service)
    on its own pool, and both stop, with the registry's poller, on the way out.
    """
    import waitress

    if rest_api_port is None and grpc_port is None:
        raise ValueError("Nothing to serve: neither a REST nor a gRPC port")
    flask_app = create_app(model_base_path, model_name, max_batch, poll_seconds, freeze_heap=True)
    registry = flask_app.config["REGISTRY"]
    grpc_server = None
    rest_threads = rest_api_num_threads or default_rest_threads()
    try:
        if grpc_port is not None:
            from gan_keras.serving import grpc_service

            grpc_server, bound = grpc_service.start_server(
                registry,
                flask_app.config["METRICS"],
                host=host,
                port=grpc_port,
                max_batch=max_batch,
                max_workers=grpc_max_threads or rest_threads,
            )
            # The bound port: --port=0 asks the OS for a free one, which clients then read here.
            logger.info("Serving %s over gRPC on %s:%s", model_name, host, bound)
        if rest_api_port is None:
            grpc_server.wait_for_termination()
            return
        server = waitress.create_server(
            flask_app,
            host=host,
            port=rest_api_port,
            threads=rest_threads,
            # Closes connections idle this long, so slow clients cannot hold the threads.
            channel_timeout=max(1, rest_api_timeout_in_ms // 1000),
        )
        logger.info(
            "Serving %s from %s on http://%s:%s/v1/models/%s",
            model_name,
            model_base_path,
            host,
            server.effective_port,
            model_name,
        )
        server.run()
    finally:
        if grpc_server is not None:
            grpc_server.stop(grace=1).wait()
        registry.stop()
