"""Image-to-image models over REST (:transform) and the CLI (--input, --input_dir), and the
sampling endpoints and flags refusing them (and :transform / --input refusing sampling models)."""

import io
import os
import subprocess
import sys

import helpers
import ml_collections
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from gan_keras import images as gan_images
from gan_keras.export import sampling_model as gan_export
from gan_keras.export import transform_model
from gan_keras.models import pix2pix
from gan_keras.serving import app as serving_app

# Real servers and CLI subprocesses over exported task models.
pytestmark = pytest.mark.slow

SIZE = 16  # output images
LOW = 8  # super_resolution's input (scale 2)
URL = "/v1/models/g:transform"


def _task(name: str) -> ml_collections.ConfigDict:
    """configs/default.py's task section for `name` (scale 2: 8x8 -> 16x16)."""
    return helpers.task_config(name, scale=2)


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("transform")
    sr = pix2pix.build_unet_generator(
        condition_shape=(LOW, LOW, 1), image_shape=(SIZE, SIZE, 1), width=8
    )
    transform_model.export_image_to_image(sr, root / "sr", task_config=_task("super_resolution"))
    inpaint = pix2pix.build_unet_generator(
        condition_shape=(SIZE, SIZE, 4), image_shape=(SIZE, SIZE, 3), width=8, inpainting=True
    )
    transform_model.export_image_to_image(
        inpaint, root / "inpaint", task_config=_task("inpainting")
    )
    gan_export.export_generator(helpers.tiny_generator(False), root / "sample", latent_dim=8)
    return root


@pytest.fixture(scope="module")
def apps(bases):
    made = {
        name: serving_app.create_app(bases / name, "g", max_batch=8, poll_seconds=0)
        for name in ("sr", "inpaint", "sample")
    }
    yield made
    for flask_app in made.values():
        flask_app.config["REGISTRY"].stop()


@pytest.fixture(scope="module")
def clients(apps):
    return {name: flask_app.test_client() for name, flask_app in apps.items()}


_LOADED: dict = {}


def _run(apps, name, **inputs):
    """The expected output, from outside the server: the exported version's serving_default
    signature, loaded with TensorFlow alone (not the server's Servable, which the endpoint uses)."""
    if name not in _LOADED:
        version_dir = apps[name].config["REGISTRY"].current().path
        _LOADED[name] = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    outputs = _LOADED[name](**{k: tf.constant(v[None]) for k, v in inputs.items()})
    return outputs["images"].numpy()[0]


def _png_bytes(pixels) -> bytes:
    return gan_images.encode_png(np.asarray(pixels, np.uint8))


def _png(response, shape):
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "image/png"
    assert response.headers["X-Model-Version"] == "1"
    image = np.array(Image.open(io.BytesIO(response.data)))
    assert image.shape == shape
    return image


def _error(response, status=400):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    return response.get_json()["error"]


def _form(**files):
    return {"data": {name: (io.BytesIO(data), f"{name}.png") for name, data in files.items()}}


RNG = np.random.default_rng(0)
LOW_IMAGE = RNG.integers(0, 256, (LOW, LOW, 1), dtype=np.uint8)
RGB_IMAGE = RNG.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
MASK = np.zeros((SIZE, SIZE, 1), np.uint8)
MASK[4:10, 5:12] = 255
MASK[0, 0], MASK[0, 1] = 130, 127  # >= 128 is hole, < 128 is kept


# --- :transform ----------------------------------------------------------------------------


def test_transform_super_resolution(apps, clients):
    client = clients["sr"]
    expected = _run(apps, "sr", image=LOW_IMAGE)[..., 0]
    raw = client.post(URL, data=_png_bytes(LOW_IMAGE), content_type="image/png")
    np.testing.assert_array_equal(_png(raw, (SIZE, SIZE)), expected)
    # The same through a version path, and as a one-field form.
    versioned = client.post(
        "/v1/models/g/versions/1:transform", **_form(image=_png_bytes(LOW_IMAGE))
    )
    np.testing.assert_array_equal(_png(versioned, (SIZE, SIZE)), expected)


