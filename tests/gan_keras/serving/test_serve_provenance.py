"""Provenance on the model server's images, and POST :verify.

Every PNG and GIF the REST API answers with (:sample, :interpolate, :edit, :transform and
:project's reconstruction), read back: without a key it carries the unsigned facts (model
name, version, export fingerprint, the request's recipe); with the test CA's key it carries
C2PA credentials that validate with c2pa.Reader, and a changed pixel makes validation fail.
:verify answers for signed, unsigned, stripped and garbage bodies. gan_keras.serve's
--c2pa_key/--c2pa_cert are checked in a subprocess (pipeline.generate defines flags of the
same names, so gan_keras.serve is never imported into the test process).
"""

import base64
import io
import json
import logging
import os
import re
import struct
import subprocess
import sys
import time
import zlib

import helpers
import numpy as np
import pytest
import requests
from PIL import Image

from gan_keras import images as gan_images
from gan_keras.export import transform_model
from gan_keras.models import pix2pix
from gan_keras.provenance import facts as facts_lib
from gan_keras.provenance import metadata, signing, stamp, verify
from gan_keras.serving import app as serving_app

LATENT = 8
CLASSES = 3
SIZE = 16  # the transform model's output
LOW = 8  # its input (super_resolution, scale 2)
GUARD_SECONDS = 120


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = helpers.export_tiny_generators(
        tmp_path_factory.mktemp("serve_provenance"), latent_dim=LATENT, num_classes=CLASSES
    )
    sr = pix2pix.build_unet_generator(
        condition_shape=(LOW, LOW, 1), image_shape=(SIZE, SIZE, 1), width=8
    )
    task = helpers.task_config("super_resolution", scale=2)
    transform_model.export_image_to_image(sr, root / "sr", task_config=task)
    return root


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return helpers.make_test_credentials(tmp_path_factory.mktemp("c2pa-test-ca"))


@pytest.fixture(scope="module")
def signer(ca):
    return signing.C2paSigner(ca.key_path, ca.chain_path)


def _clients(bases, **kwargs):
    apps = {
        "uncond": serving_app.create_app(bases / "uncond", "gen", 16, 0, **kwargs),
        "sr": serving_app.create_app(bases / "sr", "sr", 16, 0, **kwargs),
    }
    return apps, {name: flask_app.test_client() for name, flask_app in apps.items()}


@pytest.fixture(scope="module")
def unsigned(bases):
    apps, clients = _clients(bases)
    yield clients
    for flask_app in apps.values():
        flask_app.config["REGISTRY"].stop()


@pytest.fixture(scope="module")
def signed(bases, signer):
    apps, clients = _clients(bases, stamper=stamp.Stamper(signer))
    yield clients
    for flask_app in apps.values():
        flask_app.config["REGISTRY"].stop()


LOW_PNG = gan_images.encode_png(
    np.random.default_rng(0).integers(0, 256, (LOW, LOW, 1), dtype=np.uint8)
)
SAMPLE_PNG = gan_images.encode_png(
    np.random.default_rng(1).integers(0, 256, (8, 8, 1), dtype=np.uint8)
)

