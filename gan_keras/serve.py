r"""A model server for exported generators that speaks TensorFlow Serving's REST API.

    python -m gan_keras.serve --model_base_path=<workdir>/export/generator \
        --model_name=generator --port=8501

Endpoints (as documented for TF Serving's REST API):

    GET  /v1/models/<name>[/versions/<v>]             version status
    GET  /v1/models/<name>[/versions/<v>]/metadata    signature defs
    POST /v1/models/<name>[/versions/<v>]:predict     row ("instances") or
                                                      columnar ("inputs") format
    GET  /v1/models/<name>[/versions/<v>]:sample?n=16&seed=0[&label=3][&rows=4]
                                                      a PNG grid, for browsers

Like TF Serving's default version policy, the highest integer version under
``--model_base_path`` is served. The directory is polled every
``--poll_seconds``: a new version is loaded (and warmed up) completely before
requests switch to it, and when the served version's directory disappears the
next highest one is loaded, so deleting a bad version rolls back. A version that
fails to load is reported in the status endpoint and the previous one keeps
serving.

Errors are JSON ``{"error": "..."}`` with 400 for bad requests and 404 for an
unknown model, version or path, as TF Serving answers.

The ``sample`` signature takes scalars, so call it with the columnar format:
``{"signature_name": "sample", "inputs": {"num_samples": 4, "seed": 0}}`` (add
``"label": []`` for random labels, ``[3]`` or one label per sample, on
conditional models).
"""

import functools
import json
import logging
import os
import pathlib
import re
import threading

import numpy as np
import tensorflow as tf
from absl import app as absl_app
from absl import flags
from flask import Flask, Response, request
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2

from gan_keras import images as gan_images

logger = logging.getLogger(__name__)

MODEL_INFO_ASSET = "model_info.json"  # written by gan_keras.export
_INIT_OP_SIGNATURE = "__saved_model_init_op"
_VERSION_DIR = re.compile(r"^[0-9]+$")


