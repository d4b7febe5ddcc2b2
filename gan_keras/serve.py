r"""Serves exported generators over TensorFlow Serving's gRPC and REST APIs.

    python -m gan_keras.serve --model_base_path=<workdir>/export/generator \
        --model_name=generator --port=8500 --rest_api_port=8501     # or: gan-serve ...

    python -m gan_keras.serve --model_config_file=models.config --enable_batching \
        --batching_parameters_file=batching.config --model_config_file_poll_wait_seconds=10

The flags are tensorflow_model_server's (same names, meanings and defaults,
except where docs/serving.md says otherwise), so a command line or
a client written for TF Serving works unchanged. Serves the highest integer
version under ``--model_base_path`` (or the models, version policies and labels
of ``--model_config_file``) and picks up new versions every
``--file_system_poll_wait_seconds`` without a restart. The endpoints, the
request formats and the version policy are described in gan_keras.serving.

Every PNG and GIF the server answers with (REST, and :predict's PNGs over gRPC) carries its
provenance (docs/provenance.md): C2PA content credentials signed with ``--c2pa_key`` and
``--c2pa_cert``, or without them the unsigned metadata, which the server logs once at start.
POST :verify trusts the CAs of ``--c2pa_trust_anchors``.
"""

import logging
import pathlib

from absl import app, flags

from gan_keras.provenance import flags as provenance_flags
from gan_keras.serving import model_config, server
from gan_keras.serving.batching_parameters import (
    BatchingConfigError,
    BatchingParameters,
    read_batching_parameters_file,
)
from gan_keras.storage import filesystem

_PORT = flags.DEFINE_integer(
    "port",
    8500,
    "gRPC port (TF Serving's --port). 0 binds a free port, logged as 'over gRPC on host:port' "
    "(tensorflow_model_server: 0 disables gRPC).",
)
_REST_API_PORT = flags.DEFINE_integer(
    "rest_api_port",
    8501,
    "HTTP/REST port (TF Serving's --rest_api_port; its Docker image's 8501). 0 binds a free "
    "port, logged as 'on http://host:port' (tensorflow_model_server: 0 disables REST).",
)
_MODEL_NAME = flags.DEFINE_string(
    "model_name", "generator", "Name of the model, in /v1/models/<name> and gRPC's model_spec."
)
_MODEL_BASE_PATH = flags.DEFINE_string(
    "model_base_path", None, "Directory holding integer version subdirectories (SavedModels)."
)
_POLL_SECONDS = flags.DEFINE_float(
    "file_system_poll_wait_seconds",
    1.0,
    "Seconds between looks for new versions under --model_base_path (0: look once, at start).",
)
_REST_API_NUM_THREADS = flags.DEFINE_integer(
    "rest_api_num_threads",
    0,
    "Worker threads of the REST server (0: 4 per CPU, as tensorflow_model_server sets it): "
    "they run the non-:predict endpoints and the model calls that do not merge; a :predict "
    "waiting for its merged call holds none.",
)
_REST_API_TIMEOUT_IN_MS = flags.DEFINE_integer(
    "rest_api_timeout_in_ms",
    30_000,
    "REST connections idle for this long are closed (at least 1 s).",
)
_GRPC_MAX_THREADS = flags.DEFINE_integer(
    "grpc_max_threads",
    0,
    "Threads answering gRPC requests (0: --rest_api_num_threads if set, else 4 per CPU; with "
    "--enable_batching at least max_batch_size, up to 64, as a request holds its thread while "
    "its batch forms).",
)
_INTRA_OP = flags.DEFINE_integer(
    "tensorflow_intra_op_parallelism",
    0,
    "Threads one TensorFlow op may use (0: TensorFlow's choice, one per core).",
)
_INTER_OP = flags.DEFINE_integer(
    "tensorflow_inter_op_parallelism",
    0,
    "Threads running independent TensorFlow ops at once (0: TensorFlow's choice).",
)
_HOST = flags.DEFINE_string(
    "host",
    "127.0.0.1",
    "Interface both APIs listen on (tensorflow_model_server listens on all: use 0.0.0.0).",
)
_MAX_BATCH = flags.DEFINE_integer(
    "max_batch", 256, "Largest batch / num_samples one request may ask for."
)
_ENABLE_BATCHING = flags.DEFINE_bool(
    "enable_batching",
    False,
    "Merge concurrent :predict requests (REST and gRPC) to the same model version and "
    "signature into one model call (TF Serving's flag; gan_keras.serving.batching).",
)
_BATCHING_PARAMETERS_FILE = flags.DEFINE_string(
    "batching_parameters_file",
    None,
    "With --enable_batching: a text-format BatchingParameters proto (max_batch_size, "
    "batch_timeout_micros, max_enqueued_batches, num_batch_threads, allowed_batch_sizes); "
    "unset: TF Serving's defaults.",
)
_MODEL_CONFIG_FILE = flags.DEFINE_string(
    "model_config_file",
    None,
    "A text-format ModelServerConfig: several models, version policies and labels "
    "(--model_name and --model_base_path are then ignored, as in TF Serving).",
)
_MODEL_CONFIG_FILE_POLL = flags.DEFINE_float(
    "model_config_file_poll_wait_seconds",
    0.0,
    "Seconds between re-reads of --model_config_file (0: read once, at start). A file that "
    "is refused leaves the running config in place, with a ModelConfigError in the log.",
)
_ALLOW_UNAVAILABLE_LABELS = flags.DEFINE_bool(
    "allow_version_labels_for_unavailable_models",
    False,
    "Let a new version label point at a version that is not loaded (moving an existing "
    "label still needs its new version loaded), as in TF Serving.",
)


