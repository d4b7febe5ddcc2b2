"""The controls over REST (:interpolate, :edit, :project, :sample?truncation) and the CLI flags."""

import base64
import io
import json
import math
import os
import subprocess
import sys

import helpers
import numpy as np
import pytest
import requests
from PIL import Image, ImageSequence

from gan_keras import images as gan_images
from gan_keras.client import image_files, sampling
from gan_keras.client.model import RequestError, load_model
from gan_keras.export import sampling_model as gan_export
from gan_keras.serving import app as serving_app

# Real servers and CLI subprocesses over exported models.
pytestmark = pytest.mark.slow

LATENT = 8
CLASSES = 3
SIZE = 8  # helpers.tiny_generator's images are 8x8
MAX_BATCH = 32
DIRECTION_NAMES = [f"sefa_{i}" for i in range(LATENT)]


def _generator(conditional: bool, channels: int = 1, seed: int = 0):
    return helpers.tiny_generator(
        conditional, seed, latent_dim=LATENT, num_classes=CLASSES, channels=channels
    )


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("controls_rest")
    gan_export.export_generator(
        _generator(False),
        root / "uncond",
        latent_dim=LATENT,
        directions={"towards_x": np.ones(LATENT, np.float32)},
    )
    gan_export.export_generator(
        _generator(True), root / "cond", latent_dim=LATENT, num_classes=CLASSES
    )
    gan_export.export_generator(_generator(False, channels=3), root / "rgb", latent_dim=LATENT)
    return root


def _app(base):
    return serving_app.create_app(base, "g", max_batch=MAX_BATCH, poll_seconds=0)


@pytest.fixture(scope="module")
def apps(bases):
    made = {name: _app(bases / name) for name in ("uncond", "cond", "rgb")}
    yield made
    for flask_app in made.values():
        flask_app.config["REGISTRY"].stop()


@pytest.fixture(scope="module")
def uncond(apps):
    return apps["uncond"].test_client()


@pytest.fixture(scope="module")
def cond(apps):
    return apps["cond"].test_client()


@pytest.fixture(scope="module")
def rgb(apps):
    return apps["rgb"].test_client()


def _model(apps, name):
    """The served version itself: sampling's functions take it as they take a LoadedModel."""
    return apps[name].config["REGISTRY"].current()


def _png(response, shape=None):
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "image/png"
    assert response.headers["X-Model-Version"] == "1"
    image = np.array(Image.open(io.BytesIO(response.data)))
    if shape is not None:
        assert image.shape == shape
    return image


def _gif_frames(data: bytes, channels: int = 1):
    gif = Image.open(io.BytesIO(data))
    assert gif.format == "GIF"
    assert gif.info["loop"] == 0  # forever
    mode = "L" if channels == 1 else "RGB"
    frames = [np.array(frame.convert(mode)) for frame in ImageSequence.Iterator(gif)]
    return frames, gif


def _tile(grid, row, col, size=SIZE, padding=2):
    top, left = padding + row * (size + padding), padding + col * (size + padding)
    return grid[top : top + size, left : left + size]


def _error(response, status=400):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    return response.get_json()["error"]


# --- :interpolate ------------------------------------------------------------------------


def test_interpolate_png_strip(apps, uncond):
    strip = _png(
        uncond.get("/v1/models/g:interpolate?seed_a=3&seed_b=9&steps=5"),
        (SIZE + 4, 5 * (SIZE + 2) + 2),
    )
    model = _model(apps, "uncond")
    first = sampling.sample_images(model, num=1, seed=3)[0, ..., 0]
    last = sampling.sample_images(model, num=1, seed=9)[0, ..., 0]
    np.testing.assert_array_equal(_tile(strip, 0, 0), first)
    np.testing.assert_array_equal(_tile(strip, 0, 4), last)
    assert not np.array_equal(_tile(strip, 0, 2), first)
    # Default: 8 steps; a specific version works too.
    _png(
        uncond.get("/v1/models/g/versions/1:interpolate?seed_a=3&seed_b=9"),
        (SIZE + 4, 8 * (SIZE + 2) + 2),
    )


