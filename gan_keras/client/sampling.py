"""Images from an exported generator's signatures: samples, walks, edits, projections.

Only TensorFlow and the SavedModel are needed: the training code is not
imported. The same seed (and version) always gives the same images.

The functions taking a ``model`` work on anything with ``run(signature_name,
inputs) -> {name: ndarray}``, ``signatures``, ``input_specs`` ({signature:
{input: TensorSpec}}) and ``info`` (model_info.json): a `LoadedModel` here
(the command line, pipeline.generate) or a loaded version of the model server
(gan_keras.serving.versions.Servable), so both give the same images. Bad
arguments raise `RequestError` (a ValueError), which the server answers with
HTTP 400. Also here: the GIF / strip / grid encodings and the lookup of edit
directions by name in ``assets.extra/directions.json``.

Image-to-image exports (gan_keras.export.transform_model: super_resolution,
inpainting, translation) have only ``serving_default``, which maps a condition
picture (plus a mask for inpainting) to an image: `transform_png` and
`transform_files` run it on PNGs checked against ``model_info.json``'s
``inputs`` first. `require_sampling_model` / `require_image_to_image` reject
the other kind of model with a message saying what to use instead.
"""

import io
import json
import logging
import math
import pathlib

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from gan_keras import images as gan_images
from gan_keras.export import layout
from gan_keras.storage import atomic

DEFAULT_INTERPOLATION_STEPS = 8
DEFAULT_PROJECT_STEPS = 200
DEFAULT_GIF_FRAME_MS = 100
DEFAULT_EDIT_STRENGTHS = (-3.0, -1.5, 0.0, 1.5, 3.0)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class RequestError(ValueError):
    """An argument the model cannot take (a client error: HTTP 400 in the server)."""


class _WrongShape(RequestError):
    """A PNG that decodes but has another size or channel count than expected."""


# --- a SavedModel version loaded for the command line ---------------------------------


def clean_tf_message(message: str) -> str:
    """The assertion line of an in-graph check's error (or its first meaningful line): graph
    errors wrap it in "Graph execution error", the node and a stack trace."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    for line in lines:
        if line.startswith("assertion failed:"):
            return line
    noise = ("Graph execution error", "Detected at node", "<stack traces", "[[{{node")
    useful = [line for line in lines if not line.startswith(noise)]
    return (useful or lines or ["invalid argument"])[0]


class LoadedModel:
    """One version of an exported generator, with the same interface as the server's Servable."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self._model = tf.saved_model.load(str(self.path))
        self.signatures = dict(self._model.signatures.items())
        self.input_specs = {
            name: dict(fn.structured_input_signature[1]) for name, fn in self.signatures.items()
        }
        info_path = layout.asset_path(self.path, layout.MODEL_INFO_ASSET)
        self.info = json.loads(info_path.read_text()) if info_path.exists() else {}
        self.num_classes = int(self.info.get("num_classes", 0))

    def run(self, signature_name: str, inputs: dict) -> dict:
        require_signature(self, signature_name)
        fn = self.signatures[signature_name]
        try:
            outputs = fn(**{k: tf.constant(v) for k, v in inputs.items()})
        except tf.errors.InvalidArgumentError as e:
            # In-graph checks (e.g. a label out of range) report "assertion failed: [...]".
            raise RequestError(
                f"{self.path} rejected the request: {clean_tf_message(e.message)}"
            ) from None
        return {k: v.numpy() for k, v in outputs.items()}


def load_model(model_base_path, version: int | None = None) -> LoadedModel:
    """The given version (default: the highest) under `model_base_path`."""
    return LoadedModel(layout.version_dir(model_base_path, version))


def _where(model) -> str:
    # The server's versions say which version; the command line names the directory.
    version = getattr(model, "version", None)
    return f"version {version}" if version is not None else str(model.path)


def require_signature(model, name: str) -> None:
    if name not in model.signatures:
        raise RequestError(
            f"{_where(model)} has no '{name}' signature (has {sorted(model.signatures)})"
        )


def takes_label(model, signature_name: str = "sample") -> bool:
    """Whether a signature takes labels ("label", or interpolate's "label_a" and "label_b")."""
    require_signature(model, signature_name)
    return any(
        name == "label" or name.startswith("label_") for name in model.input_specs[signature_name]
    )


