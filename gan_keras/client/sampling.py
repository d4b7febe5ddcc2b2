"""Images from an exported generator's signatures: samples, walks, edits, projections.

Only TensorFlow and the SavedModel are needed: the training code is not
imported. The same seed (and version) always gives the same images. Also here:
the lookup of edit directions by name in ``assets.extra/directions.json`` and
the parsing of the comma-separated arguments the endpoints and flags take. The
``model`` arguments are gan_keras.client.model's (a LoadedModel or the server's
Servable).
"""

import json
import logging
import math

import numpy as np

from gan_keras.client.model import RequestError, load_model, require_signature, takes_label
from gan_keras.export import layout

DEFAULT_INTERPOLATION_STEPS = 8
DEFAULT_PROJECT_STEPS = 200
DEFAULT_EDIT_STRENGTHS = (-3.0, -1.5, 0.0, 1.5, 3.0)


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


def psnr_for_json(psnr: float) -> float | None:
    """PSNR as JSON can hold it: None (null) for +inf, a pixel-exact reconstruction."""
    return None if math.isinf(psnr) else float(psnr)


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
