"""Property-based fuzzing (hypothesis) of the :predict request codec: any body is a 400, or OK.

Guarded: `codec.decode_predict_request` and `codec.check_limits`, the whole path from a REST
:predict body to the arrays a model runs on (gan_keras.serving.app calls exactly these two).
Whatever a client sends, decoding either succeeds, giving arrays of the signature's dtypes and
shapes (finite floats, at most max_batch rows), or raises `codec.ServingError` with status
400, which the app answers as ``{"error": ...}``. Any other exception is a bug: the app would
answer it as a 500 and log a traceback.

Why properties on top of test_serve_fuzz.py: that file replays a fixed list of mutations of
known-good requests; here hypothesis generates from the JSON grammar and from the real
signatures (read from an exported tiny model, conditional and not), and shrinks a failure to
a minimal body. The bodies: any JSON value (hypothesis.strategies.recursive) as the body or
in place of a request's parts; requests shaped like the signatures with wrong dtypes, ragged
lists, huge/negative/float seeds and counts, {"b64": ...} values (the codec takes numbers
only), unknown keys, empty instances, duplicate keys, NaN/Infinity and over-long integer
literals, nesting deeper than numpy's 64 dimensions and than Python's recursion limit; and
arbitrary bytes. A last test sends such bodies through the real app on a real HTTP server:
the status is never 5xx.

Runs are derandomized (the same examples on every run) and keep no example database.
"""

import base64
import collections
import json
import math

import helpers
import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gan_keras.serving import app as serving_app
from gan_keras.serving import codec, versions

LATENT = 8
CLASSES = 3
# Small, so that batches over the limit are easy to generate.
MAX_BATCH = 4
URL = "/v1/models/generator:predict"