_TRUST_ANCHORS = flags.DEFINE_string(
    "c2pa_trust_anchors",
    None,
    "PEM file of the CA certificates POST :verify trusts: an image signed by a certificate "
    "chaining to one reports 'Trusted' (without it, a good signature is 'Valid' at best), "
    "as gan-verify --trust_anchors does.",
)


def _trust_anchors() -> str | None:
    """--c2pa_trust_anchors' PEM text, checked to hold certificates (a usage error if not)."""
    path = _TRUST_ANCHORS.value
    if path is None:
        return None
    try:
        text = pathlib.Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise app.UsageError(f"--c2pa_trust_anchors: cannot read {path!r}: {e}") from None
    try:
        from cryptography import x509

        x509.load_pem_x509_certificates(text.encode())
    except ImportError:
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise app.UsageError(
                f"--c2pa_trust_anchors: {path!r} holds no PEM certificate"
            ) from None
    except ValueError as e:
        raise app.UsageError(
            f"--c2pa_trust_anchors: {path!r} is not a PEM file of certificates: {e}"
        ) from None
    return text


def _grpc_port() -> int | None:
    """--port, or None (REST only) when tensorflow-serving-api is missing and --port was not
    given; asking for gRPC explicitly without it is an error."""
    try:
        import tensorflow_serving.apis  # noqa: F401
    except ImportError:
        if flags.FLAGS["port"].present:
            raise app.UsageError(
                "--port serves gRPC, which needs tensorflow-serving-api: "
                "pip install --no-deps tensorflow-serving-api (see the README)"
            ) from None
        logging.warning("tensorflow-serving-api is not installed: serving REST only, no gRPC")
        return None
    return _PORT.value


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config_file = _MODEL_CONFIG_FILE.value
    if config_file:
        if _MODEL_BASE_PATH.value:
            logging.warning("--model_config_file is given: --model_base_path is ignored")
        try:
            model_config.read_model_config_file(config_file)  # refused here, before loading
        except model_config.ModelConfigError as e:
            raise app.UsageError(str(e)) from None
    elif not _MODEL_BASE_PATH.value:
        raise app.UsageError("--model_base_path (or --model_config_file) is required")
    else:
        try:
            # A local directory or gs://bucket/path; `gs:/x` must not be read as a local folder.
            filesystem.check(_MODEL_BASE_PATH.value, "--model_base_path")
        except filesystem.PathError as e:
            raise app.UsageError(str(e)) from None
    if _MODEL_CONFIG_FILE_POLL.value < 0:
        raise app.UsageError("--model_config_file_poll_wait_seconds must be >= 0")
    if _PORT.value and _PORT.value == _REST_API_PORT.value:
        raise app.UsageError("--port (gRPC) and --rest_api_port must differ")
    batching_parameters = None
    if _ENABLE_BATCHING.value:
        try:
            batching_parameters = (
                read_batching_parameters_file(_BATCHING_PARAMETERS_FILE.value)
                if _BATCHING_PARAMETERS_FILE.value
                else BatchingParameters()
            )
        except BatchingConfigError as e:
            raise app.UsageError(str(e)) from None
    elif _BATCHING_PARAMETERS_FILE.value:
        raise app.UsageError("--batching_parameters_file needs --enable_batching")
    stamper = provenance_flags.stamper_from_flags()  # before the models load: a bad key fails fast
    trust_anchors = _trust_anchors()
    logging.getLogger().setLevel(logging.INFO)
    # Before TensorFlow runs anything: the pools are sized once.
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(_INTRA_OP.value)
    tf.config.threading.set_inter_op_parallelism_threads(_INTER_OP.value)
    try:
        _serve(config_file, batching_parameters, stamper, trust_anchors)
    except model_config.ModelConfigError as e:  # e.g. a startup label on a version that failed
        logging.error("ModelConfigError: %s", e)
        raise SystemExit(1) from None


def _serve(config_file, batching_parameters, stamper=None, trust_anchors=None):
    server.run_server(
        _MODEL_BASE_PATH.value,
        _MODEL_NAME.value,
        host=_HOST.value,
        rest_api_port=_REST_API_PORT.value,
        grpc_port=_grpc_port(),
        max_batch=_MAX_BATCH.value,
        poll_seconds=_POLL_SECONDS.value,
        rest_api_num_threads=_REST_API_NUM_THREADS.value,
        rest_api_timeout_in_ms=_REST_API_TIMEOUT_IN_MS.value,
        grpc_max_threads=_GRPC_MAX_THREADS.value,
        batching=batching_parameters,
        model_config_file=config_file or None,
        model_config_file_poll_wait_seconds=_MODEL_CONFIG_FILE_POLL.value,
        allow_version_labels_for_unavailable_models=_ALLOW_UNAVAILABLE_LABELS.value,
        stamper=stamper,
        trust_anchors=trust_anchors,
    )


def console_main():
    app.run(main)


if __name__ == "__main__":
    console_main()