def image_shape(model) -> tuple[int, int, int] | None:
    """(H, W, C) from model_info.json, or None for an export without it."""
    shape = model.info.get("image_shape")
    return tuple(int(d) for d in shape) if shape else None


def check_label(
    model,
    label: int | None,
    name: str = "label",
    *,
    required: bool = False,
    signature_name: str = "sample",
) -> None:
    """A label suits the model: none for unconditional ones, in range for conditional ones."""
    if not takes_label(model, signature_name):
        if label is not None:
            raise RequestError(
                f"{name}={label} given but this model is unconditional: it takes no label"
            )
        return
    if label is None:
        if required:
            raise RequestError(f"{name} is required: this model is conditional")
        return
    num_classes = getattr(model, "num_classes", 0)
    if label < 0 or (num_classes and label >= num_classes):
        raise RequestError(
            f"{name}={label} is out of range: this model has {num_classes} "
            f"classes (0..{num_classes - 1})"
        )


# --- the signatures -----------------------------------------------------------------


def _sample_inputs(model, signature_name, num, seed, label):
    inputs = {"num_samples": np.int32(num), "seed": np.int64(seed)}
    if takes_label(model, signature_name):
        inputs["label"] = np.array([] if label is None else [label], np.int32)
    elif label is not None:
        raise RequestError(
            f"label={label} given but this model is unconditional: it takes no label"
        )
    return inputs


def _check_truncation(truncation: float) -> float:
    truncation = float(truncation)
    if not 0.0 <= truncation <= 1.0:  # NaN fails too
        raise RequestError(f"truncation must be in [0, 1], got {truncation}")
    return truncation


def sample_images(
    model, *, num: int, seed: int, label: int | None = None, truncation: float | None = None
) -> np.ndarray:
    """`num` uint8 images [num, H, W, C]: ``sample``, or ``truncated_sample`` with psi = truncation.

    A conditional model takes `label` for every image or None for labels
    drawn from the seed.
    """
    if num < 1:
        raise RequestError(f"num must be >= 1, got {num}")
    if truncation is None:
        return model.run("sample", _sample_inputs(model, "sample", num, seed, label))["images"]
    inputs = _sample_inputs(model, "truncated_sample", num, seed, label)
    inputs["truncation"] = np.float32(_check_truncation(truncation))
    return model.run("truncated_sample", inputs)["images"]


def control_space(model) -> str:
    """The latents ``project`` returns and ``edit`` takes: "z", or "w" for a generator with a
    mapping network (model_info.json's "control_space"; exports before it are "z")."""
    return (model.info.get("control_space") or {}).get("name", "z")


def sample_latents(
    model, *, num: int, seed: int, label: int | None = None, truncation: float = 1.0
) -> tuple[np.ndarray, np.ndarray | None]:
    """(latents [num, dim], labels [num] or None): ``sample``'s latents in the model's
    `control_space`, truncated by psi (in w-space, the truncated w its images come from).

    With psi = 1 these are exactly the latents behind ``sample(num, seed, label)``.
    """
    if num < 1:
        raise RequestError(f"num must be >= 1, got {num}")
    inputs = _sample_inputs(model, "truncated_sample", num, seed, label)
    inputs["truncation"] = np.float32(_check_truncation(truncation))
    out = model.run("truncated_sample", inputs)
    return out[control_space(model)], out.get("label")


def interpolate_images(
    model,
    *,
    seed_a: int,
    seed_b: int,
    steps: int,
    label_a: int | None = None,
    label_b: int | None = None,
) -> np.ndarray:
    """`steps` uint8 images [steps, H, W, C] from sample(seed_a) to sample(seed_b) (slerp).

    Conditional models need both labels; the first and last images are
    exactly ``sample(1, seed_a, [label_a])`` and ``sample(1, seed_b, [label_b])``.
    """
    if steps < 2:
        raise RequestError(f"steps must be >= 2 (the two end points), got {steps}")
    inputs = {"seed_a": np.int64(seed_a), "seed_b": np.int64(seed_b), "steps": np.int32(steps)}
    if takes_label(model, "interpolate"):
        for name, value in (("label_a", label_a), ("label_b", label_b)):
            check_label(model, value, name, required=True, signature_name="interpolate")
            inputs[name] = np.int32(value)
    else:
        for name, value in (("label_a", label_a), ("label_b", label_b)):
            check_label(model, value, name, signature_name="interpolate")
    return model.run("interpolate", inputs)["images"]


