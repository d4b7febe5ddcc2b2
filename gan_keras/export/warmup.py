"""TensorFlow Serving's warm-up file: ``assets.extra/tf_serving_warmup_requests``.

A TFRecord file of ``tensorflow.serving.PredictionLog`` protos, each holding a
``PredictLog`` whose ``PredictRequest`` names a signature and its input tensors.
``tensorflow_model_server`` replays them when it loads a version, before the
version is AVAILABLE, so the first real request does not pay for kernel
initialisation; gan_keras.serving.versions does the same.

The messages come from the ``tensorflow-serving-api`` package when it is
importable. It is an optional install (its wheel declares a dependency on the
full ``tensorflow`` wheel, which must not replace ``tensorflow-cpu``), and an
export must still carry the file without it. The four wrapper messages involved
are tiny and their wire format is frozen (protobuf never renumbers a released
field), so without the package they are written and read by the few lines of
``_wire_*`` below; the tensors are TensorFlow's own ``TensorProto`` either way.
tests/gan_keras/serving/test_grpc_serving.py checks both paths give the same bytes.
"""

import logging
import pathlib
import tempfile

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2

logger = logging.getLogger(__name__)

# TF Serving reads at most this many records from the file.
MAX_WARMUP_RECORDS = 1000
# serving_default batch sizes replayed at load: one image, and the batch clients commonly ask for.
WARMUP_BATCH_SIZES = (1, 16)

# Field numbers from tensorflow_serving/apis/{prediction_log,predict,model}.proto.
_PREDICTION_LOG_PREDICT_LOG = 6
_PREDICT_LOG_REQUEST = 1
_PREDICT_REQUEST_MODEL_SPEC = 1
_PREDICT_REQUEST_INPUTS = 2
_MODEL_SPEC_NAME = 1
_MODEL_SPEC_SIGNATURE_NAME = 3
_MAP_KEY, _MAP_VALUE = 1, 2
_LENGTH_DELIMITED = 2


def _protos():
    """tensorflow_serving.apis.prediction_log_pb2, or None without tensorflow-serving-api."""
    try:
        from tensorflow_serving.apis import prediction_log_pb2
    except ImportError:
        return None
    return prediction_log_pb2


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _wire_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | _LENGTH_DELIMITED) + _varint(len(payload)) + payload


def _wire_encode(signature_name: str, tensors: dict[str, bytes], model_name: str) -> bytes:
    """PredictionLog{predict_log{request{model_spec, inputs}}} as protobuf serialises it
    deterministically: fields in number order, map entries sorted by key, empty strings out."""
    spec = b""
    if model_name:
        spec += _wire_field(_MODEL_SPEC_NAME, model_name.encode())
    if signature_name:
        spec += _wire_field(_MODEL_SPEC_SIGNATURE_NAME, signature_name.encode())
    request = _wire_field(_PREDICT_REQUEST_MODEL_SPEC, spec)
    for name in sorted(tensors):
        entry = _wire_field(_MAP_KEY, name.encode()) + _wire_field(_MAP_VALUE, tensors[name])
        request += _wire_field(_PREDICT_REQUEST_INPUTS, entry)
    return _wire_field(_PREDICTION_LOG_PREDICT_LOG, _wire_field(_PREDICT_LOG_REQUEST, request))


def _wire_fields(data: bytes) -> list[tuple[int, bytes | None]]:
    """(field number, payload) of each field; payload None for non length-delimited ones."""
    fields, i = [], 0

    def varint():
        nonlocal i
        value = shift = 0
        while True:
            if i >= len(data):
                raise ValueError("truncated protobuf message")
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while i < len(data):
        key = varint()
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            varint()
            fields.append((number, None))
        elif wire_type in (1, 5):
            i += 8 if wire_type == 1 else 4
            fields.append((number, None))
        elif wire_type == _LENGTH_DELIMITED:
            size = varint()
            if i + size > len(data):
                raise ValueError("truncated protobuf message")
            fields.append((number, data[i : i + size]))
            i += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
    return fields