# endpoint -> (client, method, path, body, expected recipe fields, expected format)
ENDPOINTS = {
    "sample": (
        "uncond",
        "GET",
        "/v1/models/gen:sample?n=4&seed=3&rows=2",
        None,
        {"signature": "sample", "endpoint": "sample", "seed": 3, "num": 4, "rows": 2},
        "png",
    ),
    "truncated_sample": (
        "uncond",
        "GET",
        "/v1/models/gen:sample?n=2&seed=5&truncation=0.5",
        None,
        {"signature": "truncated_sample", "seed": 5, "num": 2, "truncation": 0.5},
        "png",
    ),
    "interpolate_png": (
        "uncond",
        "GET",
        "/v1/models/gen:interpolate?seed_a=1&seed_b=2&steps=3",
        None,
        {"signature": "interpolate", "seed_a": 1, "seed_b": 2, "steps": 3, "format": "png"},
        "png",
    ),
    "interpolate_gif": (
        "uncond",
        "GET",
        "/v1/models/gen:interpolate?seed_a=1&seed_b=2&steps=3&format=gif&duration_ms=50",
        None,
        {"signature": "interpolate", "format": "gif", "duration_ms": 50},
        "gif",
    ),
    "edit": (
        "uncond",
        "GET",
        "/v1/models/gen:edit?direction=sefa_1&seed=4&num=2&strengths=-1,0,2&truncation=0.7",
        None,
        {
            "signature": "edit",
            "seed": 4,
            "num": 2,
            "direction": "sefa_1",
            "direction_index": 1,
            "strengths": [-1.0, 0.0, 2.0],
            "truncation": 0.7,
        },
        "png",
    ),
    "project": (
        "uncond",
        "POST",
        "/v1/models/gen:project?steps=2",
        SAMPLE_PNG,
        {"signature": "project", "steps": 2, "input_sha256": facts_lib.sha256_hex(SAMPLE_PNG)},
        "png",
    ),
    "transform": (
        "sr",
        "POST",
        "/v1/models/sr:transform",
        LOW_PNG,
        {
            "signature": "transform",
            "task": "super_resolution",
            "input_sha256": facts_lib.sha256_hex(LOW_PNG),
        },
        "png",
    ),
}


def _call(clients, endpoint):
    client, method, path, body, _, _ = ENDPOINTS[endpoint]
    if method == "GET":
        response = clients[client].get(path)
    else:
        response = clients[client].post(path, data=body, content_type="image/png")
    assert response.status_code == 200, response.get_data(as_text=True)
    if endpoint == "project":
        return base64.b64decode(response.get_json()["reconstruction_png_b64"])
    return response.data


def _model(bases, endpoint):
    client = ENDPOINTS[endpoint][0]
    name = "gen" if client == "uncond" else "sr"
    return {
        "name": name,
        "version": 1,
        "export_fingerprint": facts_lib.export_fingerprint(bases / client / "1"),
    }


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_unsigned_images_carry_the_facts(unsigned, bases, endpoint):
    data = _call(unsigned, endpoint)
    expected_recipe, fmt = ENDPOINTS[endpoint][4], ENDPOINTS[endpoint][5]
    assert metadata.image_format(data) == fmt
    read = metadata.read_metadata(data)
    assert read is not None, f"{endpoint}: no provenance metadata in the answer"
    facts = read["facts"]
    assert facts["digital_source_type"] == facts_lib.DIGITAL_SOURCE_TYPE
    assert facts["model"] == _model(bases, endpoint)
    assert facts["recipe"] == {**facts["recipe"], **expected_recipe}
    # Never claimed as signed: there is no manifest, and verify says unsigned.
    report = verify.verify_bytes(data)
    assert report["status"] == "unsigned" and report["signed"] is False
    assert report["credentials"] is False
    # The image is still the image.
    Image.open(io.BytesIO(data)).load()


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_signed_images_validate_and_record_what_made_them(signed, bases, ca, endpoint):
    data = _call(signed, endpoint)
    fmt = ENDPOINTS[endpoint][5]
    mime = signing.MIME_TYPES[fmt]
    state, manifest, _ = helpers.read_c2pa(data, mime)
    assert state == "Valid", state  # the test CA is in no trust list
    assert helpers.read_c2pa(data, mime, anchors=ca.ca_pem)[0] == "Trusted"
    assert manifest["signature_info"]["common_name"] == ca.common_name
    report = verify.verify_bytes(data)
    assert report["status"] == "signed" and report["pixels_match"] is True
    assert report["model"] == _model(bases, endpoint)
    assert report["recipe"] == {**report["recipe"], **ENDPOINTS[endpoint][4]}


def _replace_pixels(signed_png: bytes, pixels: np.ndarray) -> bytes:
    """The PNG with its IDAT replaced by `pixels`' and every other chunk (the manifest too)
    kept: what an edit that keeps the metadata produces."""
    new_idat = [
        body for kind, body in metadata.png_chunks(gan_images.encode_png(pixels)) if kind == b"IDAT"
    ]
    out, done = [metadata.PNG_SIGNATURE], False
    for kind, body in metadata.png_chunks(signed_png):
        if kind == b"IDAT":
            if not done:
                out += [_chunk(b"IDAT", chunk) for chunk in new_idat]
                done = True
            continue
        out.append(_chunk(kind, body))
    return b"".join(out)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _pixels(png: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(png)))


