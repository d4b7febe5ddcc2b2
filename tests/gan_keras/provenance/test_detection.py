"""gan_keras.provenance.detection: which images the detector is shown, and `gan-verify --model`.

The export is a `detect` signature alone (an untrained 8x8 detector) in TF Serving's layout
with a model_info.json: all that `gan-verify --model` reads.
"""

import io
import json

import keras
import numpy as np
import pytest
from PIL import Image

from gan_keras import images as gan_images
from gan_keras.export import detect_signature, layout
from gan_keras.provenance import detection
from gan_keras.provenance import detector as detector_lib
from gan_keras.provenance.cli import main

SHAPE = (8, 8, 1)
PIXELS = np.random.default_rng(0).integers(0, 256, SHAPE, dtype=np.uint8)


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    base = tmp_path_factory.mktemp("detection") / "generator"
    model = detector_lib.build_detector(SHAPE, seed=7)
    archive = keras.export.ExportArchive()
    detect_signature.add_detect_endpoint(archive, model, SHAPE)
    info = {"image_shape": list(SHAPE), "signatures": ["detect"]}
    layout.write_version(
        lambda path: archive.write_out(str(path), verbose=False),
        base,
        {layout.MODEL_INFO_ASSET: json.dumps(info)},
    )
    return model, base


def _encoded(array, fmt="PNG", mode=None):
    buffer = io.BytesIO()
    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    (image.convert(mode) if mode else image).save(buffer, format=fmt)
    return buffer.getvalue()


def test_images_of_the_models_shape_are_decoded_and_others_are_not():
    image, why = detection.decode_for_detector(gan_images.encode_png(PIXELS), SHAPE)
    assert why is None and image.shape == (1, *SHAPE)
    np.testing.assert_array_equal(image[0], PIXELS)
    # A grayscale image stored as RGB (or RGBA, or as a GIF's palette) is the same image.
    for data in [
        _encoded(PIXELS, mode="RGB"),
        _encoded(PIXELS, mode="RGBA"),
        _encoded(PIXELS, "GIF"),
    ]:
        again, why = detection.decode_for_detector(data, SHAPE)
        assert why is None
        np.testing.assert_array_equal(again, image)
    colour = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    for data, shape in [
        (_encoded(colour), "8x8x3"),
        (gan_images.encode_png(np.zeros((16, 8, 1), np.uint8)), "16x8x1"),
    ]:
        image, why = detection.decode_for_detector(data, SHAPE)
        assert image is None and why.startswith(f"not applicable: shape {shape}"), why
    image, why = detection.decode_for_detector(b"GIF89a not really", SHAPE)
    assert image is None and why.startswith("not applicable: the image cannot be decoded")


def test_the_detector_is_asked_only_without_valid_credentials():
    calls = []

    def run_detect(images):
        calls.append(images.shape)
        return np.array([0.25])

    info = {"image_shape": list(SHAPE), "signatures": ["detect"]}
    png = gan_images.encode_png(PIXELS)
    for status in ("none", "unsigned", "invalid"):
        report = detection.add_detector_report({"status": status}, png, info, run_detect, "g", 2)
        assert report["detector"] == {"probability": 0.25, "model": "g", "version": 2}
    assert calls == [(1, *SHAPE)] * 3
    signed = detection.add_detector_report({"status": "signed"}, png, info, run_detect, "g", 2)
    assert "detector" not in signed and len(calls) == 3
    old = detection.add_detector_report(
        {"status": "none"}, png, {"image_shape": list(SHAPE)}, run_detect, "g", 2
    )
    assert old["detector"]["probability"] is None
    assert "no detect signature" in old["detector"]["not_applicable"]


def test_gan_verify_with_a_model_reports_the_detectors_probability(export, tmp_path, capsys):
    model, base = export
    path = tmp_path / "plain.png"
    path.write_bytes(gan_images.encode_png(PIXELS))
    expected = detector_lib.probabilities(model, PIXELS[None])[0]
    assert main([str(path), f"--model={base}", "--json"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert report["detector"]["probability"] == pytest.approx(expected, rel=1e-5)
    assert (report["detector"]["model"], report["detector"]["version"]) == ("generator", 1)
    # The version directory works too, and the line says what the detector found.
    assert main([str(path), f"--model={base / '1'}"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{path}: no provenance")
    assert line.endswith(
        f"detector: probability {expected:.3f} that model generator version 1 made it"
    )
    assert main([str(path), f"--model={tmp_path / 'none'}"]) == 2
    assert "--model" in capsys.readouterr().err