def test_interpolate_gif_end_frames_are_the_samples(apps, uncond):
    r = uncond.get("/v1/models/g:interpolate?seed_a=3&seed_b=9&steps=6&format=gif&duration_ms=50")
    assert r.status_code == 200 and r.mimetype == "image/gif"
    frames, gif = _gif_frames(r.data)
    assert len(frames) == 6 and gif.info["duration"] == 50
    assert all(frame.shape == (SIZE, SIZE) for frame in frames)
    model = _model(apps, "uncond")
    np.testing.assert_array_equal(
        frames[0], sampling.sample_images(model, num=1, seed=3)[0, ..., 0]
    )
    np.testing.assert_array_equal(
        frames[-1], sampling.sample_images(model, num=1, seed=9)[0, ..., 0]
    )
    # The frames are interpolate's images, exactly (grayscale GIFs are lossless).
    walk = sampling.interpolate_images(model, seed_a=3, seed_b=9, steps=6)
    np.testing.assert_array_equal(np.stack(frames), walk[..., 0])


def test_interpolate_conditional_and_rgb(apps, cond, rgb):
    r = cond.get(
        "/v1/models/g:interpolate?seed_a=1&seed_b=2&steps=4&format=GIF&label_a=0&label_b=2"
    )
    frames, _ = _gif_frames(r.data)
    model = _model(apps, "cond")
    assert len(frames) == 4
    np.testing.assert_array_equal(
        frames[0], sampling.sample_images(model, num=1, seed=1, label=0)[0, ..., 0]
    )
    np.testing.assert_array_equal(
        frames[-1], sampling.sample_images(model, num=1, seed=2, label=2)[0, ..., 0]
    )
    # Colour GIFs go through a palette: the right frames, near the images.
    frames, _ = _gif_frames(
        rgb.get("/v1/models/g:interpolate?seed_a=1&seed_b=2&steps=3&format=gif").data, channels=3
    )
    expected = sampling.interpolate_images(_model(apps, "rgb"), seed_a=1, seed_b=2, steps=3)
    assert len(frames) == 3 and frames[0].shape == (SIZE, SIZE, 3)
    assert np.abs(np.stack(frames).astype(int) - expected).mean() < 8
    _png(
        rgb.get("/v1/models/g:interpolate?seed_a=1&seed_b=2&steps=3"),
        (SIZE + 4, 3 * (SIZE + 2) + 2, 3),
    )


# --- :sample?truncation ----------------------------------------------------------------------


def test_sample_truncation(uncond, cond):
    plain = _png(uncond.get("/v1/models/g:sample?n=4&seed=5"))
    np.testing.assert_array_equal(
        _png(uncond.get("/v1/models/g:sample?n=4&seed=5&truncation=1")), plain
    )
    half = _png(uncond.get("/v1/models/g:sample?n=4&seed=5&truncation=0.5"))
    assert not np.array_equal(half, plain)
    zero = _png(uncond.get("/v1/models/g:sample?n=4&seed=5&truncation=0"))
    tiles = [_tile(zero, r, c) for r in range(2) for c in range(2)]
    assert all(np.array_equal(tile, tiles[0]) for tile in tiles)
    # Conditional: psi = 0 leaves one image per class.
    zero = _png(cond.get("/v1/models/g:sample?n=3&seed=5&truncation=0&label=1&rows=1"))
    assert np.array_equal(_tile(zero, 0, 0), _tile(zero, 0, 2))


# --- :edit ---------------------------------------------------------------------------------


