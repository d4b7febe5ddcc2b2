"""Running the REST (uvicorn, gan_keras.serving.rest_server) and gRPC servers side by side on one
set of model versions."""

import logging
import os

from gan_keras.serving.app import create_app
from gan_keras.serving.batching_parameters import BatchingParameters
from gan_keras.serving.models import ServedModels

logger = logging.getLogger(__name__)


# Most gRPC threads the batching default asks for (the one setting measured beside 4).
BATCHING_DEFAULT_THREADS = 64


def default_rest_threads() -> int:
    """REST worker threads when the flags leave it to the server: TF Serving's default for
    --rest_api_num_threads, 4 per CPU this process may run on. A REST request waiting for its
    merged model call holds none (gan_keras.serving.rest_server)."""
    return 4 * len(os.sched_getaffinity(0))


def default_grpc_threads(batching: BatchingParameters | None = None) -> int:
    """gRPC threads when the flags leave it to the server.

    A gRPC request holds its thread while its batch forms, so with batching the threads bound
    how many requests one model call can merge: at least `max_batch_size` threads, up to 64.
    Measured (docs/serving.md, 32 clients of 1-image :predict, the server on one core): 4
    threads made 2-row calls, 64 made 11- to 15-row ones.
    """
    threads = default_rest_threads()
    if batching is not None:
        threads = max(threads, min(batching.max_batch_size, BATCHING_DEFAULT_THREADS))
    return threads


def run_server(
    model_base_path=None,
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
    batching: BatchingParameters | None = None,
    model_config_file=None,
    model_config_file_poll_wait_seconds: float = 0.0,
    allow_version_labels_for_unavailable_models: bool = False,
    stamper=None,
    trust_anchors: str | None = None,
) -> None:
    """Serves REST (gan_keras.serving.rest_server) and gRPC on one ServedModels until
    interrupted.

    The models are `model_base_path` as `model_name`, or those of `model_config_file`
    (TF Serving's ModelServerConfig; gan_keras.serving.models). `batching` merges
    concurrent :predict requests of both APIs (gan_keras.serving.batching). A port of 0
    binds a free one, which is logged; None leaves that API out. The REST server runs on
    this thread; the gRPC one (gan_keras.serving.grpc_service) on its own pool, and both
    stop, with the pollers and the batch threads, on the way out. `stamper`
    (gan_keras.provenance.stamp.Stamper) writes every image's provenance; None: unsigned.
    `trust_anchors` (PEM text) are the CAs :verify trusts.
    """
    from gan_keras.serving import rest_server

    if rest_api_port is None and grpc_port is None:
        raise ValueError("Nothing to serve: neither a REST nor a gRPC port")
    registry = None
    if model_config_file is not None:
        registry = ServedModels.from_config_file(
            model_config_file,
            file_system_poll_seconds=poll_seconds,
            config_poll_seconds=model_config_file_poll_wait_seconds,
            freeze_heap=True,
            allow_labels_for_unavailable=allow_version_labels_for_unavailable_models,
        )
    flask_app = create_app(
        model_base_path,
        model_name,
        max_batch,
        poll_seconds,
        registry=registry,
        freeze_heap=True,
        batching=batching,
        stamper=stamper,
        trust_anchors=trust_anchors,
    )
    registry = flask_app.config["REGISTRY"]
    names = ", ".join(registry.names())
    grpc_server = None
    rest_threads = rest_api_num_threads or default_rest_threads()
    rest_app = None
    try:
        if grpc_port is not None:
            from gan_keras.serving import grpc_service

            grpc_server, bound = grpc_service.start_server(
                registry,
                flask_app.config["METRICS"],
                host=host,
                port=grpc_port,
                max_batch=max_batch,
                max_workers=(
                    grpc_max_threads or rest_api_num_threads or default_grpc_threads(batching)
                ),
                run_predict=flask_app.config["RUN_PREDICT"],
            )
            # The bound port: --port=0 asks the OS for a free one, which clients then read here.
            logger.info("Serving %s over gRPC on %s:%s", names, host, bound)
        if rest_api_port is None:
            grpc_server.wait_for_termination()
            return
        sock = rest_server.bind(host, rest_api_port)
        rest_app = rest_server.RestApp(flask_app, rest_threads)
        # Idle connections are closed after this long.
        server = rest_server.make_server(
            rest_app, keep_alive_seconds=max(1.0, rest_api_timeout_in_ms / 1000)
        )
        logger.info(
            "Serving %s from %s on http://%s:%s/v1/models/%s",
            names,
            model_config_file or model_base_path,
            host,
            sock.getsockname()[1],
            registry.default_name,
        )
        server.run(sockets=[sock])
    finally:
        if rest_app is not None:
            rest_app.close()
        if grpc_server is not None:
            grpc_server.stop(grace=1).wait()
        if flask_app.config["BATCHER"] is not None:
            flask_app.config["BATCHER"].stop()
        registry.stop()