def _tampered(signed_png: bytes) -> bytes:
    pixels = _pixels(signed_png)
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    changed = pixels.copy()
    changed[0, 0, 0] ^= 0xFF
    return _replace_pixels(signed_png, changed)


def test_a_changed_pixel_fails_validation(signed):
    data = _call(signed, "sample")
    tampered = _tampered(data)
    assert helpers.read_c2pa(tampered, "image/png")[0] == "Invalid"
    pixels = _pixels(data)
    same = _replace_pixels(data, pixels[..., None] if pixels.ndim == 2 else pixels)
    assert helpers.read_c2pa(same, "image/png")[0] == "Valid"  # the surgery alone changes nothing


def test_the_app_logs_once_that_its_images_are_unsigned(bases, signer, caplog):
    with caplog.at_level(logging.INFO, logger="gan_keras.serving.credentials"):
        flask_app = serving_app.create_app(bases / "uncond", "gen", 16, 0)
        client = flask_app.test_client()
        for _ in range(3):
            assert client.get("/v1/models/gen:sample?n=1").status_code == 200
        flask_app.config["REGISTRY"].stop()
    messages = [r.getMessage() for r in caplog.records if r.name.endswith("credentials")]
    assert len(messages) == 1 and "NOT signed" in messages[0], messages
    assert "C2PA content credentials signed" not in messages[0]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gan_keras.serving.credentials"):
        flask_app = serving_app.create_app(
            bases / "uncond", "gen", 16, 0, stamper=stamp.Stamper(signer)
        )
        flask_app.config["REGISTRY"].stop()
    messages = [r.getMessage() for r in caplog.records if r.name.endswith("credentials")]
    assert len(messages) == 1 and "signed by" in messages[0] and "NOT" not in messages[0]


def test_the_fingerprint_is_hashed_once_per_loaded_version(bases, monkeypatch):
    calls = []
    real = facts_lib.export_fingerprint

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(facts_lib, "export_fingerprint", counting)
    flask_app = serving_app.create_app(bases / "uncond", "gen", 16, 0)
    client = flask_app.test_client()
    try:
        for seed in range(4):
            assert client.get(f"/v1/models/gen:sample?n=1&seed={seed}").status_code == 200
        assert client.get("/v1/models/gen:edit?direction=0&num=1").status_code == 200
    finally:
        flask_app.config["REGISTRY"].stop()
    assert len(calls) == 1, calls


def test_stamping_can_be_left_out_only_when_asked(bases):
    flask_app = serving_app.create_app(bases / "uncond", "gen", 16, 0, stamp_images=False)
    try:
        data = flask_app.test_client().get("/v1/models/gen:sample?n=1").data
    finally:
        flask_app.config["REGISTRY"].stop()
    assert metadata.read_metadata(data) is None


# --- :verify -------------------------------------------------------------------------------------


def _verify(client, body, content_type="image/png", path="/v1/models/gen:verify"):
    return client.post(path, data=body, content_type=content_type)


def test_verify_a_signed_image(signed, unsigned, bases, ca):
    data = _call(signed, "sample")
    # Verified by either server: :verify reads the credentials, it does not need the key.
    for client in (signed["uncond"], unsigned["uncond"]):
        r = _verify(client, data)
        assert r.status_code == 200, r.get_data(as_text=True)
        report = r.get_json()
        assert report["status"] == "signed" and report["signed"] is True
        assert report["pixels_match"] is True and report["validation_state"] == "Valid"
        assert report["signer"]["common_name"] == ca.common_name
        assert report["model"] == _model(bases, "sample")
        assert report["recipe"]["seed"] == 3
        assert report["served_model"]["fingerprint_matches"] is True
        assert report["summary"].startswith("signed C2PA credentials")
    # The same keys as gan-verify --json (it adds "path").
    assert set(report) - {"served_model"} == set(verify.verify_bytes(data))