def test_edit_grid(apps, uncond):
    grid = _png(
        uncond.get("/v1/models/g:edit?seed=4&direction=sefa_0&strengths=-3,0,3&num=2"),
        (2 * (SIZE + 2) + 2, 3 * (SIZE + 2) + 2),
    )
    samples = sampling.sample_images(_model(apps, "uncond"), num=2, seed=4)
    for row in range(2):
        np.testing.assert_array_equal(_tile(grid, row, 1), samples[row, ..., 0])
        assert not np.array_equal(_tile(grid, row, 0), samples[row, ..., 0])
        assert not np.array_equal(_tile(grid, row, 2), samples[row, ..., 0])
    # By index, the same; the extra named direction comes after the SeFa ones.
    by_index = _png(uncond.get("/v1/models/g:edit?seed=4&direction=0&strengths=-3,0,3&num=2"))
    np.testing.assert_array_equal(by_index, grid)
    named = _png(
        uncond.get("/v1/models/g:edit?seed=4&direction=towards_x&num=1&strengths=2&truncation=0.5")
    )
    np.testing.assert_array_equal(
        named,
        _png(
            uncond.get(
                f"/v1/models/g:edit?seed=4&direction={LATENT}&num=1&strengths=2&truncation=0.5"
            )
        ),
    )
    # Defaults: 4 samples x 5 strengths.
    _png(uncond.get("/v1/models/g:edit?direction=sefa_1"), (4 * (SIZE + 2) + 2, 5 * (SIZE + 2) + 2))


def test_edit_conditional_keeps_labels(apps, cond):
    grid = _png(cond.get("/v1/models/g:edit?seed=2&direction=sefa_0&strengths=0,1&num=3&label=2"))
    samples = sampling.sample_images(_model(apps, "cond"), num=3, seed=2, label=2)
    for row in range(3):
        np.testing.assert_array_equal(_tile(grid, row, 0), samples[row, ..., 0])
    random_labels = _png(cond.get("/v1/models/g:edit?seed=2&direction=1&strengths=0&num=3"))
    samples = sampling.sample_images(_model(apps, "cond"), num=3, seed=2)
    for row in range(3):
        np.testing.assert_array_equal(_tile(random_labels, row, 0), samples[row, ..., 0])


def test_edit_unknown_direction_lists_the_names(uncond):
    for direction in ("nope", str(LATENT + 1), "-1"):
        message = _error(uncond.get(f"/v1/models/g:edit?direction={direction}"))
        assert "direction" in message and "sefa_0" in message and "towards_x" in message
        assert f"0..{LATENT}" in message


# --- :project ------------------------------------------------------------------------------


def _post_png(client, url, image, content_type="image/png"):
    return client.post(url, data=gan_images.encode_png(image), content_type=content_type)


def test_project_own_sample(apps, uncond):
    target = sampling.sample_images(_model(apps, "uncond"), num=1, seed=11)[0]
    r = _post_png(uncond, "/v1/models/g:project?steps=200", target)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.headers["X-Model-Version"] == "1"
    body = json.loads(r.get_data(as_text=True))  # strict JSON: no Infinity / NaN
    assert set(body) == {"z", "psnr", "reconstruction_png_b64"}
    assert len(body["z"]) == LATENT
    assert body["psnr"] is None or body["psnr"] > 40.0, body["psnr"]
    recon = np.array(Image.open(io.BytesIO(base64.b64decode(body["reconstruction_png_b64"]))))
    assert recon.shape == (SIZE, SIZE)
    # The latent generates the reconstruction (through :predict's serving_default).
    images = uncond.post("/v1/models/g:predict", json={"instances": [body["z"]]})
    np.testing.assert_array_equal(
        np.array(images.get_json()["predictions"][0]["images"])[..., 0], recon
    )
    # PSNR from its definition on the two images: null only for an exact match (infinite).
    mse = np.mean((recon.astype(float) - target[..., 0]) ** 2)
    if mse == 0:
        assert body["psnr"] is None
    else:
        assert body["psnr"] == pytest.approx(10 * math.log10(255**2 / mse), rel=1e-4)


