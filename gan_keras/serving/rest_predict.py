"""REST ``POST /v1/models/<name>[/versions/<v> | /labels/<l>]:predict`` as a bare WSGI handler
in front of the Flask app.

:predict is the endpoint a batching server answers thousands of times a second, and on one core
its throughput is bounded by the CPU each request costs outside the model
(docs/serving.md#batching). Flask's request machinery (request context, URL map, before and
after hooks, Response objects) was a large share of that, so :predict skips it: this handler
decodes, runs and encodes with the same functions the gRPC service uses, and records the same
Prometheus series and JSON errors as the Flask app's handlers. Every other request, including
any other method on a :predict path (Flask answers 405), goes to Flask.
"""

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


def _status_line(status: int) -> str:
    """As werkzeug's Response writes it (e.g. '413 REQUEST ENTITY TOO LARGE')."""
    return f"{status} {HTTP_STATUS_CODES.get(status, 'UNKNOWN').upper()}"


def _error_body(message: str) -> bytes:
    """The Flask app's error body."""
    return json_bytes({"error": message})


class PredictRoute:
    """WSGI middleware: answers POST :predict itself, hands everything else to `flask_wsgi`.

    `parse_path` is the Flask app's reading of '<name>[/versions/<v>][/metadata][:verb]'
    (ServingError for a malformed one), `run_predict` its model call (batched or not, provenance
    stamped), `metrics` its ServingMetrics.
    """

    def __init__(
        self, flask_wsgi, *, models, max_batch, max_content_length, run_predict, metrics, parse_path
    ):
        self.flask_wsgi = flask_wsgi
        self.models = models
        self.max_batch = max_batch
        self.max_content_length = max_content_length
        self.run_predict = run_predict
        self.metrics = metrics
        self.parse_path = parse_path

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if (
            environ.get("REQUEST_METHOD") != "POST"
            or not path.startswith(PREFIX)
            or not path.endswith(SUFFIX)
        ):
            return self.flask_wsgi(environ, start_response)
        start = time.perf_counter()
        name, signature_name = None, ""
        try:
            name, version, label, metadata, _ = self.parse_path(path[len(PREFIX) :])
            if metadata:
                raise ServingError(f"Malformed request: {path}", 404)
            with self.models.lease(name, version, label) as servable:
                stream = get_input_stream(environ, max_content_length=self.max_content_length)
                body = stream.read()
                signature_name, arrays, row_format = codec.decode_predict_request(body, servable)
                codec.check_limits(arrays, servable, self.max_batch, signature_name)
                outputs = self.run_predict(servable, name, signature_name, arrays)
                status, data = 200, codec.predict_response_json(outputs, row_format)
        except ServingError as e:
            status, data = e.status, _error_body(e.message)
        except RequestError as e:
            status, data = 400, _error_body(str(e))
        except RequestEntityTooLarge:
            status, data = 413, _error_body("Request body too large")
        except Exception:
            logger.exception("Exception on %s [POST]", path)
            status, data = 500, _error_body("Internal server error")
        self.metrics.observe(
            "REST",
            "predict",
            signature_name,
            status_for_http(status),
            time.perf_counter() - start,
            # Only served names label the metrics: a client cannot add label values.
            model_name=name if name in self.models.names() else None,
        )
        start_response(
            _status_line(status),
            [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
        )
        return [data]