def edit_images(
    model,
    *,
    num: int,
    seed: int,
    direction: int,
    strengths,
    label: int | None = None,
    truncation: float | None = None,
) -> np.ndarray:
    """uint8 images [num, len(strengths), H, W, C]: sample i moved by each strength.

    The latents are ``sample``'s for `seed` (truncated when `truncation` is
    given), so strength 0 gives ``sample(num, seed, label)``'s images; a
    conditional model keeps each sample's label (drawn from the seed when
    `label` is None).
    """
    strengths = [float(s) for s in strengths]
    if not strengths:
        raise RequestError("strengths must hold at least one value")
    bad = [s for s in strengths if not _finite_float32(s)]
    if bad:
        raise RequestError(f"strengths must be finite float32 values, got {bad[0]}")
    require_signature(model, "edit")
    z, labels = sample_latents(
        model, num=num, seed=seed, label=label, truncation=1.0 if truncation is None else truncation
    )
    rows = []
    for strength in strengths:
        inputs = {
            control_space(model): z,
            "direction": np.int32(direction),
            "strength": np.float32(strength),
        }
        if takes_label(model, "edit"):
            inputs["label"] = labels.astype(np.int32)
        rows.append(model.run("edit", inputs)["images"])
    return np.stack(rows, axis=1)


def project_image(
    model, image: np.ndarray, *, steps: int = DEFAULT_PROJECT_STEPS, label: int | None = None
) -> dict:
    """Fits a latent to one uint8 image [H, W, C] with the ``project`` signature.

    Returns {"z" (or "w", the model's `control_space`): [dim] float32, "reconstruction":
    uint8 [H, W, C], "psnr": float dB (inf for a pixel-exact reconstruction)}.
    """
    if steps < 0:
        raise RequestError(f"steps must be >= 0, got {steps}")
    inputs = {"images": np.asarray(image, np.uint8)[None], "steps": np.int32(steps)}
    if takes_label(model, "project"):
        check_label(model, label, required=True, signature_name="project")
        inputs["label"] = np.array([label], np.int32)
    else:
        check_label(model, label, signature_name="project")
    out = model.run("project", inputs)
    return {
        control_space(model): out[control_space(model)][0],
        "reconstruction": out["reconstructions"][0],
        "psnr": float(out["psnr"][0]),
    }


# --- edit directions ------------------------------------------------------------------


def load_directions(model_dir) -> list[dict]:
    """The entries of ``assets.extra/directions.json`` ([] for an export without one)."""
    path = layout.asset_path(model_dir, layout.DIRECTIONS_ASSET)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []


def resolve_direction(spec, entries: list[dict]) -> int:
    """The index of a direction given by name or index (a name wins if one is all digits)."""
    spec = str(spec).strip()
    by_name = {entry["name"]: int(entry["index"]) for entry in entries}
    if spec in by_name:
        return by_name[spec]
    try:
        index = int(spec)
    except ValueError:
        index = None
    if index is not None and 0 <= index and (not entries or index < len(entries)):
        return index
    if entries:
        names = ", ".join(entry["name"] for entry in entries)
        raise RequestError(
            f"unknown direction {spec!r}: this model's directions are {names} "
            f"(or their index, 0..{len(entries) - 1})"
        )
    raise RequestError(
        f"unknown direction {spec!r}: this model lists no directions "
        f"({layout.DIRECTIONS_ASSET} is missing), so give an index >= 0"
    )


# --- parsing --------------------------------------------------------------------------


def _finite_float32(value: float) -> bool:
    return math.isfinite(value) and abs(value) <= float(np.finfo(np.float32).max)


def parse_floats(text: str, name: str) -> list[float]:
    """'-3,-1.5,0' -> [-3.0, -1.5, 0.0]; finite float32 values only."""
    values = []
    for part in str(text).split(","):
        try:
            value = float(part)
        except ValueError:
            raise RequestError(
                f"{name}={text!r}: {part.strip()!r} is not a number (give comma-separated numbers)"
            ) from None
        if not _finite_float32(value):
            raise RequestError(f"{name}={text!r}: values must be finite float32 numbers")
        values.append(value)
    return values