def test_project_conditional_and_rgb(apps, cond, rgb):
    target = sampling.sample_images(_model(apps, "cond"), num=1, seed=3, label=1)[0]
    r = _post_png(cond, "/v1/models/g:project?steps=100&label=1", target)
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    recon = np.array(Image.open(io.BytesIO(base64.b64decode(body["reconstruction_png_b64"]))))
    mse = np.mean((recon.astype(float) - target[..., 0]) ** 2)
    expected = None if mse == 0 else 10 * math.log10(255**2 / mse)
    assert body["psnr"] == (None if expected is None else pytest.approx(expected, rel=1e-4))
    assert body["psnr"] is None or body["psnr"] > 30
    target = sampling.sample_images(_model(apps, "rgb"), num=1, seed=3)[0]
    r = _post_png(rgb, "/v1/models/g:project?steps=50", target, "application/octet-stream")
    assert r.status_code == 200, r.get_data(as_text=True)
    recon = Image.open(io.BytesIO(base64.b64decode(r.get_json()["reconstruction_png_b64"])))
    assert (recon.mode, recon.size) == ("RGB", (SIZE, SIZE))


def test_project_exact_match_psnr_is_null(uncond, monkeypatch):
    def exact(model, image, *, steps, label=None):
        return {"z": np.zeros(LATENT, np.float32), "reconstruction": image, "psnr": float("inf")}

    monkeypatch.setattr(sampling, "project_image", exact)
    r = _post_png(uncond, "/v1/models/g:project", np.zeros((SIZE, SIZE, 1), np.uint8))
    assert r.status_code == 200
    assert "Infinity" not in r.get_data(as_text=True)
    assert json.loads(r.get_data(as_text=True))["psnr"] is None


def test_project_bad_images(uncond, cond):
    url = "/v1/models/g:project?steps=1"
    for image, got in [
        (np.zeros((SIZE + 1, SIZE, 1), np.uint8), "[9, 8, 1]"),
        (np.zeros((SIZE, SIZE, 3), np.uint8), "[8, 8, 3]"),
        (np.zeros((SIZE, SIZE, 4), np.uint8), "[8, 8, 4]"),
    ]:
        message = _error(_post_png(uncond, url, image))
        assert "[8, 8, 1]" in message and got in message, message
    buf = io.BytesIO()
    Image.fromarray(np.zeros((SIZE, SIZE), np.uint8)).save(buf, format="JPEG")
    for body, fragment in [
        (buf.getvalue(), "not a PNG"),
        (b"", "empty"),
        (gan_images.encode_png(np.zeros((SIZE, SIZE, 1), np.uint8))[:40], "could not decode"),
    ]:
        message = _error(uncond.post(url, data=body, content_type="image/png"))
        assert fragment in message, message
    message = _error(uncond.post(url, json={"instances": [[0]]}))
    assert ":predict" in message and "project" in message
    message = _error(
        uncond.post(
            url, data={"file": (io.BytesIO(b"x"), "x.png")}, content_type="multipart/form-data"
        )
    )
    assert "raw request body" in message
    # Conditional models need a label, in range.
    image = np.zeros((SIZE, SIZE, 1), np.uint8)
    assert "label is required" in _error(_post_png(cond, url, image))
    assert "label=3 is out of range" in _error(_post_png(cond, url + "&label=3", image))


# --- bad values: 400 naming the parameter, never 5xx ----------------------------------------

