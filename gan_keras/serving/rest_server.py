"""The REST API's HTTP server: one event loop in front of the Flask app.

What: uvicorn, on uvloop with httptools' C parser, runs `RestApp`, an ASGI app. POST
``:predict`` is answered by the Flask app's `PredictEndpoint` on the loop itself: a request
is parsed, decoded, queued for its merged model call (gan_keras.serving.batching) and
encoded without a thread of its own, and a batch's thread wakes the loop once for all of its
requests. Everything else (status, metadata, the image endpoints, the playground,
Prometheus) is the Flask app's, run on worker threads by a2wsgi.

Why: with batching on, a 1-image :predict's cost outside the model is what bounds
throughput on a server core (docs/serving.md#batching). Under waitress, a thread-per-request
WSGI server written in Python, each request crossed three threads (the socket loop, a worker,
the batch thread and back) and its HTTP parsing ran in Python. Measured on the emoji model, 32
clients, batching on, server on one core, old and new interleaved over 5 cycles: 1.30× the
throughput, server CPU 0.9-1.2 -> 0.6-1.0 ms per request. A first try that kept the worker
thread for :predict behind uvicorn saved 0.1 ms of the 0.9 (one run): the thread hand-offs,
not the parsing, were most of it.

`--rest_api_num_threads` sizes the worker pool: Flask's requests, the model calls that do not
merge (batching off, or an unbatchable signature) and the decoding and encoding of large
:predict bodies. A request waiting in a batch queue holds no thread.
"""

import logging
import socket

import uvicorn
from a2wsgi import WSGIMiddleware
from werkzeug.exceptions import RequestEntityTooLarge

from gan_keras.serving.codec import ServingError

logger = logging.getLogger(__name__)

_JSON = (b"content-type", b"application/json")
GRACEFUL_SHUTDOWN_SECONDS = 10


class RestApp:
    """ASGI: POST :predict by the Flask app's PredictEndpoint, all else by the Flask app."""

    def __init__(self, flask_app, threads: int):
        self.endpoint = flask_app.config["PREDICT_ENDPOINT"]
        self.flask = WSGIMiddleware(flask_app, workers=threads)
        # One pool for Flask's requests and :predict's blocking work.
        self.executor = self.flask.executor

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.endpoint.handles(scope["method"], scope["path"]):
            return await self.flask(scope, receive, send)
        content_length = None
        for key, value in scope["headers"]:
            if key == b"content-length":
                # httptools answers a malformed one 400 before this runs.
                content_length = int(value) if value.isdigit() else None

        async def receive_body(limit: int) -> bytes:
            if content_length is not None and content_length > limit:
                raise RequestEntityTooLarge()
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ServingError("The client closed the connection", 400)
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise RequestEntityTooLarge()
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)

        status, data = await self.endpoint.answer_async(scope["path"], receive_body, self.executor)
        headers = [_JSON, (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    def close(self) -> None:
        self.executor.shutdown(wait=True)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (0: a free port, read back with getsockname)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    return socket.create_server((host, port), family=family, backlog=2048)


def make_server(app: RestApp, *, keep_alive_seconds: float = 30.0) -> uvicorn.Server:
    """A uvicorn server for `app` (run it with ``.run(sockets=[bind(...)])``; ``should_exit``
    ends it, after the requests in flight). Logging is left to the process."""
    config = uvicorn.Config(
        app,
        http="httptools",
        loop="uvloop",
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        # Idle keep-alive connections are closed after this long.
        timeout_keep_alive=keep_alive_seconds,
        # On SIGINT/SIGTERM, requests in flight get this long to finish.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return uvicorn.Server(config)