def test_verify_a_tampered_image(signed):
    r = _verify(signed["uncond"], _tampered(_call(signed, "sample")))
    assert r.status_code == 200
    report = r.get_json()
    assert report["status"] == "invalid" and report["signed"] is False
    assert report["pixels_match"] is False


def test_verify_an_unsigned_image(unsigned, bases):
    data = _call(unsigned, "edit")
    r = _verify(unsigned["uncond"], data)
    assert r.status_code == 200
    report = r.get_json()
    assert report["status"] == "unsigned" and report["signed"] is False
    assert report["credentials"] is False and report["unsigned_metadata"] is True
    assert report["model"] == _model(bases, "edit")
    assert report["served_model"]["fingerprint_matches"] is True
    # Another model's server says the recorded fingerprint is not its version's.
    other = _verify(unsigned["sr"], data, path="/v1/models/sr:verify").get_json()
    assert other["served_model"]["fingerprint_matches"] is False


def test_verify_a_stripped_image(signed):
    data = _call(signed, "sample")
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buf, format="PNG")  # re-encoded: every chunk dropped
    r = _verify(signed["uncond"], buf.getvalue())
    assert r.status_code == 200
    report = r.get_json()
    assert report["status"] == "none" and report["signed"] is False
    assert report["model"] is None and report["served_model"]["fingerprint_matches"] is None


def test_verify_a_gif(signed):
    r = _verify(signed["uncond"], _call(signed, "interpolate_gif"), "image/gif")
    assert r.status_code == 200 and r.get_json()["status"] == "signed"


@pytest.mark.parametrize(
    "body, content_type, message",
    [
        (b"", "image/png", "empty"),
        (b"this is not an image at all", "image/png", "not a PNG, GIF or JPEG"),
        (b'{"instances": [1]}', "application/json", "not a PNG, GIF or JPEG"),
        (os.urandom(4096), "application/octet-stream", "not a PNG, GIF or JPEG"),
    ],
)
def test_verify_refuses_garbage_with_a_400(unsigned, body, content_type, message):
    r = _verify(unsigned["uncond"], body, content_type)
    assert r.status_code == 400, r.get_data(as_text=True)
    assert message in r.get_json()["error"]


