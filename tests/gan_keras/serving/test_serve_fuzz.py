"""Fuzzing :predict with malformed JSON: every bad body is a 400 {"error"}, never a 5xx.

A seeded generator mutates valid requests (both formats, several signatures, conditional and
unconditional models): byte edits, type swaps, deep nesting, huge numbers, NaN/Infinity,
duplicate keys, ragged and oversized arrays, bad encodings. The bulk goes over loopback to real
REST servers (every few hundred bodies, the status endpoint must still answer); a thousand more
go through Flask's test client.
"""

import collections
import json
import logging
import random

import helpers
import pytest
import requests

from gan_keras.serving import app as serving_app
from gan_keras.serving import codec

# Thousands of requests against a real server.
pytestmark = pytest.mark.slow

LATENT = 8
CLASSES = 3
MAX_BATCH = 16
CLIENT_BODIES = 1000
LOOPBACK_BODIES = 2500
STATUS_EVERY = 250


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Base paths of an unconditional and a conditional export (read-only)."""
    return helpers.export_tiny_generators(
        tmp_path_factory.mktemp("fuzz"), latent_dim=LATENT, num_classes=CLASSES
    )


def _app(base):
    return serving_app.create_app(base, "generator", max_batch=MAX_BATCH, poll_seconds=0)


@pytest.fixture(scope="module")
def apps(exported):
    """Servers that only ever see client faults: their metrics must show no server error. A
    test that provokes 500s on purpose makes its own server (`_app`)."""
    made = {name: _app(exported / name) for name in ("uncond", "cond")}
    yield made
    for app in made.values():
        app.config["REGISTRY"].stop()


# --- a tiny JSON writer that can also emit what json.dumps cannot -------------------------


class Raw:
    """JSON text inserted as is (huge literals, deep nesting, NaN...)."""

    def __init__(self, text: str):
        self.text = text


class Pairs:
    """An object that may name a key twice."""

    def __init__(self, pairs: list):
        self.pairs = pairs


def dump(x) -> str:
    if isinstance(x, Raw):
        return x.text
    if isinstance(x, Pairs):
        return "{" + ",".join(f"{json.dumps(k)}:{dump(v)}" for k, v in x.pairs) + "}"
    if isinstance(x, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dump(v)}" for k, v in x.items()) + "}"
    if isinstance(x, list):
        return "[" + ",".join(dump(v) for v in x) + "]"
    return json.dumps(x)


# --- valid requests to start from ---------------------------------------------------------


def _z(rng: random.Random, n: int) -> list:
    return [[round(rng.gauss(0, 1), 4) for _ in range(LATENT)] for _ in range(n)]


def valid_requests(rng: random.Random) -> list[tuple[str, dict]]:
    z = _z(rng, 3)
    labels = [0, 2, 1]
    return [
        ("uncond", {"instances": z}),
        ("uncond", {"instances": [{"z": v} for v in z], "signature_name": "serving_default"}),
        ("uncond", {"inputs": z}),
        ("uncond", {"inputs": {"z": z}}),
        ("cond", {"instances": [{"z": v, "label": y} for v, y in zip(z, labels, strict=True)]}),
        ("cond", {"inputs": {"z": z, "label": labels}}),
        ("uncond", {"signature_name": "sample", "inputs": {"num_samples": 2, "seed": 3}}),
        (
            "cond",
            {"signature_name": "sample", "inputs": {"num_samples": 2, "seed": 3, "label": []}},
        ),
        (
            "uncond",
            {
                "signature_name": "truncated_sample",
                "inputs": {"num_samples": 2, "seed": 1, "truncation": 0.5},
            },
        ),
        (
            "uncond",
            {"signature_name": "interpolate", "inputs": {"seed_a": 1, "seed_b": 2, "steps": 3}},
        ),
        (
            "cond",
            {
                "signature_name": "interpolate",
                "inputs": {"seed_a": 1, "seed_b": 2, "steps": 3, "label_a": 0, "label_b": 1},
            },
        ),
        (
            "uncond",
            {"signature_name": "edit", "inputs": {"z": z, "direction": 0, "strength": 1.5}},
        ),
    ]


# --- bad pieces ---------------------------------------------------------------------------


def deep(rng: random.Random, balanced: bool = True) -> Raw:
    depth = rng.choice([65, 100, 500, 990, 1000, 3000, 100_000])
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}"), ('[{"z":', "}]")])
    inner = rng.choice(["0", "1.5", '"x"', "null", ""])
    return Raw(opener * depth + inner + (closer * depth if balanced else ""))


def huge_number(rng: random.Random) -> Raw:
    return Raw(
        rng.choice(
            [
                "1e999",
                "-1e999",
                "1e-999",
                "1E+400",
                "1" + "0" * rng.choice([19, 20, 30, 300, 4299, 4300, 5000, 10_000]),
                "-" + "9" * rng.choice([19, 40, 4301, 10_000]),
                str(2**63),
                str(2**64),
                str(-(2**63) - 1),
                str(2**31),
                "1e308",
                "1.7976931348623157e309",
                "0." + "0" * 400 + "1",
            ]
        )
    )


def bad_value(rng: random.Random):
    kind = rng.randrange(12)
    if kind == 0:
        return deep(rng, balanced=rng.random() < 0.8)
    if kind == 1:
        return huge_number(rng)
    if kind == 2:
        return Raw(rng.choice(["NaN", "Infinity", "-Infinity", "[NaN]", "[Infinity, 1]"]))
    if kind == 3:
        return rng.choice(["", "abc", "1.0", "\u00e9\ud83d\ude00", "\\", "\x00"])
    if kind == 4:
        return rng.choice([None, True, False, [True] * LATENT, [None] * LATENT])
    if kind == 5:
        return rng.choice([{}, {"z": 1}, {"a": [1]}, [{}], [{"z": [0.0] * LATENT}]])
    if kind == 6:  # ragged
        return rng.choice(
            [
                [[0.0] * LATENT, [0.0] * (LATENT - 1)],
                [0.0, [0.0]],
                [[0.0], [[0.0]]],
                [[0.0] * LATENT, "x"],
                [[], [0.0]],
            ]
        )
    if kind == 7:  # oversized
        n = rng.choice([MAX_BATCH + 1, 100, 2000])
        return [[0.0] * LATENT] * n if rng.random() < 0.5 else [0] * n
    if kind == 8:
        return rng.choice([[], [[]], [[[]]], 0, -1, 3.5, 2**31, -(2**31) - 1])
    if kind == 9:
        return [bad_value(rng)]
    if kind == 10:
        return rng.choice([1e300, -1e300, 1e-320, 65504.0, float("nan"), float("inf")])
    return Raw(rng.choice(["tru", "nul", "1.", ".5", "01", "+1", "0x10", "1e", "--1", "'a'"]))


def _paths(x, prefix=()):
    yield prefix
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(x, list):
        for i, v in enumerate(x[:4]):
            yield from _paths(v, prefix + (i,))


def _get(x, path):
    for p in path:
        x = x[p]
    return x


def mutate_structure(rng: random.Random, body):
    """One structural change at a random place in a (deep-copied) request."""
    body = json.loads(json.dumps(body))
    paths = list(_paths(body))
    path = rng.choice(paths)
    op = rng.randrange(8)
    if not path:  # the top level itself
        if op < 4:
            return rng.choice([[body], list(body), bad_value(rng), Raw(dump(body) * 2)])
        key = rng.choice(["instances", "inputs", "signature_name", "extra", "z", ""])
        pairs = list(body.items()) + [(key, bad_value(rng) if op < 6 else body.get(key, 1))]
        return Pairs(pairs)
    parent, last = _get(body, path[:-1]), path[-1]
    if op <= 3:
        parent[last] = bad_value(rng)
    elif op == 4:  # delete
        del parent[last]
    elif op == 5:  # duplicate / wrap / unwrap
        value = parent[last]
        if isinstance(parent, list):
            parent.insert(last, value)
        elif isinstance(value, list) and value and rng.random() < 0.5:
            parent[last] = value[0]
        else:
            parent[last] = [value]
    elif op == 6 and isinstance(parent, dict):  # a duplicated or renamed key
        items = list(parent.items())
        if rng.random() < 0.5:
            items.append((last, bad_value(rng)))
        else:
            items = [(k + rng.choice(["_", " ", "Z"]) if k == last else k, v) for k, v in items]
        if len(path) == 1:
            return Pairs(items)
        _get(body, path[:-2])[path[-2]] = Pairs(items)
    else:  # nest the value deeply
        depth = rng.choice([2, 5, 64, 70, 800, 5000])
        parent[last] = Raw("[" * depth + dump(parent[last]) + "]" * depth)
    return body


BYTES = b'[]{}",:0123456789.eE-+ \t\ntfnulx\\\x00\xff\xc3\xa9\xed\xa0\x80'


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 3, 8])):
        if not data:
            break
        i = rng.randrange(len(data))
        op = rng.randrange(6)
        if op == 0:
            del data[i : i + rng.choice([1, 1, 2, 10])]
        elif op == 1:
            data[i:i] = bytes(rng.choice(BYTES) for _ in range(rng.choice([1, 1, 3])))
        elif op == 2:
            data[i:i] = data[i : i + rng.choice([1, 5, 40])]
        elif op == 3:
            j = rng.randrange(len(data))
            data[i], data[j] = data[j], data[i]
        elif op == 4:
            data[i] = rng.choice(BYTES)
        else:
            del data[i:]
    return bytes(data)


def whole_body(rng: random.Random, valid: bytes) -> bytes:
    kind = rng.randrange(9)
    if kind == 0:
        return rng.choice([b"", b" ", b"\n\t ", b"\x00", b"\xef\xbb\xbf", b"\xef\xbb\xbf{}"])
    if kind == 1:
        return rng.choice([b"[]", b"1", b'"x"', b"null", b"true", b"[{}]", b"NaN", b"-Infinity"])
    if kind == 2:
        return dump(deep(rng, balanced=rng.random() < 0.5)).encode()
    if kind == 3:  # 100,000 nested brackets, as in the issue
        return rng.choice([b"[" * 100_000, b"{" * 100_000, b'{"instances":' + b"[" * 100_000])
    if kind == 4:  # other encodings than UTF-8, some invalid
        return rng.choice(
            [
                valid.decode().encode("utf-16"),
                valid.decode().encode("utf-32-le"),
                valid.decode().encode("utf-16-be")[:-1],
                valid.replace(b'"', b'"\xff', 1),
                valid.replace(b"{", b"{\x80\x80", 1),
                valid.replace(b":", b':"\xed\xa0\x80"', 1),
            ]
        )
    if kind == 5:  # duplicated top-level keys
        return b"{" + valid[1:-1] + b"," + valid[1:-1] + b"}"
    if kind == 6:
        return valid + rng.choice([b"x", b"{}", b"]", b"\x00", valid])
    if kind == 7:
        return b'{"instances": ' + dump(huge_number(rng)).encode() + b"}"
    return valid.replace(b"0", b"NaN").replace(b"1", b"Infinity")


def fuzz_bodies(seed: int, count: int) -> list[tuple[str, bytes]]:
    """(model, body) pairs: deterministic for a seed."""
    rng = random.Random(seed)
    bases = valid_requests(rng)
    out = []
    while len(out) < count:
        model, body = rng.choice(bases)
        r = rng.random()
        if r < 0.45:
            data = dump(mutate_structure(rng, body)).encode()
            if rng.random() < 0.2:
                data = mutate_bytes(rng, data)
        elif r < 0.8:
            data = mutate_bytes(rng, dump(body).encode())
        else:
            data = whole_body(rng, dump(body).encode())
        out.append((model, data))
    return out


def _check(status: int, content_type: str, text: str, body: bytes) -> str:
    where = body[:200]
    assert status < 500, f"{status} for {where!r}: {text[:300]}"
    if status >= 300:
        assert status == 400, f"{status} for {where!r}: {text[:300]}"
        assert content_type.startswith("application/json"), (status, content_type, where)
        error = json.loads(text)["error"]
        assert isinstance(error, str) and error, (status, text, where)
        return error
    return ""


# --- the tests ----------------------------------------------------------------------------

URL = "/v1/models/generator:predict"


def test_fuzz_predict_test_client(apps):
    clients = {name: app.test_client() for name, app in apps.items()}
    counts = collections.Counter()
    for model, body in fuzz_bodies(seed=0, count=CLIENT_BODIES):
        r = clients[model].post(URL, data=body, content_type="application/json")
        _check(r.status_code, r.content_type, r.get_data(as_text=True), body)
        counts[r.status_code] += 1
    print(f"test client: {dict(counts)}")
    assert sum(counts.values()) == CLIENT_BODIES
    assert counts[400] > CLIENT_BODIES // 2  # the fuzz mostly produces bad requests
    for client in clients.values():  # ...and the servers still serve
        assert client.get("/v1/models/generator").status_code == 200
    ok = clients["uncond"].post(URL, json={"instances": [[0.0] * LATENT]})
    assert ok.status_code == 200


def test_fuzz_predict_over_loopback(apps):
    counts = collections.Counter()
    bodies = [("uncond", b"[" * 100_000)] + fuzz_bodies(seed=1, count=LOOPBACK_BODIES - 1)
    with (
        helpers.RestServerThread(apps["uncond"], threads=2) as uncond,
        helpers.RestServerThread(apps["cond"], threads=2) as cond,
        requests.Session() as session,
    ):
        urls = {"uncond": uncond.url, "cond": cond.url}
        for i, (model, body) in enumerate(bodies):
            if i % STATUS_EVERY == 0:
                status = session.get(urls[model] + "/v1/models/generator", timeout=60)
                assert status.status_code == 200, f"status failed after {i} bodies"
            r = session.post(
                urls[model] + URL,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=60,
            )
            _check(r.status_code, r.headers.get("Content-Type", ""), r.text, body)
            counts[r.status_code] += 1
        print(f"loopback: {dict(counts)}")
        for url in urls.values():
            assert session.get(url + "/v1/models/generator", timeout=60).status_code == 200
        r = session.post(uncond.url + URL, json={"inputs": [[0.0] * LATENT]}, timeout=60)
        assert r.status_code == 200
        # The servers' own count agrees: not one request ended in a server error.
        metrics = session.get(uncond.url + "/monitoring/prometheus/metrics", timeout=60).text
        assert 'status="INVALID_ARGUMENT"' in metrics
        assert 'status="INTERNAL"' not in metrics and 'status="UNKNOWN"' not in metrics
    assert sum(counts.values()) == LOOPBACK_BODIES
    assert counts[400] > LOOPBACK_BODIES // 2


@pytest.mark.parametrize(
    "body,fragment",
    [
        (b"[" * 100_000, "nested too deeply"),
        (b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        (b'{"instances": ' + b"[" * 500 + b"0" + b"]" * 500 + b"}", "rectangular"),
        (b'{"instances": [[1' + b"0" * 10_000 + b"]]}", "digits"),
        (b'{"instances": [[1e999, 0, 0, 0, 0, 0, 0, 0]]}', "finite"),
        (b'{"instances": [[NaN, 0, 0, 0, 0, 0, 0, 0]]}', "finite"),
        (b'{"instances": [[1' + b"0" * 40 + b", 0, 0, 0, 0, 0, 0, 0]]}", "range"),
        (b'{"instances": [[0, 0, 0, 0, 0, 0, 0, 0]], "instances": []}', "duplicate key"),
        (b"", "empty"),
        (b"  \n", "empty"),
        (b'{"instances": "\xff\xfe"}', "UTF-8"),
        (b'"instances"', "not an object"),
        (b'{"instances": [[true, false, 0, 0, 0, 0, 0, 0]]}', "numbers"),
        (b'{"instances": null}', "non-empty list"),
        (b'{"inputs": {"z": {"a": 1}}}', "rectangular"),
        (
            b'{"signature_name": "sample", "inputs": {"num_samples": 1'
            + b"0" * 30
            + b', "seed": 0}}',
            "out of range",
        ),
        (b'{"signature_name": "sample", "inputs": {"num_samples": 2, "seed": 1e999}}', "integers"),
    ],
)
def test_malformed_json_names_the_problem(apps, body, fragment):
    client = apps["uncond"].test_client()
    r = client.post(URL, data=body, content_type="application/json")
    assert r.status_code == 400, r.get_data(as_text=True)[:300]
    assert fragment in r.get_json()["error"]
    assert len(r.get_json()["error"]) < 1000  # no echo of a huge body
    assert client.get("/v1/models/generator").status_code == 200


def test_unexpected_errors_stay_500_and_are_logged(exported, monkeypatch, caplog):
    """Only request faults become 400: a bug behind them is still a logged 500."""
    app = _app(exported / "uncond")
    client = app.test_client()

    def broken(pairs):
        raise ValueError("a bug in a parse hook")

    monkeypatch.setattr(codec, "_unique_keys", broken)
    with caplog.at_level(logging.ERROR):
        r = client.post(URL, json={"instances": [[0.0] * LATENT]})
    assert r.status_code == 500 and r.get_json() == {"error": "Internal server error"}
    assert "a bug in a parse hook" in caplog.text
    monkeypatch.undo()

    def failing_check(*args, **kwargs):
        raise RuntimeError("a bug after parsing")

    monkeypatch.setattr(codec, "check_limits", failing_check)
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        r = client.post(URL, json={"instances": [[0.0] * LATENT]})
    assert r.status_code == 500 and "a bug after parsing" in caplog.text
    monkeypatch.undo()
    assert client.post(URL, json={"instances": [[0.0] * LATENT]}).status_code == 200
    app.config["REGISTRY"].stop()