def test_transform_inpainting_keeps_known_pixels(apps, clients):
    response = clients["inpaint"].post(
        URL, **_form(image=_png_bytes(RGB_IMAGE), mask=_png_bytes(MASK))
    )
    out = _png(response, (SIZE, SIZE, 3))
    keep = MASK[..., 0] < 128
    np.testing.assert_array_equal(out[keep], RGB_IMAGE[keep])
    binary = np.where(MASK >= 128, 255, 0).astype(np.uint8)
    np.testing.assert_array_equal(out, _run(apps, "inpaint", image=RGB_IMAGE, mask=binary))


def test_transform_rejects_bad_input_before_running(clients):
    sr, inpaint = clients["sr"], clients["inpaint"]
    gray_16 = _png_bytes(np.zeros((SIZE, SIZE, 1)))
    rgb_8 = _png_bytes(np.zeros((LOW, LOW, 3)))
    for data in (gray_16, rgb_8, b"not a png", b""):
        message = _error(sr.post(URL, data=data, content_type="image/png"))
        assert "[8, 8, 1]" in message, message
    assert "got [8, 8, 3]" in _error(sr.post(URL, data=rgb_8, content_type="image/png"))
    assert ":predict" in _error(
        sr.post(URL, data=b'{"instances": []}', content_type="application/json")
    )
    assert "takes no mask" in _error(
        sr.post(URL, **_form(image=_png_bytes(LOW_IMAGE), mask=_png_bytes(MASK)))
    )
    assert "no query parameters" in _error(sr.post(URL + "?steps=3", data=rgb_8))
    assert sr.get(URL).status_code == 405
    assert _error(sr.post(URL, data=b"\0" * (3 * 1024 * 1024), content_type="image/png"), 413)

    image, mask = _png_bytes(RGB_IMAGE), _png_bytes(MASK)
    for response in (
        inpaint.post(URL, data=image, content_type="image/png"),
        inpaint.post(URL, **_form(image=image)),
    ):
        message = _error(response)
        assert "needs a mask" in message and "[16, 16, 1]" in message, message
    rgba = _png_bytes(np.concatenate([RGB_IMAGE, 255 - MASK], axis=-1))  # alpha is not the mask
    for files, fragment in [
        (
            {"image": image, "mask": _png_bytes(np.zeros((SIZE, SIZE, 3)))},
            "mask must have shape [16, 16, 1]",
        ),
        (
            {"image": _png_bytes(RGB_IMAGE[..., :1]), "mask": mask},
            "image must have shape [16, 16, 3]",
        ),
        ({"image": rgba, "mask": mask}, "image must have shape [16, 16, 3]"),
        ({"image": image, "mask": b"GIF89a"}, "expected a PNG of shape [16, 16, 1]"),
        ({"mask": mask}, "'image' is missing"),
        ({"image": image, "mask": mask, "extra": mask}, "unknown form fields ['extra']"),
    ]:
        message = _error(inpaint.post(URL, **_form(**files)))
        assert fragment in message, message


def test_endpoints_refuse_the_other_kind_of_model(clients):
    message = _error(
        clients["sample"].post(URL, data=_png_bytes(np.zeros((8, 8, 1))), content_type="image/png")
    )
    assert ":transform is for image-to-image models" in message, message
    sr = clients["sr"]
    for response in (
        sr.get("/v1/models/g:sample?n=2"),
        sr.get("/v1/models/g:interpolate?seed_a=1&seed_b=2"),
        sr.get("/v1/models/g:edit?direction=0"),
        sr.post(
            "/v1/models/g:project",
            data=_png_bytes(np.zeros((SIZE, SIZE, 1))),
            content_type="image/png",
        ),
    ):
        message = _error(response)
        assert "is for sampling models" in message and ":transform" in message, message
    # :predict on serving_default works as for any model.
    response = sr.post("/v1/models/g:predict", json={"instances": [LOW_IMAGE.tolist()]})
    assert response.status_code == 200, response.get_data(as_text=True)


# --- the command line --------------------------------------------------------------------------


def _read(path):
    return np.array(Image.open(path))