BAD_UNCOND = [
    ("interpolate?seed_b=1", "seed_a is required"),
    ("interpolate?seed_a=1", "seed_b is required"),
    ("interpolate?seed_a=x&seed_b=1", "seed_a='x' is not an integer"),
    ("interpolate?seed_a=1&seed_b=99999999999999999999", "seed_b"),
    ("interpolate?seed_a=1&seed_b=2&steps=1", "steps must be in [2, 256]"),
    ("interpolate?seed_a=1&seed_b=2&steps=257", "steps must be in [2, 256]"),
    ("interpolate?seed_a=1&seed_b=2&steps=-5", "steps"),
    ("interpolate?seed_a=1&seed_b=2&steps=2.5", "steps"),
    ("interpolate?seed_a=1&seed_b=2&steps=200", "steps=200 is more than this server's --max_batch"),
    ("interpolate?seed_a=1&seed_b=2&format=jpeg", "format must be png or gif"),
    ("interpolate?seed_a=1&seed_b=2&format=gif&duration_ms=5", "duration_ms"),
    ("interpolate?seed_a=1&seed_b=2&duration_ms=100", "duration_ms applies only to format=gif"),
    ("interpolate?seed_a=1&seed_b=2&label_a=0", "label_a=0 given but this model is unconditional"),
    ("interpolate?seed_a=1&seed_b=2&speed=3", "unknown query parameters ['speed']"),
    ("sample?truncation=1.5", "truncation must be in [0, 1]"),
    ("sample?truncation=-0.1", "truncation must be in [0, 1]"),
    ("sample?truncation=nan", "truncation must be in [0, 1]"),
    ("sample?truncation=inf", "truncation must be in [0, 1]"),
    ("sample?truncation=abc", "truncation='abc' is not a number"),
    ("edit", "direction is required"),
    ("edit?direction=sefa_0&strengths=1,x", "strengths"),
    ("edit?direction=sefa_0&strengths=nan", "strengths"),
    ("edit?direction=sefa_0&strengths=1e39", "strengths"),
    ("edit?direction=sefa_0&strengths=" + ",".join(["0"] * 65), "strengths has 65 values"),
    ("edit?direction=sefa_0&num=0", "num must be in [1, 32]"),
    ("edit?direction=sefa_0&num=33", "num must be in [1, 32]"),
    ("edit?direction=sefa_0&num=7", "num x strengths = 7 x 5"),
    ("edit?direction=sefa_0&label=1", "label=1 given but this model is unconditional"),
    ("edit?direction=sefa_0&truncation=2", "truncation must be in [0, 1]"),
    ("edit?direction=sefa_0&seed=1.5", "seed='1.5' is not an integer"),
    ("edit?direction=sefa_0&size=3", "unknown query parameters ['size']"),
]
BAD_COND = [
    ("interpolate?seed_a=1&seed_b=2", "label_a is required"),
    ("interpolate?seed_a=1&seed_b=2&label_a=0", "label_b is required"),
    ("interpolate?seed_a=1&seed_b=2&label_a=3&label_b=0", "label_a=3 is out of range"),
    ("interpolate?seed_a=1&seed_b=2&label_a=0&label_b=-1", "label_b=-1 is out of range"),
    ("interpolate?seed_a=1&seed_b=2&label_a=0&label_b=x", "label_b='x' is not an integer"),
    ("edit?direction=sefa_0&label=3", "label=3 is out of range"),
    ("sample?truncation=0.5&label=7", "out of range"),
]


@pytest.mark.parametrize("query,fragment", BAD_UNCOND)
def test_bad_values_unconditional(uncond, query, fragment):
    assert fragment in _error(uncond.get(f"/v1/models/g:{query}"))


@pytest.mark.parametrize("query,fragment", BAD_COND)
def test_bad_values_conditional(cond, query, fragment):
    assert fragment in _error(cond.get(f"/v1/models/g:{query}"))


@pytest.mark.parametrize(
    "query,fragment",
    [
        ("steps=-1", "steps must be in [0, 2000]"),
        ("steps=2001", "steps must be in [0, 2000]"),
        ("steps=many", "steps='many' is not an integer"),
        ("label=0", "label=0 given but this model is unconditional"),
        ("iterations=3", "unknown query parameters"),
    ],
)
def test_bad_project_parameters(uncond, query, fragment):
    image = np.zeros((SIZE, SIZE, 1), np.uint8)
    assert fragment in _error(_post_png(uncond, f"/v1/models/g:project?{query}", image))