def test_verify_never_answers_5xx_for_damaged_images(signed):
    data = _call(signed, "sample")
    rng = np.random.default_rng(0)
    bodies = [data[:n] for n in (8, 20, 33, len(data) // 2, len(data) - 1)]
    for _ in range(20):
        damaged = bytearray(data)
        for i in rng.integers(8, len(data), 4):
            damaged[i] ^= 0xFF
        bodies.append(bytes(damaged))
    bodies.append(b"GIF89a" + os.urandom(200))
    bodies.append(b"\xff\xd8\xff" + os.urandom(200))
    for body in bodies:
        r = _verify(signed["uncond"], body)
        assert r.status_code < 500, (r.status_code, r.get_data(as_text=True))
        assert r.status_code in (200, 400), r.status_code
        if r.status_code == 200:
            assert r.get_json()["status"] in ("signed", "invalid", "unsigned", "none")


def test_verify_routing(unsigned):
    client = unsigned["uncond"]
    r = client.get("/v1/models/gen:verify")
    assert r.status_code == 405 and "POST" in r.get_json()["error"]
    r = client.post("/v1/models/gen:verify?x=1", data=SAMPLE_PNG, content_type="image/png")
    assert r.status_code == 400 and "query parameters" in r.get_json()["error"]
    r = client.post(
        "/v1/models/gen:verify",
        data={"image": (io.BytesIO(SAMPLE_PNG), "a.png")},
        content_type="multipart/form-data",
    )
    assert r.status_code == 400 and "raw request body" in r.get_json()["error"]
    r = client.post("/v1/models/nope:verify", data=SAMPLE_PNG, content_type="image/png")
    assert r.status_code == 404


def test_verify_has_the_apps_body_limit(bases):
    flask_app = serving_app.create_app(bases / "uncond", "gen", 16, 0)
    flask_app.config["MAX_CONTENT_LENGTH"] = 1000
    try:
        r = _verify(flask_app.test_client(), SAMPLE_PNG + b"\0" * 2000)
    finally:
        flask_app.config["REGISTRY"].stop()
    assert r.status_code == 413


def test_a_provenance_failure_answers_500_and_no_image(bases):
    class Broken:
        signed = True

        def describe(self):
            return "broken"

        def stamp(self, data, facts):
            raise signing.SigningError("the key went away")

    flask_app = serving_app.create_app(bases / "uncond", "gen", 16, 0, stamper=Broken())
    try:
        r = flask_app.test_client().get("/v1/models/gen:sample?n=1")
    finally:
        flask_app.config["REGISTRY"].stop()
    assert r.status_code == 500 and r.mimetype == "application/json"
    assert "provenance" in r.get_json()["error"]


# --- gan_keras.serve's flags -----------------------------------------------------------------


def _serve_cmd(*args):
    env = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=str(helpers.REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    return [sys.executable, "-m", "gan_keras.serve", *args], env


@pytest.mark.slow
@pytest.mark.parametrize("given, missing", [("c2pa_key", "c2pa_cert"), ("c2pa_cert", "c2pa_key")])
def test_one_signing_flag_without_the_other_is_a_usage_error(bases, ca, given, missing):
    path = ca.key_path if given == "c2pa_key" else ca.chain_path
    cmd, env = _serve_cmd(f"--model_base_path={bases / 'uncond'}", f"--{given}={path}")
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=GUARD_SECONDS)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert f"--{missing}" in last and f"--{given}" in last, result.stderr[-2000:]
    assert "Warmed up" not in result.stderr  # refused before any model loads


@pytest.mark.slow
def test_trust_anchors_that_are_not_certificates_are_a_usage_error(bases, ca, tmp_path):
    for path, message in ((tmp_path / "missing.pem", "cannot read"), (ca.key_path, "not a PEM")):
        cmd, env = _serve_cmd(
            f"--model_base_path={bases / 'uncond'}", f"--c2pa_trust_anchors={path}"
        )
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode != 0
        assert "--c2pa_trust_anchors" in result.stderr and message in result.stderr, result.stderr
        assert "Warmed up" not in result.stderr  # refused before any model loads


def test_verify_without_trust_anchors_never_says_trusted(signed, unsigned):
    data = _call(signed, "sample")
    report = (
        unsigned["uncond"]
        .post("/v1/models/gen:verify", data=data, content_type="image/png")
        .get_json()
    )
    assert (report["validation_state"], report["trusted"]) == ("Valid", False)


@pytest.mark.slow
def test_the_server_signs_with_its_flags(bases, ca, tmp_path):
    cmd, env = _serve_cmd(
        f"--model_base_path={bases / 'uncond'}",
        "--model_name=gen",
        "--port=0",
        "--rest_api_port=0",
        "--file_system_poll_wait_seconds=0",
        "--rest_api_num_threads=2",
        f"--c2pa_key={ca.key_path}",
        f"--c2pa_cert={ca.chain_path}",
        f"--c2pa_trust_anchors={ca.ca_path}",
    )
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=out)
    try:
        deadline = time.monotonic() + GUARD_SECONDS
        while not (
            match := re.search(r"on (http://127\.0\.0\.1:[1-9]\d*)/v1/models/gen", log.read_text())
        ):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no address logged"
            time.sleep(0.05)
        url = f"{match.group(1)}/v1/models/gen"
        data = requests.get(url + ":sample?n=2&seed=9", timeout=60).content
        assert helpers.read_c2pa(data, "image/png", anchors=ca.ca_pem)[0] == "Trusted"
        report = requests.post(
            url + ":verify", data=data, headers={"Content-Type": "image/png"}, timeout=60
        ).json()
        assert report["status"] == "signed", json.dumps(report)
        # --c2pa_trust_anchors: the test CA is trusted, as gan-verify --trust_anchors trusts it.
        assert (report["validation_state"], report["trusted"]) == ("Trusted", True)
        text = log.read_text()
        assert "signed by" in text and "NOT signed" not in text
    finally:
        proc.terminate()
        proc.wait(timeout=GUARD_SECONDS)