class ServingError(Exception):
    """A request error carrying its HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


# --- loaded models -------------------------------------------------------------


class Servable:
    """One loaded, immutable model version. Safe to call from many threads."""

    def __init__(self, version: int, path: pathlib.Path):
        self.version = version
        self.path = pathlib.Path(path)
        self._model = tf.saved_model.load(str(self.path))
        self.signatures = {name: fn for name, fn in self._model.signatures.items()}
        if not self.signatures:
            raise ValueError(f"SavedModel {self.path} has no signatures")
        # name -> {input name: TensorSpec}
        self.input_specs = {
            name: dict(fn.structured_input_signature[1]) for name, fn in self.signatures.items()}
        self.output_names = {
            name: sorted(fn.structured_outputs) for name, fn in self.signatures.items()}
        self.signature_defs = _read_signature_defs(self.path)
        info_path = self.path / "assets.extra" / MODEL_INFO_ASSET
        self.info = json.loads(info_path.read_text()) if info_path.exists() else {}
        self.num_classes = int(self.info.get("num_classes", 0))
        self._warm_up()

    def _warm_up(self):
        # The first call of a concrete function initialises kernels; pay for
        # that before requests are switched over to this version.
        if "sample" in self.signatures:
            kwargs = {"num_samples": np.int32(1), "seed": np.int64(0)}
            if "label" in self.input_specs["sample"]:
                kwargs["label"] = np.zeros([0], np.int32)
            self.run("sample", kwargs)

    def run(self, signature_name: str, inputs: dict) -> dict:
        fn = self.signatures[signature_name]
        try:
            outputs = fn(**{k: tf.constant(v) for k, v in inputs.items()})
        except tf.errors.InvalidArgumentError as e:
            raise ServingError(_clean_tf_message(e.message)) from None
        return {k: v.numpy() for k, v in outputs.items()}


def _clean_tf_message(message: str) -> str:
    # Graph errors wrap the useful line in "Graph execution error", the node
    # and a stack trace; keep the assertion (or first meaningful) line.
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    for line in lines:
        if line.startswith("assertion failed:"):
            return line
    noise = ("Graph execution error", "Detected at node", "<stack traces", "[[{{node")
    useful = [line for line in lines if not line.startswith(noise)]
    return (useful or lines or ["invalid argument"])[0]


def _read_signature_defs(path: pathlib.Path) -> dict:
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    meta_graph = proto.meta_graphs[0]
    return {
        name: json_format.MessageToDict(
            sig, always_print_fields_with_no_presence=True, preserving_proto_field_name=True)
        for name, sig in meta_graph.signature_def.items()
    }


class ModelRegistry:
    """Tracks the versions under a base path and holds the one being served."""

    def __init__(self, model_base_path, model_name: str, poll_seconds: float = 2.0):
        self.model_base_path = pathlib.Path(model_base_path)
        self.model_name = model_name
        self.poll_seconds = poll_seconds
        self._current: Servable | None = None
        self._failed: dict[int, tuple[float, str]] = {}  # version -> (mtime, error)
        self._lock = threading.Lock()  # guards _current and _failed
        self._refresh_lock = threading.Lock()  # one refresh at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # Readers take a reference to an immutable Servable; a swap never affects
    # a request already running, and the old version is freed when the last
    # such request drops it.
    def current(self) -> Servable | None:
        with self._lock:
            return self._current

    def get(self, version: int | None = None) -> Servable:
        servable = self.current()
        if servable is None or (version is not None and version != servable.version):
            spec = "Latest" if version is None else "Specific"
            detail = self.model_name if version is None else f"{self.model_name}, {version}"
            raise ServingError(f"Servable not found for request: {spec}({detail})", 404)
        return servable

    def _versions_on_disk(self) -> list[int]:
        try:
            names = os.listdir(self.model_base_path)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted((int(n) for n in names if _VERSION_DIR.match(n)
                       and (self.model_base_path / n / "saved_model.pb").is_file()), reverse=True)

    def refresh(self) -> Servable | None:
        """Serves the highest loadable version on disk; returns the served one."""
        with self._refresh_lock:
            current = self.current()
            on_disk = self._versions_on_disk()
            with self._lock:
                for version in set(self._failed) - set(on_disk):
                    del self._failed[version]
            for version in on_disk:
                path = self.model_base_path / str(version)
                if current is not None and current.version == version:
                    return current
                try:
                    mtime = path.stat().st_mtime
                except FileNotFoundError:
                    continue
                failed = self._failed.get(version)
                if failed is not None and failed[0] == mtime:
                    continue  # already failed; retried only when the directory changes
                try:
                    servable = Servable(version, path)
                except Exception as e:  # any load failure keeps the old version serving
                    logger.error("Failed to load %s version %d from %s: %s",
                                 self.model_name, version, path, e)
                    with self._lock:
                        self._failed[version] = (mtime, f"{type(e).__name__}: {e}")
                    continue
                with self._lock:
                    self._current = servable
                    self._failed.pop(version, None)
                if current is None:
                    logger.info("Serving %s version %d from %s", self.model_name, version, path)
                else:
                    logger.info("Switched %s from version %d to %d", self.model_name,
                                current.version, version)
                return servable
            if current is not None:
                logger.warning("%s version %d was removed from %s and no other version loads; "
                               "unloading it", self.model_name, current.version,
                               self.model_base_path)
                with self._lock:
                    self._current = None
            return None

    def status(self, version: int | None = None) -> list[dict]:
        with self._lock:
            current, failed = self._current, dict(self._failed)
        entries = []
        if current is not None:
            entries.append((current.version, "AVAILABLE", "OK", ""))
        for v, (_, error) in failed.items():
            # Only failures newer than what is served matter (an older
            # version is not meant to be served anyway).
            if current is None or v > current.version:
                entries.append((v, "END", "UNKNOWN", error))
        if version is not None:
            entries = [e for e in entries if e[0] == version]
            if not entries:
                raise ServingError(
                    f"Could not find version {version} of model {self.model_name}", 404)
        if not entries:
            raise ServingError(f"Could not find any versions of model {self.model_name}", 404)
        return [{"version": str(v), "state": state,
                 "status": {"error_code": code, "error_message": message}}
                for v, state, code, message in sorted(entries, reverse=True)]

    def start(self) -> None:
        if self._thread is not None or self.poll_seconds <= 0:
            return
        self._thread = threading.Thread(target=self._poll, name="model-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _poll(self):
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # the poller must outlive one bad listing
                logger.exception("Polling %s failed", self.model_base_path)


# --- request decoding ----------------------------------------------------------


def _to_array(value, spec: tf.TensorSpec, what: str) -> np.ndarray:
    dtype = spec.dtype.as_numpy_dtype
    try:
        raw = np.asarray(value)
    except ValueError as e:  # ragged nested lists
        raise ServingError(f"{what}: not a rectangular array ({e})") from None
    if raw.size == 0:
        raw = raw.astype(dtype)
    if raw.dtype == object:
        raise ServingError(f"{what}: not a rectangular array of numbers")
    if spec.dtype.is_floating:
        if raw.dtype.kind not in "iuf":
            raise ServingError(f"{what}: expected numbers for {spec.dtype.name}, got {raw.dtype}")
    elif spec.dtype.is_integer:
        if raw.dtype.kind not in "iu":
            raise ServingError(f"{what}: expected integers for {spec.dtype.name}, got values of "
                               f"type {raw.dtype}")
        info = np.iinfo(dtype)
        if raw.size and (raw.min() < info.min or raw.max() > info.max):
            raise ServingError(f"{what}: value out of range for {spec.dtype.name}")
    else:
        raise ServingError(f"{what}: inputs of type {spec.dtype.name} are not supported")
    array = raw.astype(dtype)
    if spec.dtype.is_floating and not np.all(np.isfinite(array)):
        raise ServingError(f"{what}: values must be finite")
    if not spec.shape.is_compatible_with(array.shape):
        expected = [d if d is not None else -1 for d in spec.shape.as_list()]
        raise ServingError(f"{what}: expected shape {expected} (-1: any size), got "
                           f"{list(array.shape)}")
    return array


def decode_predict_request(body: bytes, servable: Servable) -> tuple[str, dict, bool]:
    """Parses a TF Serving predict request: (signature name, inputs, row format?)."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ServingError(f"JSON Parse error: {e}") from None
    if not isinstance(payload, dict):
        raise ServingError("JSON Value is not an object: a predict request is "
                           '{"instances": [...]} or {"inputs": ...}')
    signature_name = payload.get("signature_name", "serving_default")
    if not isinstance(signature_name, str):
        raise ServingError("'signature_name' must be a string")
    if signature_name not in servable.signatures:
        raise ServingError(f'Serving signature name: "{signature_name}" not found in signature '
                           f"def (available: {sorted(servable.signatures)})")
    specs = servable.input_specs[signature_name]
    has_instances, has_inputs = "instances" in payload, "inputs" in payload
    if has_instances == has_inputs:
        raise ServingError("Missing 'inputs' or 'instances' key" if not has_instances else
                           "Request may contain 'instances' or 'inputs', not both")
    unknown = set(payload) - {"signature_name", "instances", "inputs"}
    if unknown:
        raise ServingError(f"Unknown request keys: {sorted(unknown)}")

    if has_instances:
        instances = payload["instances"]
        if not isinstance(instances, list) or not instances:
            raise ServingError("'instances' must be a non-empty list")
        if all(isinstance(x, dict) for x in instances):
            columns = {}
            for i, instance in enumerate(instances):
                if set(instance) != set(specs):
                    raise ServingError(f"instances[{i}] has keys {sorted(instance)}; signature "
                                       f"'{signature_name}' expects {sorted(specs)}")
                for name, value in instance.items():
                    columns.setdefault(name, []).append(value)
        elif any(isinstance(x, dict) for x in instances):
            raise ServingError("'instances' mixes objects and bare values")
        elif len(specs) == 1:
            columns = {next(iter(specs)): instances}
        else:
            raise ServingError(f"Signature '{signature_name}' has inputs {sorted(specs)}: each "
                               "instance must be an object with these keys")
        scalar = [n for n, s in specs.items() if s.shape.rank == 0]
        if scalar:
            raise ServingError(f"Signature '{signature_name}' has scalar inputs {scalar}: use "
                               'the columnar format {"inputs": {...}}')
    else:
        inputs = payload["inputs"]
        if isinstance(inputs, dict):  # a bare value is never an object
            columns = inputs
        elif len(specs) == 1:
            columns = {next(iter(specs)): inputs}
        else:
            raise ServingError(f"Signature '{signature_name}' has inputs {sorted(specs)}: "
                               "'inputs' must be an object with these keys")
        if set(columns) != set(specs):
            raise ServingError(f"'inputs' has keys {sorted(columns)}; signature "
                               f"'{signature_name}' expects {sorted(specs)}")
    arrays = {name: _to_array(value, specs[name], f"input '{name}'")
              for name, value in columns.items()}
    return signature_name, arrays, has_instances