def _wire_decode(record: bytes) -> tuple[str, dict[str, bytes]] | None:
    logs = [p for n, p in _wire_fields(record) if n == _PREDICTION_LOG_PREDICT_LOG]
    if not logs:
        return None
    requests = [p for n, p in _wire_fields(logs[-1]) if n == _PREDICT_LOG_REQUEST]
    signature_name, tensors = "", {}
    for number, payload in _wire_fields(requests[-1] if requests else b""):
        if number == _PREDICT_REQUEST_MODEL_SPEC:
            for n, p in _wire_fields(payload):
                if n == _MODEL_SPEC_SIGNATURE_NAME:
                    signature_name = p.decode()
        elif number == _PREDICT_REQUEST_INPUTS:
            entry = dict(_wire_fields(payload))
            tensors[(entry.get(_MAP_KEY) or b"").decode()] = entry.get(_MAP_VALUE) or b""
    return signature_name, tensors


def encode_predict_log(
    signature_name: str, inputs: dict[str, np.ndarray], model_name: str = ""
) -> bytes:
    """One warm-up record: a serialised PredictionLog holding this PredictRequest."""
    tensors = {name: tf.make_tensor_proto(value) for name, value in inputs.items()}
    protos = _protos()
    if protos is None:
        return _wire_encode(
            signature_name, {k: v.SerializeToString() for k, v in tensors.items()}, model_name
        )
    log = protos.PredictionLog()
    request = log.predict_log.request
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    for name, tensor in tensors.items():
        request.inputs[name].CopyFrom(tensor)
    return log.SerializeToString(deterministic=True)


def decode_predict_log(record: bytes) -> tuple[str, dict[str, np.ndarray]] | None:
    """(signature name, inputs) of a PredictionLog record; None if it holds no PredictLog
    (TF Serving also replays classify/regress logs, which these models have no use for)."""
    protos = _protos()
    if protos is None:
        decoded = _wire_decode(record)
        if decoded is None:
            return None
        signature_name, raw = decoded
        tensors = {k: tensor_pb2.TensorProto.FromString(v) for k, v in raw.items()}
    else:
        log = protos.PredictionLog.FromString(record)
        if log.WhichOneof("log_type") != "predict_log":
            return None
        request = log.predict_log.request
        signature_name, tensors = request.model_spec.signature_name, dict(request.inputs)
    return signature_name or "serving_default", {
        name: tf.make_ndarray(tensor) for name, tensor in tensors.items()
    }


def write_warmup_file(path, requests: list[tuple[str, dict[str, np.ndarray]]]) -> None:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature_name, inputs in requests:
            writer.write(encode_predict_log(signature_name, inputs))


def warmup_file_bytes(requests: list[tuple[str, dict[str, np.ndarray]]]) -> bytes:
    """The file's contents (for writers that take bytes, as export_layout.write_version)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp, "warmup.tfrecord")
        write_warmup_file(path, requests)
        return path.read_bytes()


def read_warmup_requests(path) -> list[tuple[str, dict[str, np.ndarray]]]:
    """The predict requests in a warm-up file, at most MAX_WARMUP_RECORDS of them."""
    requests = []
    for record in tf.data.TFRecordDataset(str(path)).take(MAX_WARMUP_RECORDS):
        decoded = decode_predict_log(record.numpy())
        if decoded is not None:
            requests.append(decoded)
    return requests


def generator_warmup_requests(
    latent_dim: int, num_classes: int, signatures
) -> list[tuple[str, dict[str, np.ndarray]]]:
    """The requests an exported generator's warm-up file holds: serving_default at
    WARMUP_BATCH_SIZES (zero latents) and sample (16 images), plus their PNG signatures
    when the export has them."""
    requests = []
    for batch in WARMUP_BATCH_SIZES:
        inputs = {"z": np.zeros([batch, latent_dim], np.float32)}
        if num_classes:
            inputs["label"] = np.zeros([batch], np.int32)
        requests.append(("serving_default", inputs))
        if "serving_default_png" in signatures and batch > 1:
            requests.append(("serving_default_png", inputs))
    sample = {"num_samples": np.int32(max(WARMUP_BATCH_SIZES)), "seed": np.int64(0)}
    if num_classes:
        sample["label"] = np.zeros([0], np.int32)
    requests.append(("sample", sample))
    if "sample_png" in signatures:
        requests.append(("sample_png", sample))
    return requests
