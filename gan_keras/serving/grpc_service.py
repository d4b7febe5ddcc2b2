"""TensorFlow Serving's gRPC API over the same model versions as the REST app.

    tensorflow.serving.PredictionService/Predict           any signature, TensorProto in and out
    tensorflow.serving.PredictionService/GetModelMetadata  metadata_field "signature_def"
    tensorflow.serving.ModelService/GetModelStatus         the versions and their states

Messages and service stubs are the `tensorflow-serving-api` package's, so a
client written for tensorflow_model_server (``PredictionServiceStub(channel)``)
works unchanged; Classify, Regress, MultiInference and HandleReloadConfigRequest
answer UNIMPLEMENTED (the servicer base classes' default), as these models have
only predict signatures and the models come from ``--model_base_path`` or a
``--model_config_file`` that is re-read by polling.

Requests go through the same checks as REST ones (gan_keras.serving.codec for
the signature lookup and the inputs, ServedModels for the model name, version
and version label), with one difference TF Serving has too: a TensorProto carries its
dtype, which must be the signature's exactly (REST converts JSON numbers).
Request errors answer INVALID_ARGUMENT (HTTP 400 in REST) or NOT_FOUND (404), a full
batching queue UNAVAILABLE (503); only a server bug is INTERNAL, and it is logged.
Predict shares the REST app's model call (``run_predict``), so with --enable_batching
requests of both APIs merge in one batcher, and the PNGs of the ``*_png`` signatures carry
their provenance over gRPC as over REST.

Importing this module needs tensorflow-serving-api (``pip install --no-deps
tensorflow-serving-api``: its wheel declares a dependency on the full
``tensorflow`` wheel, which must not replace tensorflow-cpu).
"""

import logging
import time
from concurrent import futures

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from gan_keras.serving import codec
from gan_keras.serving.codec import ServingError

logger = logging.getLogger(__name__)

# ServingError's HTTP status -> the gRPC code TF Serving answers for the same error.
GRPC_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
SIGNATURE_DEF_FIELD = "signature_def"
# Most elements a request tensor may claim when its signature leaves the sizes open (e.g.
# project's images): 64 Mi, 64 MB as uint8. A TensorProto may hold one value and a shape (TF
# repeats the value), so the shape is checked before an array of that size is allocated.
MAX_OPEN_TENSOR_ELEMENTS = 2**26


def _requested(model_spec) -> tuple[str, int | None, str | None]:
    """(model name, version or None, version label or None) of a ModelSpec."""
    choice = model_spec.WhichOneof("version_choice")
    version = model_spec.version.value if choice == "version" else None
    label = model_spec.version_label if choice == "version_label" else None
    return model_spec.name, version, label


class _Calls:
    """Runs one RPC: error mapping to gRPC codes, and the request metrics."""

    def __init__(self, metrics):
        self.metrics = metrics

    def run(self, api: str, context, handler, model_name: str | None = None):
        start = time.perf_counter()
        labels = {"signature_name": ""}  # the handler names the signature once it knows it
        status = grpc.StatusCode.OK
        try:
            return handler(labels)
        except ServingError as e:
            status = GRPC_CODES.get(e.status, grpc.StatusCode.INTERNAL)
            message = e.message
        except Exception:
            logger.exception("gRPC %s failed", api)
            status, message = grpc.StatusCode.INTERNAL, "Internal server error"
        finally:
            self.metrics.observe(
                "gRPC",
                api,
                labels["signature_name"],
                status.name,
                time.perf_counter() - start,
                model_name=model_name,
            )
        context.abort(status, message)


