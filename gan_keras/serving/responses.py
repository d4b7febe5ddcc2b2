"""The REST API's response bodies: compact JSON, and images tagged with the model version."""

import json

from flask import Response

from gan_keras.serving.versions import Servable


def json_bytes(obj) -> bytes:
    """Compact JSON text, newline-terminated: every JSON body the REST API answers."""
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode()


def json_response(obj, status: int = 200) -> Response:
    return Response(json_bytes(obj), status=status, mimetype="application/json")


def image_response(data: bytes, mimetype: str, servable: Servable) -> Response:
    response = Response(data, mimetype=mimetype)
    response.headers["X-Model-Version"] = str(servable.version)
    return response