def parse_int_pair(text: str, name: str) -> tuple[int, int]:
    """'3,7' -> (3, 7)."""
    parts = str(text).split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return int(parts[0]), int(parts[1])
    except ValueError:
        raise RequestError(f"{name}={text!r} must be two integers, A,B") from None


# --- encodings ------------------------------------------------------------------------

_CHANNEL_NAMES = {1: "grayscale", 2: "grayscale + alpha", 3: "RGB", 4: "RGBA"}


def _shape_text(shape) -> str:
    h, w, c = shape
    return f"{w}x{h} pixels, {c} channel{'s' if c != 1 else ''} ({_CHANNEL_NAMES.get(c, '?')})"


def _shape_list(shape) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def decode_png(data: bytes, expected_shape=None, name: str = "image") -> np.ndarray:
    """An 8-bit PNG's pixels, uint8 [H, W, C], which must be `expected_shape` when given.

    Nothing is resized or converted between grayscale and colour: a wrong
    size or channel count is an error naming the expected [H, W, C] (and
    `name`, the input it is for). (1-bit and palette PNGs are read as the
    grayscale or RGB(A) pixels they hold.)
    """
    if not data:
        raise RequestError("empty image: expected a PNG")
    if not data.startswith(PNG_SIGNATURE):
        raise RequestError("not a PNG image (the data does not start with the PNG signature)")
    try:
        image = Image.open(io.BytesIO(data))
        mode = image.mode
        if mode == "1":
            channels = 1
        elif mode == "P":
            channels = 4 if "transparency" in image.info else 3
        elif mode in ("L", "LA", "RGB", "RGBA"):
            channels = len(mode)
        else:
            raise RequestError(
                f"unsupported PNG pixel format {mode!r}: use 8-bit grayscale or RGB(A)"
            )
        got = (image.height, image.width, channels)
        if expected_shape is not None and got != tuple(expected_shape):
            raise _WrongShape(
                f"{name} must have shape {_shape_list(expected_shape)} "
                f"({_shape_text(expected_shape)}), got {_shape_list(got)} ({_shape_text(got)}); "
                "it is not resized or converted"
            )
        image.load()
        if mode == "1":
            image = image.convert("L")
        elif mode == "P":
            image = image.convert("RGBA" if channels == 4 else "RGB")
    except RequestError:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
    ) as e:
        raise RequestError(f"could not decode the PNG: {e}") from None
    pixels = np.asarray(image, np.uint8)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def read_png(path, expected_shape=None, name: str = "image") -> np.ndarray:
    """`decode_png` of a file; errors name the file."""
    try:
        return decode_png(pathlib.Path(path).read_bytes(), expected_shape, name)
    except RequestError as e:
        raise RequestError(f"{path}: {e}") from None


def strip_png(images: np.ndarray) -> bytes:
    """PNG of images [N, H, W, C] in one row (2-pixel padding, as the sample grids)."""
    return gan_images.encode_png(gan_images.make_grid(images, rows=1))


def edit_grid(images: np.ndarray) -> np.ndarray:
    """[num, S, H, W, C] -> one grid image: one row per sample, one column per strength."""
    num, strengths = images.shape[:2]
    return gan_images.make_grid(images.reshape((num * strengths, *images.shape[2:])), rows=num)