def check_limits(arrays: dict, servable: Servable, max_batch: int) -> None:
    for name, array in arrays.items():
        if name == "num_samples":
            n = int(array)
            if n < 1:
                raise ServingError(f"num_samples must be >= 1, got {n}")
            if n > max_batch:
                raise ServingError(f"num_samples={n} is more than this server's --max_batch="
                                   f"{max_batch}")
        elif array.ndim >= 1 and array.shape[0] > max_batch:
            raise ServingError(f"input '{name}' has batch size {array.shape[0]}, more than this "
                               f"server's --max_batch={max_batch}")
        if name == "label" and servable.num_classes and array.size:
            bad = array[(array < 0) | (array >= servable.num_classes)]
            if bad.size:
                raise ServingError(f"label {int(bad[0])} is out of range: this model has "
                                   f"{servable.num_classes} classes (0..{servable.num_classes - 1})")


def _json_ready(array: np.ndarray) -> np.ndarray:
    """float32/16 values as the float64 nearest their 9-significant-digit decimal.

    Nine digits round-trip any float32 exactly, and the short decimal makes
    JSON encoding about twice as fast as printing the float64's 17 digits.
    """
    if array.dtype not in (np.float32, np.float16):
        return array
    x = array.astype(np.float64)
    finite = np.isfinite(x) & (x != 0)
    exponent = np.floor(np.log10(np.abs(np.where(finite, x, 1.0))))
    decimals = (8 - exponent).astype(np.int64)
    # Divide by an exact power of ten (not multiply by a negative one) so the
    # result is the double nearest the decimal, which prints shortest.
    up = np.where(decimals >= 0, 10.0 ** np.abs(decimals), 1.0)
    down = np.where(decimals < 0, 10.0 ** np.abs(decimals), 1.0)
    rounded = np.rint(x * up / down) * down / up
    return np.where(finite, rounded, x)


