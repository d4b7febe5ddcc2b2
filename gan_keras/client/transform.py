"""Image-to-image exports: running ``serving_default`` on checked PNGs.

Image-to-image exports (gan_keras.export.transform_model: super_resolution,
inpainting, translation) have only ``serving_default``, which maps a condition
picture (plus a mask for inpainting) to an image: `transform_png` and
`transform_files` run it on PNGs checked against ``model_info.json``'s
``inputs`` first.
"""

import pathlib

import numpy as np

from gan_keras import images as gan_images
from gan_keras.client.image_files import WrongPngShape, decode_png, shape_list, shape_text
from gan_keras.client.model import RequestError, require_signature, task_name, which_model

TRANSFORM_SIGNATURE = "serving_default"
# Images per serving_default call when transforming a folder.
TRANSFORM_BATCH = 32


def transform_input_shapes(model) -> dict[str, tuple[int, int, int] | None]:
    """serving_default's inputs: {"image": (h, w, c)} plus {"mask": (H, W, 1)} for inpainting.

    Shapes come from model_info.json's "inputs" (None when an export lacks
    them: the model's in-graph check still rejects a wrong shape).
    """
    require_signature(model, TRANSFORM_SIGNATURE)
    names = set(model.input_specs[TRANSFORM_SIGNATURE])
    if names not in ({"image"}, {"image", "mask"}):
        raise RequestError(
            f"{which_model(model)}'s {TRANSFORM_SIGNATURE} takes {sorted(names)}, not "
            "an image (and mask): it is not an image-to-image export"
        )
    declared = model.info.get("inputs") or {}
    return {
        name: tuple(int(d) for d in declared[name]) if declared.get(name) else None
        for name in sorted(names)
    }


def takes_mask(model) -> bool:
    return "mask" in transform_input_shapes(model)


def describe_transform_inputs(model) -> str:
    """What serving_default takes, e.g. 'image: a PNG of shape [8, 8, 1] (8x8 pixels, ...)'."""
    parts = []
    for name, shape in transform_input_shapes(model).items():
        text = (
            f"{name}: a PNG of shape {shape_list(shape)} ({shape_text(shape)})"
            if shape
            else f"{name}: a PNG"
        )
        if name == "mask":
            text += ", white (any value >= 128) = hole, black = keep"
        parts.append(text)
    return "; ".join(parts)


def decode_transform_png(data: bytes, shape, name: str) -> np.ndarray:
    """`decode_png` of serving_default's input `name`; every error names the expected shape."""
    expected = (
        f"; expected a PNG of shape {shape_list(shape)} ({shape_text(shape)})" if shape else ""
    )
    if not data:
        raise RequestError(f"{name} is empty{expected or '; expected a PNG'}")
    try:
        return decode_png(data, shape, name)
    except WrongPngShape:
        raise
    except RequestError as e:
        raise RequestError(f"{name}: {e}{expected}") from None


def check_transform_fields(model, given: set[str]) -> None:
    """`given` (input names) is what serving_default takes: the mask for inpainting only."""
    shapes = transform_input_shapes(model)
    task = task_name(model)
    if "mask" in shapes and "mask" not in given:
        raise RequestError(
            f"this {task} model needs a mask as well as the image ("
            f"{describe_transform_inputs(model)})"
        )
    if "mask" in given and "mask" not in shapes:
        raise RequestError(
            f"this {task} model takes no mask, only the image ({describe_transform_inputs(model)})"
        )
    if "image" not in given:
        raise RequestError(f"the image is missing ({describe_transform_inputs(model)})")


def transform_images(model, inputs: dict) -> np.ndarray:
    """serving_default on uint8 batches {"image": [N, h, w, c](, "mask": [N, H, W, 1])}:
    uint8 images [N, H, W, C]."""
    return model.run(
        TRANSFORM_SIGNATURE, {name: np.asarray(value, np.uint8) for name, value in inputs.items()}
    )["images"]


def transform_png(model, image_png: bytes, mask_png: bytes | None = None) -> bytes:
    """The output PNG for one condition PNG (and mask PNG for inpainting), both checked
    against model_info.json's "inputs" before the model runs."""
    given = {"image"} | ({"mask"} if mask_png is not None else set())
    check_transform_fields(model, given)
    shapes = transform_input_shapes(model)
    inputs = {"image": decode_transform_png(image_png, shapes["image"], "image")}
    if mask_png is not None:
        inputs["mask"] = decode_transform_png(mask_png, shapes["mask"], "mask")
    images = transform_images(model, {name: value[None] for name, value in inputs.items()})
    return gan_images.encode_png(images[0])


def _read_transform_file(path, shape, name: str) -> np.ndarray:
    try:
        data = pathlib.Path(path).read_bytes()
    except OSError as e:
        raise RequestError(f"{path}: cannot read the {name}: {e.strerror or e}") from None
    try:
        return decode_transform_png(data, shape, name)
    except RequestError as e:
        raise RequestError(f"{path}: {e}") from None


def transform_files(model, jobs, batch_size: int = TRANSFORM_BATCH) -> int:
    """Runs serving_default on PNG files; returns how many images were written.

    `jobs`: (input path, mask path or None, output path) triples. Files are
    read and checked `batch_size` at a time, in order; the first bad one
    stops the run with a RequestError naming it (outputs already written stay).
    """
    jobs = list(jobs)
    shapes = transform_input_shapes(model)
    if any(shape is None for shape in shapes.values()):
        batch_size = 1  # undeclared shapes: the files need not stack
    written = 0
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        batch = {name: [] for name in shapes}
        for image_path, mask_path, _ in chunk:
            check_transform_fields(model, {"image"} | ({"mask"} if mask_path else set()))
            batch["image"].append(_read_transform_file(image_path, shapes["image"], "image"))
            if mask_path:
                batch["mask"].append(_read_transform_file(mask_path, shapes["mask"], "mask"))
        images = transform_images(model, {name: np.stack(values) for name, values in batch.items()})
        for (_, _, out_path), image in zip(chunk, images, strict=True):
            gan_images.save_png(out_path, image)
            written += 1
    return written