def test_cli_transform(apps, bases, tmp_path):
    sr, inpaint = f"--model_base_path={bases / 'sr'}", f"--model_base_path={bases / 'inpaint'}"
    gan_images.save_png(tmp_path / "low.png", LOW_IMAGE)
    helpers.run_generate_cli(
        sr, f"--input={tmp_path / 'low.png'}", f"--out={tmp_path / 'high.png'}"
    )
    np.testing.assert_array_equal(
        _read(tmp_path / "high.png"), _run(apps, "sr", image=LOW_IMAGE)[..., 0]
    )

    inputs, masks = tmp_path / "in", tmp_path / "masks"
    for i in range(3):
        gan_images.save_png(inputs / f"im{i}.png", np.roll(RGB_IMAGE, i, axis=0))
        gan_images.save_png(masks / f"im{i}.png", np.roll(MASK, i, axis=1))
    gan_images.save_png(tmp_path / "mask.png", MASK)
    helpers.run_generate_cli(
        inpaint,
        f"--input={inputs / 'im0.png'}",
        f"--mask={tmp_path / 'mask.png'}",
        f"--out={tmp_path / 'filled.png'}",
    )
    filled = _read(tmp_path / "filled.png")
    np.testing.assert_array_equal(filled[MASK[..., 0] < 128], RGB_IMAGE[MASK[..., 0] < 128])
    helpers.run_generate_cli(
        inpaint, f"--input_dir={inputs}", f"--mask_dir={masks}", f"--out_dir={tmp_path / 'out'}"
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["im0.png", "im1.png", "im2.png"]
    np.testing.assert_array_equal(_read(tmp_path / "out" / "im0.png"), filled)
    keep = np.roll(MASK, 2, axis=1)[..., 0] < 128
    np.testing.assert_array_equal(
        _read(tmp_path / "out" / "im2.png")[keep], np.roll(RGB_IMAGE, 2, axis=0)[keep]
    )


def test_cli_transform_errors(bases, tmp_path):
    sr, inpaint = f"--model_base_path={bases / 'sr'}", f"--model_base_path={bases / 'inpaint'}"
    sample = f"--model_base_path={bases / 'sample'}"
    gan_images.save_png(tmp_path / "big.png", np.zeros((SIZE, SIZE, 1), np.uint8))
    gan_images.save_png(tmp_path / "low.png", LOW_IMAGE)
    gan_images.save_png(tmp_path / "rgb.png", RGB_IMAGE)
    out = f"--out={tmp_path / 'x.png'}"
    for args, fragment in [
        ([sr, f"--input={tmp_path / 'big.png'}", out], r"image must have shape \[8, 8, 1\]"),
        (
            [sr, f"--input={tmp_path / 'low.png'}", f"--mask={tmp_path / 'big.png'}", out],
            "--mask is for inpainting models",
        ),
        ([inpaint, f"--input={tmp_path / 'rgb.png'}", out], r"needs a mask.*\[16, 16, 1\]"),
        (
            [inpaint, f"--input={tmp_path / 'rgb.png'}", f"--mask={tmp_path / 'rgb.png'}", out],
            r"mask must have shape \[16, 16, 1\]",
        ),
        ([sr, "--num=4", out], r"--num is for sampling models.*--input=in.png"),
        ([sr, out], r"image-to-image model \(task super_resolution\)"),
        ([sr, "--interpolate=1,2", out], "--interpolate is for sampling models"),
        ([sample, f"--input={tmp_path / 'low.png'}", out], "--input is for image-to-image"),
    ]:
        with pytest.raises(SystemExit, match=fragment):
            helpers.run_generate_cli(*args)
    for args, fragment in [
        ([sr, f"--input={tmp_path / 'low.png'}", "--num=4", out], "--num is for sampling"),
        ([sr, f"--input={tmp_path / 'low.png'}"], "--input needs --out"),
        ([sr, f"--input_dir={tmp_path}"], "--input_dir needs --out_dir"),
        ([sr, f"--mask={tmp_path / 'low.png'}", out], "--mask applies only with --input"),
    ]:
        with pytest.raises(Exception, match=fragment):
            helpers.run_generate_cli(*args)


def test_cli_subprocess_error_is_one_line(bases, tmp_path):
    """The real entry point: exit status 1 and one line naming the expected shape."""
    gan_images.save_png(tmp_path / "rgb.png", np.zeros((LOW, LOW, 3), np.uint8))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = str(helpers.REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.generate",
            f"--model_base_path={bases / 'sr'}",
            f"--input={tmp_path / 'rgb.png'}",
            f"--out={tmp_path / 'x.png'}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("pipeline.generate: ") and "must have shape [8, 8, 1]" in last, last
    assert not (tmp_path / "x.png").exists()