def encode_predict_response(outputs: dict, row_format: bool) -> dict:
    names = sorted(outputs)
    outputs = {n: _json_ready(outputs[n]) for n in names}
    if row_format:
        batch = {len(outputs[n]) for n in names}
        if len(batch) != 1:
            raise ServingError("Outputs have different batch sizes; use the columnar format", 500)
        if len(names) == 1:
            return {"predictions": outputs[names[0]].tolist()}
        columns = {n: outputs[n].tolist() for n in names}
        return {"predictions": [{n: columns[n][i] for n in names} for i in range(batch.pop())]}
    if len(names) == 1:
        return {"outputs": outputs[names[0]].tolist()}
    return {"outputs": {n: outputs[n].tolist() for n in names}}


# --- the WSGI app --------------------------------------------------------------


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
        if not _VERSION_DIR.match(parts[1]):
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
            signature_name, arrays, row_format = decode_predict_request(
                request.get_data(cache=False), servable)
            check_limits(arrays, servable, max_batch)
            outputs = servable.run(signature_name, arrays)
            return _json(encode_predict_response(outputs, row_format))
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
    check_limits(inputs, servable, max_batch)
    if conditional:
        inputs["label"] = inputs["label"].astype(np.int32)
    outputs = servable.run("sample", inputs)
    grid = gan_images.make_grid(outputs["images"],
                                rows=rows if rows is None else min(rows, n))
    response = Response(gan_images.encode_png(grid), mimetype="image/png")
    response.headers["X-Model-Version"] = str(servable.version)
    return response


