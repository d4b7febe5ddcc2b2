"""TensorFlow Serving's REST formats: predict requests, responses and errors.

Requests come in the row format (``{"instances": [...]}``) or the columnar one
(``{"inputs": ...}``), as TF Serving documents them; responses mirror the
request (``predictions`` / ``outputs``). Every error is a `ServingError`
carrying its HTTP status; the app answers it as ``{"error": "..."}``.

Request checks need only what a loaded model declares (`versions.Servable`:
``signatures``, ``input_specs``, ``num_classes``).
"""

import base64
import json
import sys

import numpy as np
import orjson
import tensorflow as tf


class ServingError(Exception):
    """A request error carrying its HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


def _shorten(text: str, limit: int = 80) -> str:
    """Client-sent text to quote in an error message, cut to a readable length."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _unique_keys(pairs: list) -> dict:
    """json's object_pairs_hook: an object naming a key twice is ambiguous, so rejected."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise ServingError(
                    f"JSON Parse error: duplicate key {_shorten(key)!r} in an object"
                )
            seen.add(key)
    return obj


def parse_json(body: bytes):
    """A request body as JSON; anything that is not (within Python's limits) -> ServingError 400.

    Besides syntax errors and bad encodings, this answers 400 for nesting deeper than the
    parser's recursion limit and for integer literals longer than Python converts
    (sys.get_int_max_str_digits()); NaN and Infinity are parsed, and rejected later where
    values must be finite.
    """
    if not body or body.isspace():
        raise ServingError("JSON Parse error: the request body is empty")
    try:
        return json.loads(body, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as e:
        raise ServingError(f"JSON Parse error: {e}") from None
    except UnicodeDecodeError as e:
        encoding = e.encoding.upper()  # json.loads also reads UTF-16 and UTF-32 bodies
        raise ServingError(f"JSON Parse error: the body is not valid {encoding} ({e})") from None
    except RecursionError:
        raise ServingError("JSON Parse error: the body is nested too deeply") from None
    except ValueError as e:  # not a JSONDecodeError: int() refused an over-long literal
        if "integer string conversion" not in str(e):
            raise
        raise ServingError(
            "JSON Parse error: an integer literal has more than "
            f"{sys.get_int_max_str_digits()} digits"
        ) from None


def _has_bool(value) -> bool:
    """Whether a rectangular nested list holds a JSON true/false (numpy reads them as 1/0)."""
    return any(type(x) is bool for x in np.asarray(value, dtype=object).flat)


def to_array(value, spec: tf.TensorSpec, what: str, may_hold_bools: bool = True) -> np.ndarray:
    """A JSON value as an array for `spec`; anything else -> ServingError 400.

    `may_hold_bools=False` (the body has no true/false) skips looking for booleans
    among numbers.
    """
    dtype = spec.dtype.as_numpy_dtype
    try:
        raw = np.asarray(value)
    except ValueError as e:  # ragged nested lists, or more than numpy's 64 dimensions
        raise ServingError(f"{what}: not a rectangular array ({e})") from None
    except RecursionError:
        raise ServingError(f"{what}: nested too deeply to be an array") from None
    if raw.size == 0:
        raw = raw.astype(dtype)
    if raw.dtype == object:
        # Numbers alone make an object array only when an integer fits no numpy type.
        if not all(type(x) in (int, float) for x in raw.flat):
            raise ServingError(f"{what}: not a rectangular array of numbers")
        if not spec.dtype.is_floating:
            raise ServingError(f"{what}: value out of range for {spec.dtype.name}")
        try:
            raw = raw.astype(np.float64)
        except OverflowError:  # an integer beyond float64
            raise ServingError(f"{what}: value out of range for {spec.dtype.name}") from None
    if raw.dtype.kind in "iuf" and may_hold_bools and _has_bool(value):
        raise ServingError(f"{what}: expected numbers for {spec.dtype.name}, got true/false")
    if spec.dtype.is_floating:
        if raw.dtype.kind not in "iuf":
            raise ServingError(f"{what}: expected numbers for {spec.dtype.name}, got {raw.dtype}")
    elif spec.dtype.is_integer:
        if raw.dtype.kind not in "iu":
            raise ServingError(
                f"{what}: expected integers for {spec.dtype.name}, got values of type {raw.dtype}"
            )
        info = np.iinfo(dtype)
        if raw.size and (raw.min() < info.min or raw.max() > info.max):
            raise ServingError(f"{what}: value out of range for {spec.dtype.name}")
    else:
        raise ServingError(f"{what}: inputs of type {spec.dtype.name} are not supported")
    with np.errstate(over="ignore"):  # beyond float32: inf, rejected next
        array = raw.astype(dtype)
    if spec.dtype.is_floating and not np.all(np.isfinite(array)):
        raise ServingError(f"{what}: values must be finite and within {spec.dtype.name}'s range")
    return check_shape(array, spec, what)


def signature_inputs(servable, signature_name: str) -> dict:
    """{input name: TensorSpec} of a signature; an unknown name -> ServingError 400.

    The one signature lookup for REST and gRPC requests (an empty name means
    serving_default, as in TF Serving's gRPC API).
    """
    signature_name = signature_name or "serving_default"
    if signature_name not in servable.signatures:
        raise ServingError(
            f'Serving signature name: "{_shorten(signature_name)}" not found in signature '
            f"def (available: {sorted(servable.signatures)})"
        )
    return servable.input_specs[signature_name]


def check_input_names(given, specs: dict, signature_name: str, what: str) -> None:
    """The inputs named in a request must be exactly the signature's."""
    if set(given) != set(specs):
        raise ServingError(
            f"{what} has keys {_shorten(str(sorted(given)))}; signature "
            f"'{signature_name}' expects {sorted(specs)}"
        )


def check_shape(array: np.ndarray, spec: tf.TensorSpec, what: str) -> np.ndarray:
    """`array` if its shape fits the signature's (REST and gRPC give the same 400)."""
    if not spec.shape.is_compatible_with(array.shape):
        expected = [d if d is not None else -1 for d in spec.shape.as_list()]
        raise ServingError(
            f"{what}: expected shape {expected} (-1: any size), got {list(array.shape)}"
        )
    return array


def check_tensor(array: np.ndarray, spec: tf.TensorSpec, what: str) -> np.ndarray:
    """A typed tensor (gRPC's TensorProto) for `spec`: its dtype must be the spec's exactly,
    as TF Serving requires, and its shape compatible; values as `to_array` checks them."""
    if array.dtype != spec.dtype.as_numpy_dtype:
        raise ServingError(
            f"{what}: expects {spec.dtype.name}, but a tensor of "
            f"{tf.as_dtype(array.dtype).name if array.dtype != object else 'string'} was given"
        )
    if spec.dtype.is_floating and not np.all(np.isfinite(array)):
        raise ServingError(f"{what}: values must be finite")
    return check_shape(array, spec, what)


def decode_predict_request(body: bytes, servable) -> tuple[str, dict, bool]:
    """Parses a TF Serving predict request: (signature name, inputs, row format?)."""
    payload = parse_json(body)
    if not isinstance(payload, dict):
        raise ServingError(
            "JSON Value is not an object: a predict request is "
            '{"instances": [...]} or {"inputs": ...}'
        )
    signature_name = payload.get("signature_name", "serving_default")
    if not isinstance(signature_name, str):
        raise ServingError("'signature_name' must be a string")
    # An empty name means the default signature, as in TF Serving; returned resolved, so the
    # model call and the limits look up the signature that was checked.
    signature_name = signature_name or "serving_default"
    specs = signature_inputs(servable, signature_name)
    has_instances, has_inputs = "instances" in payload, "inputs" in payload
    if has_instances == has_inputs:
        raise ServingError(
            "Missing 'inputs' or 'instances' key"
            if not has_instances
            else "Request may contain 'instances' or 'inputs', not both"
        )
    unknown = set(payload) - {"signature_name", "instances", "inputs"}
    if unknown:
        raise ServingError(f"Unknown request keys: {_shorten(str(sorted(unknown)))}")

    if has_instances:
        instances = payload["instances"]
        if not isinstance(instances, list) or not instances:
            raise ServingError("'instances' must be a non-empty list")
        if all(isinstance(x, dict) for x in instances):
            columns = {}
            for i, instance in enumerate(instances):
                if set(instance) != set(specs):
                    raise ServingError(
                        f"instances[{i}] has keys {_shorten(str(sorted(instance)))}; signature "
                        f"'{signature_name}' expects {sorted(specs)}"
                    )
                for name, value in instance.items():
                    columns.setdefault(name, []).append(value)
        elif any(isinstance(x, dict) for x in instances):
            raise ServingError("'instances' mixes objects and bare values")
        elif len(specs) == 1:
            columns = {next(iter(specs)): instances}
        else:
            raise ServingError(
                f"Signature '{signature_name}' has inputs {sorted(specs)}: each "
                "instance must be an object with these keys"
            )
        scalar = [n for n, s in specs.items() if s.shape.rank == 0]
        if scalar:
            raise ServingError(
                f"Signature '{signature_name}' has scalar inputs {scalar}: use "
                'the columnar format {"inputs": {...}}'
            )
    else:
        inputs = payload["inputs"]
        if isinstance(inputs, dict):  # a bare value is never an object
            columns = inputs
        elif len(specs) == 1:
            columns = {next(iter(specs)): inputs}
        else:
            raise ServingError(
                f"Signature '{signature_name}' has inputs {sorted(specs)}: "
                "'inputs' must be an object with these keys"
            )
        check_input_names(columns, specs, signature_name, "'inputs'")
    may_hold_bools = b"true" in body or b"false" in body
    arrays = {
        name: to_array(value, specs[name], f"input '{name}'", may_hold_bools)
        for name, value in columns.items()
    }
    return signature_name, arrays, has_instances


# A :transform body may hold twice its pixels' raw size (room for an uncompressed PNG) plus
# this much (multipart framing, PNG metadata); anything bigger is answered 413 unread.
TRANSFORM_BODY_SLACK = 1024 * 1024


def transform_body_limit(shapes: dict) -> int | None:
    """Most bytes a :transform request for inputs of these [H, W, C] shapes may send (None
    when a shape is unknown: the app-wide limit applies)."""
    if any(shape is None for shape in shapes.values()):
        return None
    return 2 * sum(int(np.prod(shape)) for shape in shapes.values()) + TRANSFORM_BODY_SLACK


# Most optimisation steps one `project` request may run (about 4 generator
# forward and backward passes per step: a few seconds at this many on a CPU).
MAX_PROJECT_STEPS = 2000


def check_limits(arrays: dict, servable, max_batch: int, signature_name: str | None = None) -> None:
    """Rejects requests bigger than the server allows, and labels out of range.

    `signature_name` adds the limits of the control signatures' ``steps``: an
    ``interpolate`` request returns ``steps`` images (at most max_batch), a
    ``project`` one runs ``steps`` optimisation steps (at most MAX_PROJECT_STEPS).
    """
    steps = arrays.get("steps")
    if signature_name == "interpolate" and steps is not None and steps.ndim == 0:
        if int(steps) > max_batch:
            raise ServingError(
                f"steps={int(steps)} is more than this server's --max_batch="
                f"{max_batch} (interpolate returns one image per step)"
            )
    if signature_name == "project" and steps is not None and steps.ndim == 0:
        if int(steps) > MAX_PROJECT_STEPS:
            raise ServingError(
                f"steps={int(steps)} is more than the {MAX_PROJECT_STEPS} "
                "projection steps this server runs per request"
            )
    for name, array in arrays.items():
        if name == "num_samples":
            n = int(array)
            if n < 1:
                raise ServingError(f"num_samples must be >= 1, got {n}")
            if n > max_batch:
                raise ServingError(
                    f"num_samples={n} is more than this server's --max_batch={max_batch}"
                )
        elif array.ndim >= 1 and array.shape[0] > max_batch:
            raise ServingError(
                f"input '{name}' has batch size {array.shape[0]}, more than this "
                f"server's --max_batch={max_batch}"
            )
        if name == "label" and servable.num_classes and array.size:
            bad = array[(array < 0) | (array >= servable.num_classes)]
            if bad.size:
                raise ServingError(
                    f"label {int(bad[0])} is out of range: this model has "
                    f"{servable.num_classes} classes (0..{servable.num_classes - 1})"
                )


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


def json_floats(array) -> list:
    """A float array as (nested) lists of the shortest decimals that round-trip float32."""
    return _json_ready(np.asarray(array)).tolist()


# TF Serving's REST convention: a string output whose name ends in this holds binary data
# (e.g. PNG images) and is answered as {"b64": "<base64>"} per value; other string outputs
# are answered as UTF-8 text.
BINARY_OUTPUT_SUFFIX = "_bytes"


def _b64(value: bytes) -> dict:
    return {"b64": base64.b64encode(value).decode("ascii")}


def _text(value) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _json_list(name: str, array: np.ndarray):
    """An output as (nested) JSON-ready lists."""
    if array.dtype.kind not in "OSU":
        return _json_ready(array).tolist()
    convert = _b64 if name.endswith(BINARY_OUTPUT_SUFFIX) else _text

    def walk(x):
        return [walk(v) for v in x] if isinstance(x, list) else convert(x)

    return walk(array.tolist())


def _predict_response(outputs: dict, row_format: bool, columns: dict) -> dict:
    """The response's structure, around `columns` (one JSON-ready value per output)."""
    names = sorted(outputs)
    if row_format:
        batch = {len(outputs[n]) for n in names}
        if len(batch) != 1:
            raise ServingError("Outputs have different batch sizes; use the columnar format", 500)
        if len(names) == 1:
            return {"predictions": columns[names[0]]}
        return {"predictions": [{n: columns[n][i] for n in names} for i in range(batch.pop())]}
    if len(names) == 1:
        return {"outputs": columns[names[0]]}
    return {"outputs": {n: columns[n] for n in names}}


def encode_predict_response(outputs: dict, row_format: bool) -> dict:
    """The response as Python lists and dicts (json.dumps writes it)."""
    columns = {n: _json_list(n, a) for n, a in outputs.items()}
    return _predict_response(outputs, row_format, columns)


def _orjson_ready(array: np.ndarray) -> bool:
    """orjson writes numeric arrays itself; it would write NaN and infinities as null, where
    TF Serving (and json.dumps) write NaN and Infinity, so those take the slow path."""
    if array.dtype.kind in "OSU":
        return True  # converted to lists first, as for json.dumps
    if array.dtype.kind not in "biuf":
        return False
    return array.dtype.kind != "f" or bool(np.isfinite(array).all())


def predict_response_json(outputs: dict, row_format: bool) -> bytes:
    """The response as JSON text: the answer to a :predict request.

    Written by orjson straight from the numpy arrays, without building a Python list per
    row: ~3 ms instead of ~30 ms for 16 28x28 images (both outputs), and none of the ~25,000
    short-lived lists whose churn set off the garbage collector's full passes, the source of
    the slowest requests (benchmarks/results/serving.md). Floats are the shortest decimals that
    round-trip their float32 values, as with `json_floats`; responses with NaN or infinities,
    which orjson cannot write as TF Serving does, go through json.dumps.
    """
    if all(_orjson_ready(a) for a in outputs.values()):
        columns = {
            n: _json_list(n, a) if a.dtype.kind in "OSU" else np.ascontiguousarray(a)
            for n, a in outputs.items()
        }
        return orjson.dumps(
            _predict_response(outputs, row_format, columns),
            option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE,
        )
    text = json.dumps(encode_predict_response(outputs, row_format), separators=(",", ":"))
    return (text + "\n").encode()