def _metrics_name(registry, name: str) -> str | None:
    """The model_name label of a request: only served names label the metrics."""
    return name if name in registry.names() else None


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, registry, max_batch: int, metrics, run_predict):
        """`registry`: a ServedModels; `run_predict(servable, model name, signature, inputs)`
        the REST app's model call (its batcher, and the stamping of PNG outputs)."""
        self.registry = registry
        self.max_batch = max_batch
        self.metrics = metrics
        self.calls = _Calls(metrics)
        self.run_predict = run_predict

    def Predict(self, request, context):  # noqa: N802 (the proto's method name)
        spec = request.model_spec

        def handle(labels):
            with self.registry.lease(*_requested(spec)) as servable:
                return self._predict(request, servable, labels)

        return self.calls.run("predict", context, handle, _metrics_name(self.registry, spec.name))

    def _predict(self, request, servable, labels):
        spec = request.model_spec
        signature_name = spec.signature_name or "serving_default"
        specs = codec.signature_inputs(servable, signature_name)
        labels["signature_name"] = signature_name
        codec.check_input_names(request.inputs, specs, signature_name, "inputs")
        arrays = {
            name: self._to_array(name, tensor, specs[name])
            for name, tensor in request.inputs.items()
        }
        codec.check_limits(arrays, servable, self.max_batch, signature_name)
        outputs = self.run_predict(servable, spec.name, signature_name, arrays)
        if request.output_filter:
            unknown = sorted(set(request.output_filter) - set(outputs))
            if unknown:
                raise ServingError(
                    f"output_filter names {unknown}, which signature '{signature_name}' "
                    f"does not have (outputs: {sorted(outputs)})"
                )
            outputs = {name: outputs[name] for name in request.output_filter}
        response = predict_pb2.PredictResponse()
        response.model_spec.name = spec.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = signature_name
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response

    def _to_array(self, name: str, tensor, spec: tf.TensorSpec):
        what = f"input '{name}'"
        if tensor.dtype != spec.dtype.as_datatype_enum:
            try:
                given = tf.dtypes.as_dtype(tensor.dtype).name
            except TypeError:  # not a dtype TensorFlow knows
                given = f"dtype {tensor.dtype}"
            raise ServingError(
                f"{what}: expects {spec.dtype.name}, but a tensor of {given} was given"
            )
        shape = [d.size for d in tensor.tensor_shape.dim]
        expected = spec.shape
        if any(d < 0 for d in shape) or not expected.is_compatible_with(shape):
            wanted = [-1 if d is None else d for d in expected] if expected.rank is not None else []
            raise ServingError(f"{what}: expected shape {wanted} (-1: any size), got {shape}")
        if shape and shape[0] > self.max_batch:
            raise ServingError(
                f"{what} has batch size {shape[0]}, more than this server's "
                f"--max_batch={self.max_batch}"
            )
        known = expected.rank is not None and all(d is not None for d in expected[1:])
        limit = (
            self.max_batch * int(np.prod(expected[1:].as_list()))
            if known
            else MAX_OPEN_TENSOR_ELEMENTS
        )
        if int(np.prod(shape, dtype=np.float64)) > max(limit, 1):
            raise ServingError(f"{what}: shape {shape} holds more values than a request may")
        try:
            array = tf.make_ndarray(tensor)
        except Exception as e:  # malformed TensorProto: a client's fault
            raise ServingError(f"{what}: not a valid tensor ({e})") from None
        return codec.check_tensor(array, spec, what)

    def GetModelMetadata(self, request, context):  # noqa: N802
        def handle(labels):
            fields = set(request.metadata_field)
            if not fields:
                raise ServingError(
                    "GetModelMetadataRequest must specify at least one metadata_field"
                )
            if fields != {SIGNATURE_DEF_FIELD}:
                raise ServingError(
                    f"Metadata field {sorted(fields - {SIGNATURE_DEF_FIELD})} is not supported "
                    f"(only {SIGNATURE_DEF_FIELD!r})"
                )
            spec = request.model_spec
            servable = self.registry.resolve(*_requested(spec))
            signatures = get_model_metadata_pb2.SignatureDefMap()
            for name, signature_def in servable.signature_def_protos.items():
                signatures.signature_def[name].CopyFrom(signature_def)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = spec.name
            response.model_spec.version.value = servable.version
            response.metadata[SIGNATURE_DEF_FIELD].Pack(signatures)
            return response

        return self.calls.run(
            "metadata", context, handle, _metrics_name(self.registry, request.model_spec.name)
        )


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, registry, metrics):
        self.registry = registry
        self.calls = _Calls(metrics)

    def GetModelStatus(self, request, context):  # noqa: N802
        def handle(labels):
            response = get_model_status_pb2.GetModelStatusResponse()
            for entry in self.registry.status(*_requested(request.model_spec)):
                status = response.model_version_status.add()
                status.version = int(entry["version"])
                status.state = get_model_status_pb2.ModelVersionStatus.State.Value(entry["state"])
                status.status.error_code = error_codes_pb2.Code.Value(entry["status"]["error_code"])
                status.status.error_message = entry["status"]["error_message"]
            return response

        return self.calls.run(
            "status", context, handle, _metrics_name(self.registry, request.model_spec.name)
        )


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def start_server(
    registry,
    metrics,
    *,
    host: str,
    port: int,
    max_batch: int,
    max_workers: int,
    run_predict,
) -> tuple[grpc.Server, int]:
    """Starts serving on host:port (0: a free port); returns (server, the bound port).

    `registry` is a ServedModels (a ModelVersions is served as its only model);
    `run_predict` the REST app's model call (app.config["RUN_PREDICT"]), so both APIs share
    one batcher and the stamping of the PNGs :predict answers with (required: a server of
    its own model call would answer them without their provenance)."""
    from gan_keras.serving.models import ServedModels
    from gan_keras.serving.versions import ModelVersions

    if isinstance(registry, ModelVersions):
        registry = ServedModels.single(registry)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc")
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(registry, max_batch, metrics, run_predict), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelServicer(registry, metrics), server
    )
    bound = server.add_insecure_port(_address(host, port))
    if not bound:  # older grpcio returns 0 instead of raising
        raise RuntimeError(f"Could not bind the gRPC port {_address(host, port)}")
    server.start()
    return server, bound
