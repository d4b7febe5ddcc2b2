"""REST ``POST /v1/models/<name>[/versions/<v> | /labels/<l>]:predict``, answered before Flask.

:predict is the endpoint a batching server answers thousands of times a second, and on one core
its throughput is bounded by the CPU each request costs outside the model
(docs/serving.md#batching). Flask's request machinery (request context, URL map, before and
after hooks, Response objects) was a large share of that, so :predict skips it: it decodes,
runs and encodes with the same functions the gRPC service uses, and records the same
Prometheus series and JSON errors as the Flask app's handlers. Every other request, including
any other method on a :predict path (Flask answers 405), goes to Flask.

`PredictEndpoint` holds those steps once; two fronts use them:

- `PredictRoute`, WSGI middleware around the Flask app (its test client, any WSGI server);
- `PredictEndpoint.answer_async`, the event-loop server's (gan_keras.serving.rest_server):
  a request waits for its merged model call without holding a thread, and is decoded and
  encoded on the loop unless its body is large (then on a worker thread).
"""

import asyncio
import logging
import time

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wsgi import get_input_stream

from gan_keras.client.model import RequestError
from gan_keras.serving import codec
from gan_keras.serving.codec import ServingError
from gan_keras.serving.prometheus import status_for_http
from gan_keras.serving.responses import json_bytes

logger = logging.getLogger(__name__)

PREFIX = "/v1/models/"
SUFFIX = ":predict"

# Request bodies up to this size are decoded (and their answers encoded) on the event loop:
# 1 to 16 latent vectors, the requests that come by the thousand. A larger body (images to
# transform, hundreds of rows) would hold the loop for milliseconds, so it goes to a worker.
LOOP_BODY_BYTES = 16 * 1024


def status_line(status: int) -> str:
    """As werkzeug's Response writes it (e.g. '413 REQUEST ENTITY TOO LARGE')."""
    return f"{status} {HTTP_STATUS_CODES.get(status, 'UNKNOWN').upper()}"


class PredictEndpoint:
    """The steps of one REST :predict, for both fronts.

    `parse_path` is the Flask app's reading of '<name>[/versions/<v>][/metadata][:verb]'
    (ServingError for a malformed one), `run_predict` its model call (batched or not,
    provenance stamped) and `run_predict_async` the same awaited on an event loop, `metrics`
    its ServingMetrics.
    """

    def __init__(
        self,
        *,
        models,
        max_batch,
        max_content_length,
        run_predict,
        run_predict_async,
        metrics,
        parse_path,
    ):
        self.models = models
        self.max_batch = max_batch
        self.max_content_length = max_content_length
        self.run_predict = run_predict
        self.run_predict_async = run_predict_async
        self.metrics = metrics
        self.parse_path = parse_path

    @staticmethod
    def handles(method: str, path: str) -> bool:
        return method == "POST" and path.startswith(PREFIX) and path.endswith(SUFFIX)

    def model_of(self, path: str):
        """(name, version, label) the path addresses; ServingError if it addresses none."""
        name, version, label, metadata, _ = self.parse_path(path[len(PREFIX) :])
        if metadata:
            raise ServingError(f"Malformed request: {path}", 404)
        return name, version, label

    def answer(self, path: str, read_body) -> tuple[int, bytes]:
        """(status, JSON body) of :predict on `path`, the body read by `read_body()` once the
        model is known; runs on the calling thread."""
        start, name, signature_name = time.perf_counter(), None, ""
        try:
            name, version, label = self.model_of(path)
            with self.models.lease(name, version, label) as servable:
                signature_name, arrays, row_format = codec.decode_predict_request(
                    read_body(), servable
                )
                codec.check_limits(arrays, servable, self.max_batch, signature_name)
                outputs = self.run_predict(servable, name, signature_name, arrays)
                data = codec.predict_response_json(outputs, row_format)
                status = 200
        except Exception as e:
            status, data = self._error(e, path)
        self._observe(start, name, signature_name, status)
        return status, data

    async def answer_async(self, path: str, receive_body, executor) -> tuple[int, bytes]:
        """`answer` on an event loop. `await receive_body(limit)` reads the body (at most
        `limit` bytes, else RequestEntityTooLarge); `executor` runs what would block the
        loop."""
        start, name, signature_name = time.perf_counter(), None, ""
        try:
            name, version, label = self.model_of(path)
            with self.models.lease(name, version, label) as servable:
                body = await receive_body(self.max_content_length)
                # A large body's decoding and its answer's encoding would hold the loop.
                on_worker = len(body) > LOOP_BODY_BYTES
                loop = asyncio.get_running_loop()
                if on_worker:
                    signature_name, arrays, row_format = await loop.run_in_executor(
                        executor, codec.decode_predict_request, body, servable
                    )
                else:
                    signature_name, arrays, row_format = codec.decode_predict_request(
                        body, servable
                    )
                codec.check_limits(arrays, servable, self.max_batch, signature_name)
                outputs = await self.run_predict_async(
                    servable, name, signature_name, arrays, executor
                )
                if on_worker:
                    data = await loop.run_in_executor(
                        executor, codec.predict_response_json, outputs, row_format
                    )
                else:
                    data = codec.predict_response_json(outputs, row_format)
                status = 200
        except Exception as e:
            status, data = self._error(e, path)
        self._observe(start, name, signature_name, status)
        return status, data

    @staticmethod
    def _error(e: Exception, path: str) -> tuple[int, bytes]:
        """The Flask app's status and JSON body for what :predict raised."""
        if isinstance(e, ServingError):
            return e.status, json_bytes({"error": e.message})
        if isinstance(e, RequestError):
            return 400, json_bytes({"error": str(e)})
        if isinstance(e, RequestEntityTooLarge):
            return 413, json_bytes({"error": "Request body too large"})
        logger.error("Exception on %s [POST]", path, exc_info=e)
        return 500, json_bytes({"error": "Internal server error"})

    def _observe(self, start: float, name, signature_name: str, status: int) -> None:
        self.metrics.observe(
            "REST",
            "predict",
            signature_name,
            status_for_http(status),
            time.perf_counter() - start,
            # Only served names label the metrics: a client cannot add label values.
            model_name=name if name in self.models.names() else None,
        )


class PredictRoute:
    """WSGI middleware: answers POST :predict with `endpoint`, hands everything else to
    `flask_wsgi`."""

    def __init__(self, flask_wsgi, endpoint: PredictEndpoint):
        self.flask_wsgi = flask_wsgi
        self.endpoint = endpoint

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not self.endpoint.handles(environ.get("REQUEST_METHOD", ""), path):
            return self.flask_wsgi(environ, start_response)

        def read_body():
            limit = self.endpoint.max_content_length
            return get_input_stream(environ, max_content_length=limit).read()

        status, data = self.endpoint.answer(path, read_body)
        start_response(
            status_line(status),
            [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
        )
        return [data]