def test_methods_and_predict_limits(uncond, cond):
    assert _error(uncond.post("/v1/models/g:interpolate?seed_a=1&seed_b=2"), 405)
    assert _error(uncond.post("/v1/models/g:edit?direction=0"), 405)
    assert _error(uncond.get("/v1/models/g:project"), 405)
    # Through :predict, the control signatures' steps are bounded as well.
    body = {"signature_name": "interpolate", "inputs": {"seed_a": 1, "seed_b": 2, "steps": 10**9}}
    assert "max_batch" in _error(uncond.post("/v1/models/g:predict", json=body))
    body["inputs"]["steps"] = 3
    outputs = uncond.post("/v1/models/g:predict", json=body).get_json()["outputs"]
    assert np.array(outputs["images"]).shape == (3, SIZE, SIZE, 1)
    body = {
        "signature_name": "project",
        "inputs": {"images": np.zeros((1, SIZE, SIZE, 1), int).tolist(), "steps": 10**6},
    }
    assert "projection steps" in _error(uncond.post("/v1/models/g:predict", json=body))
    body["inputs"]["images"] = np.zeros((1, SIZE, 3, 1), int).tolist()
    body["inputs"]["steps"] = 1
    assert "[N, 8, 8, 1]" in _error(uncond.post("/v1/models/g:predict", json=body))
    body = {
        "signature_name": "interpolate",
        "inputs": {"seed_a": 1, "seed_b": 2, "steps": 3, "label_a": 0, "label_b": 5},
    }
    assert "num_classes" in _error(cond.post("/v1/models/g:predict", json=body))


def test_over_real_http(bases):
    """The endpoints through the REST server, as clients send them (curl --data-binary's form
    type)."""
    flask_app = _app(bases / "uncond")
    try:
        with helpers.RestServerThread(flask_app, threads=2) as server:
            url = f"{server.url}/v1/models/g"
            r = requests.get(url + ":interpolate?seed_a=0&seed_b=1&steps=3&format=gif", timeout=30)
            assert r.status_code == 200 and r.headers["Content-Type"] == "image/gif"
            assert len(_gif_frames(r.content)[0]) == 3
            target = sampling.sample_images(flask_app.config["REGISTRY"].current(), num=1, seed=0)[
                0
            ]
            r = requests.post(
                url + ":project?steps=50",
                data=gan_images.encode_png(target),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                timeout=60,
            )
            assert r.status_code == 200, r.text
            assert len(r.json()["z"]) == LATENT
            r = requests.get(url + ":edit?direction=bogus", timeout=30)
            assert r.status_code == 400 and "sefa_0" in r.json()["error"]
    finally:
        flask_app.config["REGISTRY"].stop()


# --- library pieces --------------------------------------------------------------------------


def test_resolve_direction_and_parsing():
    entries = [
        {"index": 0, "name": "sefa_0", "kind": "sefa"},
        {"index": 1, "name": "7", "kind": "class"},
    ]
    assert sampling.resolve_direction("sefa_0", entries) == 0
    assert sampling.resolve_direction("7", entries) == 1  # a name wins over an index
    assert sampling.resolve_direction(" 1 ", entries) == 1
    with pytest.raises(RequestError, match="sefa_0, 7"):
        sampling.resolve_direction("2", entries)
    assert sampling.resolve_direction("5", []) == 5
    with pytest.raises(RequestError, match="no directions"):
        sampling.resolve_direction("up", [])
    assert sampling.parse_floats("-3, 0,1.5", "s") == [-3.0, 0.0, 1.5]
    assert sampling.parse_int_pair("3,-7", "p") == (3, -7)
    with pytest.raises(RequestError, match="two integers"):
        sampling.parse_int_pair("3", "p")
    assert sampling.psnr_for_json(float("inf")) is None
    assert sampling.psnr_for_json(31.5) == 31.5


def test_decode_png_modes():
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    np.testing.assert_array_equal(
        image_files.decode_png(gan_images.encode_png(gray[..., None]), (8, 8, 1))[..., 0], gray
    )
    buf = io.BytesIO()
    Image.fromarray(gray > 30).save(buf, format="PNG")  # 1-bit: read as grayscale 0/255
    bits = image_files.decode_png(buf.getvalue(), (8, 8, 1))
    np.testing.assert_array_equal(bits[..., 0], np.where(gray > 30, 255, 0))
    buf = io.BytesIO()
    Image.fromarray(np.stack([gray] * 3, -1)).convert("P").save(buf, format="PNG")
    assert image_files.decode_png(buf.getvalue()).shape == (8, 8, 3)  # palette: its RGB pixels
    buf = io.BytesIO()
    Image.fromarray(gray.astype(np.uint16) * 256).save(buf, format="PNG")
    with pytest.raises(RequestError, match="8-bit"):
        image_files.decode_png(buf.getvalue())


