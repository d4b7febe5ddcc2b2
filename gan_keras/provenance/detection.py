"""The detector's part of a verify report: did this model make an image that carries no
credentials?

`:verify` (gan_keras.serving.app) and `gan-verify --model` (gan_keras.provenance.cli) add
a "detector" entry to gan_keras.provenance.verify's report (`add_detector_report`) when the
image carries no valid credentials:

    {"probability": p, "model": name, "version": v}
        p: the export's `detect` signature's probability that this model made the image
    {"probability": None, "model": name, "version": v, "not_applicable": why}
        when it cannot answer: the export has no `detect` signature, or the image's shape is
        not the model's ("not applicable: shape ...")

Why only without valid credentials: a signature that validates says who made the image with
certainty (and its report has no "detector"); the detector only estimates. An image whose
credentials are invalid (changed pixels) is checked.

The decoded image must have exactly the model's height, width and channels: nothing is
resized (a resized image is another image; the reported AUCs say how the detector fares on
those). A 1-channel model takes grayscale images, and colour ones whose three channels are
equal (a grayscale image saved as RGB); transparency is dropped; a GIF's first frame is read.

`run_detect(images uint8 [1, H, W, C]) -> probabilities [1]` is the caller's: the server's
(its loaded version, through its batcher), or `load_exported(path)`'s for gan-verify, the one
function here that imports TensorFlow (when called).
"""

import io
import json
import pathlib

import numpy as np
from PIL import Image, UnidentifiedImageError

from gan_keras.export import layout
from gan_keras.export.detect_signature import DETECT_INPUT, DETECT_OUTPUT, DETECT_SIGNATURE

_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def decode_for_detector(data: bytes, image_shape) -> tuple[np.ndarray | None, str | None]:
    """(uint8 [1, H, W, C] image, None), or (None, why not) when `data` is not an image of
    `image_shape` (H, W, C)."""
    height, width, channels = (int(d) for d in image_shape)
    want = f"{height}x{width}x{channels}"
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.seek(0)
            mode = image.mode
            if mode in _GRAY_MODES:
                pixels = np.asarray(image.convert("L"), np.uint8)[..., None]
            else:
                pixels = np.asarray(image.convert("RGB"), np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, EOFError) as e:
        return None, f"not applicable: the image cannot be decoded ({e})"
    if (
        channels == 1
        and pixels.shape[-1] == 3
        and np.array_equal(pixels[..., 0], pixels[..., 1])
        and np.array_equal(pixels[..., 0], pixels[..., 2])
    ):
        pixels = pixels[..., :1]  # a grayscale image stored as RGB
    got = "x".join(str(d) for d in pixels.shape)
    if pixels.shape != (height, width, channels):
        return None, (
            f"not applicable: shape {got} (height x width x channels, mode {mode}); the model "
            f"makes {want} images, and the detector is not run on other sizes or channels"
        )
    return pixels[None], None


def add_detector_report(
    report: dict, data: bytes, model_info: dict, run_detect, name: str, version
) -> dict:
    """`report` (gan_keras.provenance.verify's, for image bytes `data`) with its "detector"
    entry, unless the image has valid credentials (then `report` is returned unchanged: they
    already say who made it). `model_info` is the export's model_info.json (image_shape,
    signatures); `run_detect` as the module docstring says."""
    if report.get("status") == "signed":
        return report
    entry = {"probability": None, "model": name, "version": version}
    if DETECT_SIGNATURE not in (model_info.get("signatures") or []):
        entry["not_applicable"] = (
            f"not applicable: this export has no {DETECT_SIGNATURE} signature (exported "
            "without the evaluate stage's detector)"
        )
    else:
        image, why = decode_for_detector(data, model_info["image_shape"])
        if image is None:
            entry["not_applicable"] = why
        else:
            entry["probability"] = float(np.asarray(run_detect(image)).reshape(-1)[0])
    report["detector"] = entry
    return report


def summary_suffix(entry: dict) -> str:
    """A clause for a one-line summary: what the detector says, or why it says nothing."""
    if not entry:
        return "detector: not run (valid content credentials)"
    if entry.get("probability") is None:
        return f"detector: {entry.get('not_applicable')}"
    return (
        f"detector: probability {entry['probability']:.3f} that model {entry['model']} version "
        f"{entry['version']} made it"
    )


def load_exported(path) -> tuple:
    """(run_detect, model_info, name, version) of an exported model: `path` is a version
    directory (holding saved_model.pb) or a model base path (its highest version). The name is
    the base path's directory name, as the provenance facts record it. Raises OSError or
    ValueError when there is no export there."""
    path = pathlib.Path(path)
    version_dir = path if (path / layout.SAVED_MODEL_FILE).is_file() else layout.version_dir(path)
    if not (version_dir / layout.SAVED_MODEL_FILE).is_file():
        raise ValueError(f"{version_dir} holds no {layout.SAVED_MODEL_FILE}")
    info_path = layout.asset_path(version_dir, layout.MODEL_INFO_ASSET)
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    version = int(version_dir.name) if layout.is_version_name(version_dir.name) else None
    import tensorflow as tf

    loaded = tf.saved_model.load(str(version_dir))
    signature = loaded.signatures.get(DETECT_SIGNATURE)

    def run_detect(images):
        outputs = signature(**{DETECT_INPUT: tf.constant(images, tf.uint8)})
        return outputs[DETECT_OUTPUT].numpy()

    run_detect.loaded = loaded  # keeps the SavedModel alive as long as the function
    if signature is None:  # model_info.json decides; make both agree on an odd export
        info = {**info, "signatures": [s for s in info.get("signatures", []) if s != "detect"]}
    return run_detect, info, version_dir.parent.name, version