SETTINGS = dict(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """Model base paths of two tiny exports (read-only after this)."""
    return helpers.export_tiny_generators(
        tmp_path_factory.mktemp("codec_properties"), latent_dim=LATENT, num_classes=CLASSES
    )


@pytest.fixture(scope="module")
def servables(bases):
    """The loaded versions the codec reads signatures from (immutable `versions.Servable`s)."""
    return {name: versions.Servable(1, bases / name / "1") for name in ("uncond", "cond")}


# --- a JSON writer that can also emit what json.dumps cannot -------------------------------


class Raw:
    """JSON text inserted as is: deep nesting, over-long integer literals."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self):
        return f"Raw({self.text[:60]!r}{'...' if len(self.text) > 60 else ''})"


class Pairs:
    """An object that may name a key twice."""

    def __init__(self, pairs: list):
        self.pairs = pairs

    def __repr__(self):
        return f"Pairs({self.pairs!r})"


def dump(x) -> str:
    if isinstance(x, Raw):
        return x.text
    if isinstance(x, Pairs):
        return "{" + ",".join(f"{json.dumps(k)}:{dump(v)}" for k, v in x.pairs) + "}"
    if isinstance(x, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dump(v)}" for k, v in x.items()) + "}"
    if isinstance(x, list | tuple):
        return "[" + ",".join(dump(v) for v in x) + "]"
    return json.dumps(x)  # NaN and Infinity for non-finite floats, as the parser reads them


# --- strategies -----------------------------------------------------------------------------

BOUNDARY_INTS = [
    0,
    1,
    -1,
    CLASSES,
    MAX_BATCH,
    MAX_BATCH + 1,
    codec.MAX_PROJECT_STEPS + 1,
    2**31 - 1,
    2**31,
    -(2**31) - 1,
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63) - 1,
    2**64,
    10**40,
]
HUGE_LITERALS = ["1e999", "-1e999", "1e-999", "1" + "0" * 4299, "1" + "0" * 4300, "-" + "9" * 5000]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=10)
)
# Any JSON value (NaN and Infinity included: Python's parser reads them).
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
b64_values = st.builds(
    lambda text: {"b64": text},
    st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode()) | st.text(max_size=12),
)
deep_nesting = st.builds(
    lambda depth, inner: Raw("[" * depth + inner + "]" * depth),
    st.sampled_from([2, 63, 64, 65, 500, 2000, 100_000]),
    st.sampled_from(["0", "1.5", "", '"x"', "{}"]),
)


bad_scalars = (
    st.none()
    | st.booleans()
    | st.text(max_size=6)
    | b64_values
    | st.just([])
    | st.just({})
    | st.sampled_from(HUGE_LITERALS).map(Raw)
)


def good_elements(spec):
    """Values a signature input's elements may well have."""
    if spec.dtype.is_floating:
        return st.floats(-3, 3, width=32) | st.integers(-3, 3)
    if spec.dtype.is_unsigned:
        return st.integers(0, spec.dtype.max)
    if spec.name in ("label", "label_a", "label_b"):
        return st.integers(0, CLASSES - 1)
    if spec.name in ("num_samples", "steps"):
        return st.integers(1, MAX_BATCH)
    if spec.name == "direction":
        return st.just(0)
    return st.integers(-5, 5)  # seeds


def elements(spec):
    """Elements for `spec`: some plausible, some of the right kind but extreme (negative,
    out of range, huge, float seeds, NaN and infinities), some junk."""
    extreme = (
        st.sampled_from(BOUNDARY_INTS)
        | st.integers()
        | st.sampled_from([math.nan, math.inf, -math.inf, 3.4e38, 1e300, -1e300, 0.5, -0.0])
        | st.floats()
    )
    return good_elements(spec) | extreme | bad_scalars


@st.composite
def nested(draw, shape: list, leaves, ragged: bool = False):
    """A nested list of `shape`; `ragged`: some list one too short or long."""
    if not shape:
        return draw(leaves)
    size = shape[0]
    if ragged and draw(st.booleans()):
        size = draw(st.sampled_from([max(size - 1, 0), size + 1]))
    return [draw(nested(shape[1:], leaves, ragged)) for _ in range(size)]


@st.composite
def value_for(draw, spec, shape: list, faulty: bool = False):
    """A value for a signature input: of `shape` (None: any size) with plausible elements, or
    (`faulty`) wrong in one way."""
    shape = [d if d is not None else draw(st.integers(0, MAX_BATCH + 2)) for d in shape]
    if not faulty:
        return draw(nested(shape, good_elements(spec)))
    fault = draw(
        st.sampled_from(["one_element", "one_element", "ragged", "ragged", "elements", "rank"])
        | st.sampled_from(["json", "b64", "deep"])
    )
    if fault == "one_element":  # one extreme or junk value among plausible ones
        value = draw(nested(shape, good_elements(spec)))
        odd = draw(elements(spec))
        if not shape:
            return odd
        where = value
        for _ in range(len(shape) - 1):
            if not where:
                return value
            where = where[draw(st.integers(0, len(where) - 1))]
        if where:
            where[draw(st.integers(0, len(where) - 1))] = odd
        return value
    if fault == "elements":  # any mix of plausible, extreme and junk values
        return draw(nested(shape, elements(spec)))
    if fault == "ragged":
        return draw(nested(shape, good_elements(spec), ragged=True))
    if fault == "rank":  # a scalar as a list, a matrix as a scalar, one more dimension
        other = draw(st.sampled_from([[], [1], [2, 2], [*shape, 1], shape[1:]]))
        return draw(nested(other, good_elements(spec)))
    if fault == "json":
        return draw(json_values)
    if fault == "b64":
        return draw(b64_values | st.lists(b64_values, max_size=3))
    return draw(deep_nesting)


# What a generated request gets wrong: nothing, one thing, or several things at once.
FAULTS = [
    "none",
    "none",
    "none",
    "batch",
    "value",
    "value",
    "value",
    "signature",
    "missing_input",
    "unknown_input",
    "unknown_key",
    "duplicate_key",
    "layout",
    "encoding",
    "several",
]


@st.composite
def predict_bodies(draw, servable) -> bytes:
    """A :predict body shaped like one of `servable`'s signatures: in the row or columnar
    format, and right, or wrong in one or several ways (FAULTS)."""
    fault = draw(st.sampled_from(FAULTS))

    def faulty(kind: str) -> bool:
        return fault == kind or (fault == "several" and draw(st.booleans()))

    signature = draw(st.sampled_from(sorted(servable.input_specs)))
    specs = servable.input_specs[signature]
    request = {"signature_name": signature}
    if faulty("signature"):
        wrong = draw(st.just(None) | st.text(max_size=8) | json_values)
        if wrong is None:
            del request["signature_name"]  # serving_default; the inputs may be another's
        else:
            request["signature_name"] = wrong
    names = sorted(specs)
    if faulty("missing_input"):
        names = draw(st.sampled_from([names[:-1], names[1:]]))
    extra = {}
    if faulty("unknown_input"):
        extra = draw(st.dictionaries(st.text(max_size=6), json_values, min_size=1, max_size=2))
    bad_input = draw(st.sampled_from(names)) if names and faulty("value") else None
    batch = draw(st.integers(1, MAX_BATCH))
    if faulty("batch"):  # none, or more than the server's max_batch
        batch = draw(st.sampled_from([0, MAX_BATCH + 1, MAX_BATCH + 2]))
    # The row format cannot carry scalar inputs; a bare value serves one-input signatures.
    layouts = ["columns"]
    if all(spec.shape.rank for spec in specs.values()):
        layouts.append("rows")
    if len(specs) == 1:
        layouts.append("bare")
    layout = draw(st.sampled_from(layouts))
    if faulty("layout"):
        layout = draw(st.sampled_from(["rows", "bare", "both", "neither"]))

    def value(name, shape):
        return draw(value_for(specs[name], shape, faulty=name == bad_input))

    def batched(shape):
        return [batch, *shape[1:]] if shape else []

    if layout in ("columns", "both", "neither"):
        columns = {n: value(n, batched(specs[n].shape.as_list())) for n in names}
        request["inputs"] = {**columns, **extra}
    if layout in ("rows", "both"):
        request["instances"] = [
            {**{n: value(n, specs[n].shape.as_list()[1:]) for n in names}, **extra}
            for _ in range(batch)
        ]
    if layout == "bare":
        name = sorted(specs)[0]
        where = draw(st.sampled_from(["inputs", "instances"]))
        request[where] = value(name, batched(specs[name].shape.as_list()))
    if layout == "neither":
        del request["inputs"]
    if faulty("unknown_key"):
        request.update(draw(st.dictionaries(st.text(max_size=10), json_values, max_size=2)))
    if request and faulty("duplicate_key"):
        key = draw(st.sampled_from(sorted(request)))
        body = dump(Pairs([*request.items(), (key, draw(json_values))])).encode()
    else:
        body = dump(request).encode()
    if faulty("encoding"):
        body = draw(bad_encodings(body))
    return body


def bad_encodings(body: bytes):
    """`body` re-encoded (UTF-16 and -32 are read too), cut short, or with a byte changed."""
    return st.sampled_from(["utf-16", "utf-32-le", "cut", "byte"]).flatmap(
        lambda how: _encoded(body, how)
    )


def _encoded(body: bytes, how: str):
    if how == "cut":
        return st.integers(0, max(len(body) - 1, 0)).map(lambda i: body[:i])
    if how == "byte":
        return st.tuples(st.integers(0, max(len(body) - 1, 0)), st.binary(max_size=2)).map(
            lambda t: body[: t[0]] + t[1] + body[t[0] + 1 :]
        )
    return st.just(body.decode("ascii").encode(how))


# --- the property ---------------------------------------------------------------------------


def decode(body: bytes, servable) -> str:
    """What the app does with a :predict body before running the model. Returns "ok" or the
    400's message; any exception but a 400 ServingError propagates (the test fails)."""
    try:
        signature_name, arrays, _ = codec.decode_predict_request(body, servable)
        codec.check_limits(arrays, servable, MAX_BATCH, signature_name)
    except codec.ServingError as e:
        assert e.status == 400, f"status {e.status} ({e.message}) for a client's body"
        assert isinstance(e.message, str) and e.message
        return e.message
    specs = servable.input_specs[signature_name]
    assert set(arrays) == set(specs)
    for name, array in arrays.items():
        spec = specs[name]
        assert array.dtype == spec.dtype.as_numpy_dtype, (name, array.dtype, spec)
        assert spec.shape.is_compatible_with(array.shape), (name, array.shape, spec)
        if spec.dtype.is_floating:
            assert np.isfinite(array).all(), (name, array)
        if array.ndim >= 1:
            assert array.shape[0] <= MAX_BATCH, (name, array.shape)
    return "ok"


def _outcome(result: str) -> str:
    """A label for counting outcomes: "ok", or the error message's first three words."""
    return result if result == "ok" else " ".join(result.split()[:3])


@settings(max_examples=150, **SETTINGS)
@given(data=st.data(), model=st.sampled_from(["uncond", "cond"]), value=json_values)
def test_any_json_value_decodes_or_is_a_400(servables, data, model, value):
    """Any JSON value, as the body or as a request's inputs/instances (whole or by name)."""
    servable = servables[model]
    signature = data.draw(st.sampled_from(sorted(servable.input_specs)))
    names = sorted(servable.input_specs[signature])
    body = data.draw(
        st.sampled_from(
            [
                value,
                {"instances": value},
                {"inputs": value},
                {"signature_name": signature, "inputs": value},
                {"signature_name": signature, "inputs": {n: value for n in names}},
                {"signature_name": signature, "instances": [{n: value for n in names}]},
                {"signature_name": signature, "instances": [value, value]},
            ]
        )
    )
    body = dump(body).encode()
    if data.draw(st.booleans()):
        body = data.draw(bad_encodings(body))
    result = decode(body, servable)
    event(_outcome(result))


@settings(max_examples=100, **SETTINGS)
@given(model=st.sampled_from(["uncond", "cond"]), body=st.binary(max_size=64))
def test_any_bytes_decode_or_are_a_400(servables, model, body):
    decode(body, servables[model])


@settings(max_examples=60, **SETTINGS)
@given(
    model=st.sampled_from(["uncond", "cond"]),
    depth=st.sampled_from([63, 64, 65, 999, 1000, 1001, 5000, 100_000]) | st.integers(1, 3000),
    opener=st.sampled_from(["[", '{"z":', '[{"z":']),
    inner=st.sampled_from(["0", "1.5", "", "null", '"x"']),
    balanced=st.booleans(),
    where=st.sampled_from(["{}", '{{"instances":{}}}', '{{"inputs":{{"z":{}}}}}', "[{}]"]),
)
def test_deeply_nested_bodies_decode_or_are_a_400(
    servables, model, depth, opener, inner, balanced, where
):
    """Nesting deeper than numpy's 64 dimensions and than Python's recursion limit."""
    closer = {"[": "]", '{"z":': "}", '[{"z":': "}]"}[opener]
    value = opener * depth + inner + (closer * depth if balanced else "")
    decode(where.format(value).encode(), servables[model])


def test_signature_shaped_requests_decode_or_are_a_400(servables):
    """Requests shaped like the real signatures, wrong in one or several ways or not at all.

    The examples must include decodable requests and several kinds of 400, or the strategy
    no longer reaches deep into the codec and the property proves little."""
    outcomes = collections.Counter()

    @settings(max_examples=300, **SETTINGS)
    @given(data=st.data(), model=st.sampled_from(["uncond", "cond"]))
    def prop(data, model):
        servable = servables[model]
        body = data.draw(predict_bodies(servable))
        result = decode(body, servable)
        outcomes[_outcome(result)] += 1
        event(_outcome(result))

    prop()
    print(f"outcomes: {dict(outcomes.most_common())}")
    assert outcomes["ok"] >= 10, outcomes
    assert len(outcomes) >= 15, outcomes


def test_http_status_is_never_5xx(bases):
    """The same bodies through a fresh app on the real REST server: 200 or a JSON 400,
    never a 5xx, and the server's own metrics count no internal error."""
    app = serving_app.create_app(bases / "cond", "generator", max_batch=MAX_BATCH, poll_seconds=0)
    servable = app.config["REGISTRY"].current()
    statuses = collections.Counter()
    try:
        with helpers.RestServerThread(app, threads=2) as server, requests.Session() as session:
            # Mostly signature-shaped bodies (a quarter any JSON), so that some reach the model.
            bodies = predict_bodies(servable)
            any_json = json_values.map(lambda v: dump(v).encode())

            @settings(max_examples=50, **SETTINGS)
            @given(body=st.one_of(bodies, bodies, bodies, any_json))
            def prop(body):
                r = session.post(
                    server.url + URL,
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=60,
                )
                statuses[r.status_code] += 1
                assert r.status_code in (200, 400), f"{r.status_code}: {r.text[:300]}"
                if r.status_code == 400:
                    assert r.headers["Content-Type"].startswith("application/json")
                    assert r.json()["error"]

            prop()
            metrics = session.get(server.url + serving_app.METRICS_PATH, timeout=60).text
    finally:
        app.config["REGISTRY"].stop()
    print(f"statuses: {dict(statuses)}")
    assert statuses[200] and statuses[400], statuses
    assert 'status="INTERNAL"' not in metrics and 'status="UNKNOWN"' not in metrics