def test_encode_gif_round_trip():
    frames = np.stack([np.full((4, 5, 1), v, np.uint8) for v in (0, 100, 100, 255)])
    decoded, gif = _gif_frames(image_files.encode_gif(frames, 70))
    # Identical consecutive frames merge into one longer frame, as GIF encoders do.
    assert [int(f[0, 0]) for f in decoded] == [0, 100, 255]
    assert decoded[0].shape == (4, 5)
    assert gif.info["duration"] == 70


# --- the command line --------------------------------------------------------------------------


def _read(path):
    return np.array(Image.open(path))


def test_cli_truncation_and_plain_sampling(bases, tmp_path):
    base = f"--model_base_path={bases / 'uncond'}"
    helpers.run_generate_cli(base, "--num=4", "--seed=5", f"--out={tmp_path / 'plain.png'}")
    helpers.run_generate_cli(
        base, "--num=4", "--seed=5", "--truncation=1", f"--out={tmp_path / 'one.png'}"
    )
    np.testing.assert_array_equal(_read(tmp_path / "one.png"), _read(tmp_path / "plain.png"))
    helpers.run_generate_cli(
        base,
        "--num=4",
        "--seed=5",
        "--truncation=0",
        f"--out={tmp_path / 'zero.png'}",
        f"--out_dir={tmp_path / 'zero'}",
    )
    images = [_read(tmp_path / "zero" / f"sample_{i:05d}.png") for i in range(4)]
    assert all(np.array_equal(image, images[0]) for image in images)
    with pytest.raises(SystemExit, match="truncation must be in"):
        helpers.run_generate_cli(base, "--truncation=1.5", f"--out={tmp_path / 'bad.png'}")


def test_cli_interpolate(bases, tmp_path):
    base = f"--model_base_path={bases / 'cond'}"
    helpers.run_generate_cli(
        base,
        "--interpolate=3,9",
        "--steps=5",
        "--label=0",
        "--label_b=2",
        f"--out={tmp_path / 'walk.gif'}",
        "--duration_ms=80",
    )
    frames, gif = _gif_frames((tmp_path / "walk.gif").read_bytes())
    model = load_model(bases / "cond")
    assert len(frames) == 5 and gif.info["duration"] == 80
    np.testing.assert_array_equal(
        frames[0], sampling.sample_images(model, num=1, seed=3, label=0)[0, ..., 0]
    )
    np.testing.assert_array_equal(
        frames[-1], sampling.sample_images(model, num=1, seed=9, label=2)[0, ..., 0]
    )
    helpers.run_generate_cli(
        base, "--interpolate=3,9", "--label=1", f"--out={tmp_path / 'walk.png'}"
    )
    assert _read(tmp_path / "walk.png").shape == (SIZE + 4, 8 * (SIZE + 2) + 2)
    with pytest.raises(Exception, match="--label is required"):
        helpers.run_generate_cli(base, "--interpolate=3,9", f"--out={tmp_path / 'x.png'}")
    with pytest.raises(SystemExit, match="label_a=5 is out of range"):
        helpers.run_generate_cli(
            base, "--interpolate=3,9", "--label=5", f"--out={tmp_path / 'x.png'}"
        )
    with pytest.raises(SystemExit, match="steps must be >= 2"):
        helpers.run_generate_cli(
            base, "--interpolate=3,9", "--label=0", "--steps=1", f"--out={tmp_path / 'x.png'}"
        )
    with pytest.raises(SystemExit, match="two integers"):
        helpers.run_generate_cli(
            base, "--interpolate=3", "--label=0", f"--out={tmp_path / 'x.png'}"
        )