# --- running it ----------------------------------------------------------------


class ServerThread:
    """Runs an app on a real waitress server in a background thread.

    Used by tests and the load test; port 0 picks a free port (see .port).
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, threads: int = 4):
        import waitress

        self.server = waitress.create_server(app, host=host, port=port, threads=threads)
        self.host = host
        self.port = self.server.effective_port
        self._thread = threading.Thread(target=self.server.run, name="waitress", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "ServerThread":
        self._thread.start()
        return self

    def stop(self) -> None:
        # Closing every dispatcher empties the asyncore map, which ends run().
        # It must happen in the loop's own thread (closing sockets under a
        # running select() races), which is what the trigger's thunks are for.
        def close_all():
            for dispatcher in list(self.server._map.values()):
                dispatcher.close()

        if self._thread.is_alive():
            self.server.trigger.pull_trigger(close_all)
            self._thread.join(timeout=10)
        else:
            close_all()
        self.server.task_dispatcher.shutdown()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


FLAGS = flags.FLAGS


@functools.cache
def define_flags() -> None:
    """Defines this entry point's flags (once).

    Done on demand rather than at import: modules imported together (the
    pipeline, tests) would otherwise clash on shared names like
    --model_base_path.
    """
    flags.DEFINE_string("model_base_path", None,
                        "Directory holding integer version subdirectories (SavedModels).")
    flags.DEFINE_string("model_name", "generator", "Name in the /v1/models/<name> URLs.")
    flags.DEFINE_string("host", "127.0.0.1", "Interface to listen on (0.0.0.0 for all).")
    flags.DEFINE_integer("port", 8501, "HTTP port (TF Serving's REST default).")
    flags.DEFINE_integer("max_batch", 256, "Largest batch / num_samples one request may ask for.")
    flags.DEFINE_float("poll_seconds", 2.0, "How often to look for new versions (0: never).")
    flags.DEFINE_integer("threads", 4, "Request worker threads.")


def main(argv):
    if len(argv) > 1:
        raise absl_app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS.model_base_path:
        raise absl_app.UsageError("--model_base_path is required")
    logging.getLogger().setLevel(logging.INFO)
    import waitress

    flask_app = create_app(FLAGS.model_base_path, FLAGS.model_name, FLAGS.max_batch,
                           FLAGS.poll_seconds)
    logger.info("Serving %s from %s on http://%s:%d/v1/models/%s", FLAGS.model_name,
                FLAGS.model_base_path, FLAGS.host, FLAGS.port, FLAGS.model_name)
    try:
        waitress.serve(flask_app, host=FLAGS.host, port=FLAGS.port, threads=FLAGS.threads)
    finally:
        flask_app.config["REGISTRY"].stop()


def console_main():
    define_flags()
    absl_app.run(main)


if __name__ == "__main__":
    console_main()