def encode_gif(frames: np.ndarray, duration_ms: int = DEFAULT_GIF_FRAME_MS) -> bytes:
    """An animated GIF of uint8 frames [N, H, W, C] that loops forever.

    Grayscale frames are stored exactly; colour ones through a 256-colour
    palette per frame (GIF's limit). GIF delays are in 10 ms units, and
    identical consecutive frames become one longer frame.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[0] == 0 or frames.dtype != np.uint8:
        raise ValueError(
            f"encode_gif expects uint8 frames [N, H, W, C], got {frames.dtype} {frames.shape}"
        )
    if frames.shape[-1] == 1:
        frames = frames[..., 0]
    pictures = [Image.fromarray(frame) for frame in frames]
    buf = io.BytesIO()
    pictures[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=pictures[1:],
        duration=int(duration_ms),
        loop=0,
    )
    return buf.getvalue()


def write_image_file(path, images: np.ndarray, duration_ms: int = DEFAULT_GIF_FRAME_MS) -> None:
    """Images [N, H, W, C] to `path`: an animated GIF for '*.gif', else a one-row PNG strip."""
    path = pathlib.Path(path)
    if path.suffix.lower() == ".gif":
        data = encode_gif(images, duration_ms)
    else:
        data = strip_png(images)
    atomic.atomic_write_bytes(path, data)


def psnr_for_json(psnr: float) -> float | None:
    """PSNR as JSON can hold it: None (null) for +inf, a pixel-exact reconstruction."""
    return None if math.isinf(psnr) else float(psnr)


# --- the command line's sampling -----------------------------------------------------------


def generate(
    model_base_path,
    *,
    num: int,
    seed: int = 0,
    label: int | None = None,
    version: int | None = None,
    truncation: float | None = None,
) -> np.ndarray:
    """Returns `num` uint8 images [num, H, W, C] from the sample (or truncated_sample) signature."""
    if num < 1:
        raise ValueError(f"--num must be >= 1, got {num}")
    model = load_model(model_base_path, version)
    if label is not None and not takes_label(model):
        raise ValueError(f"--label={label} given but the model at {model.path} is unconditional")
    logging.info("Sampling %d images from %s (seed %d)", num, model.path, seed)
    return sample_images(model, num=num, seed=seed, label=label, truncation=truncation)


def write_images(images: np.ndarray, out=None, out_dir=None, rows: int | None = None) -> None:
    if out is not None:
        gan_images.save_png(out, gan_images.make_grid(images, rows=rows))
    if out_dir is not None:
        out_dir = pathlib.Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            gan_images.save_png(out_dir / f"sample_{i:05d}.png", image)


def generate_to_files(
    model_base_path,
    *,
    num: int,
    seed: int = 0,
    label: int | None = None,
    version: int | None = None,
    out=None,
    out_dir=None,
    truncation: float | None = None,
) -> np.ndarray:
    """`generate`, then `write_images`; returns the images."""
    images = generate(
        model_base_path, num=num, seed=seed, label=label, version=version, truncation=truncation
    )
    write_images(images, out=out, out_dir=out_dir)
    for target in (out, out_dir):
        if target:
            logging.info("Wrote %s", target)
    return images


# --- image-to-image models ------------------------------------------------------------

TRANSFORM_SIGNATURE = "serving_default"
# Images per serving_default call when transforming a folder.
TRANSFORM_BATCH = 32


def task_name(model) -> str:
    """model_info.json's task name; "generate" (sampling) for exports without a task."""
    task = model.info.get("task")
    name = task.get("name") if isinstance(task, dict) else None
    return str(name) if name else "generate"


def is_image_to_image(model) -> bool:
    """True for a super_resolution / inpainting / translation export (not a sampling one)."""
    return task_name(model) != "generate"


def require_sampling_model(model, what: str, instead: str) -> None:
    """Rejects an image-to-image model for `what` (an endpoint or flag of sampling models)."""
    if is_image_to_image(model):
        raise RequestError(
            f"{what} is for sampling models, but {_where(model)} is an "
            f"image-to-image model (task {task_name(model)}): {instead}"
        )


def require_image_to_image(model, what: str, instead: str) -> None:
    """Rejects a sampling model for `what` (an endpoint or flag of image-to-image models)."""
    if not is_image_to_image(model):
        raise RequestError(
            f"{what} is for image-to-image models (super_resolution, inpainting, "
            f"translation), but {_where(model)} is a sampling model (task "
            f"generate): {instead}"
        )


def transform_input_shapes(model) -> dict[str, tuple[int, int, int] | None]:
    """serving_default's inputs: {"image": (h, w, c)} plus {"mask": (H, W, 1)} for inpainting.

    Shapes come from model_info.json's "inputs" (None when an export lacks
    them: the model's in-graph check still rejects a wrong shape).
    """
    require_signature(model, TRANSFORM_SIGNATURE)
    names = set(model.input_specs[TRANSFORM_SIGNATURE])
    if names not in ({"image"}, {"image", "mask"}):
        raise RequestError(
            f"{_where(model)}'s {TRANSFORM_SIGNATURE} takes {sorted(names)}, not "
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
            f"{name}: a PNG of shape {_shape_list(shape)} ({_shape_text(shape)})"
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
        f"; expected a PNG of shape {_shape_list(shape)} ({_shape_text(shape)})" if shape else ""
    )
    if not data:
        raise RequestError(f"{name} is empty{expected or '; expected a PNG'}")
    try:
        return decode_png(data, shape, name)
    except _WrongShape:
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