def test_cli_edit(bases, tmp_path):
    base = f"--model_base_path={bases / 'uncond'}"
    helpers.run_generate_cli(
        base,
        "--edit=sefa_0",
        "--strengths=-3,0,3",
        "--seed=4",
        "--num=2",
        f"--out={tmp_path / 'edit.png'}",
    )
    grid = _read(tmp_path / "edit.png")
    assert grid.shape == (2 * (SIZE + 2) + 2, 3 * (SIZE + 2) + 2)
    samples = sampling.sample_images(load_model(bases / "uncond"), num=2, seed=4)
    np.testing.assert_array_equal(_tile(grid, 1, 1), samples[1, ..., 0])
    helpers.run_generate_cli(
        base, "--edit=0", "--strength=2", f"--out={tmp_path / 'one.png'}"
    )  # 4 rows by default
    assert _read(tmp_path / "one.png").shape == (4 * (SIZE + 2) + 2, SIZE + 4)
    with pytest.raises(SystemExit, match="sefa_0, .*towards_x"):
        helpers.run_generate_cli(base, "--edit=nope", f"--out={tmp_path / 'x.png'}")
    with pytest.raises(Exception, match="not both"):
        helpers.run_generate_cli(
            base, "--edit=0", "--strength=1", "--strengths=1,2", f"--out={tmp_path / 'x.png'}"
        )


def test_cli_project(bases, tmp_path, capsys):
    base = f"--model_base_path={bases / 'uncond'}"
    model = load_model(bases / "uncond")
    target = sampling.sample_images(model, num=1, seed=11)[0]
    gan_images.save_png(tmp_path / "photo.png", target)
    helpers.run_generate_cli(
        base,
        f"--project={tmp_path / 'photo.png'}",
        "--steps=150",
        f"--out={tmp_path / 'recon.png'}",
        f"--latent_out={tmp_path / 'z.npy'}",
    )
    assert "PSNR:" in capsys.readouterr().out
    z = np.load(tmp_path / "z.npy")
    assert z.shape == (LATENT,) and z.dtype == np.float32
    regenerated = model.run("serving_default", {"z": z[None]})["images"][0]
    np.testing.assert_array_equal(_read(tmp_path / "recon.png"), regenerated[..., 0])
    gan_images.save_png(tmp_path / "rgb.png", np.zeros((SIZE, SIZE, 3), np.uint8))
    with pytest.raises(SystemExit, match=r"must have shape \[8, 8, 1\]"):
        helpers.run_generate_cli(
            base, f"--project={tmp_path / 'rgb.png'}", f"--latent_out={tmp_path / 'z2.npy'}"
        )
    with pytest.raises(Exception, match="Nothing to write"):
        helpers.run_generate_cli(base, f"--project={tmp_path / 'photo.png'}")


def test_cli_flag_combinations(bases, tmp_path):
    base = f"--model_base_path={bases / 'uncond'}"
    for args, fragment in [
        (["--edit=0", "--interpolate=1,2"], "at most one"),
        (["--label_b=1"], "--label_b applies only with --interpolate"),
        (["--steps=3"], "--steps applies only with --interpolate or --project"),
        (["--interpolate=1,2", "--truncation=0.5"], "--truncation applies only"),
        (["--edit=0", "--latent_out=z.npy"], "--latent_out applies only with --project"),
    ]:
        with pytest.raises(Exception, match=fragment):
            helpers.run_generate_cli(base, *args, f"--out={tmp_path / 'x.png'}")


def test_cli_subprocess_walk(bases, tmp_path):
    """The real entry point, as a user runs it, writes a colour GIF."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = str(helpers.REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.generate",
            f"--model_base_path={bases / 'rgb'}",
            "--interpolate=0,1",
            "--steps=4",
            f"--out={tmp_path / 'w.gif'}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(_gif_frames((tmp_path / "w.gif").read_bytes(), channels=3)[0]) == 4
