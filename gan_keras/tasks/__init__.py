"""What G is asked to do (`task.name`): the task registry and the checks of the task config.

Tasks:

- ``generate``: today's sampling; G maps z (and a label) to an image; no condition.
- ``super_resolution``: G maps an image downsampled ``task.scale`` times back to full size.
- ``inpainting``: G fills a hole (``task.hole``) covering ``task.hole_fraction`` of the image.
- ``translation``: G maps a 1-channel rendering of the image (``task.source``: a Sobel
  edge map or the luminance) back to the image.

This module holds what every stage asks of a task without touching pixels: the
registries (`TASKS`, `HOLES`, `SOURCES`), `validate_task_config`, `condition_shape`
and `metric_protocol`. Its parts:

- gan_keras.tasks.conditions: the TensorFlow ops that derive a condition from a
  stored image (`degrade`, masks, luminance, downsampling, Sobel edges) and the
  inpainting helpers (`paste_known`, the uint8 mask convention).
- gan_keras.tasks.baselines: the classical baselines the evaluation compares G with
  (`bicubic_upsample`, `classical_fill`, `baseline`).
"""

import dataclasses
import math
import numbers

from gan_keras.registry import Registry


@dataclasses.dataclass(frozen=True)
class Task:
    """A `task.name` entry."""

    name: str
    description: str
    # Task-specific config fields it reads (besides name, seed and the loss weights).
    fields: tuple[str, ...]
    # True: image-to-image (G takes a condition, trains with task.l1_weight and
    # task.adversarial_weight); False: G samples from z.
    conditional: bool
    # Name of the classical baseline function in gan_keras.tasks.baselines, or None.
    baseline: str | None


TASKS = Registry("task.name")
TASKS.register("generate", Task("generate", "sample images from z (and a label)", (), False, None))
TASKS.register(
    "super_resolution",
    Task(
        "super_resolution",
        "recover the image from its task.scale-times downsampled copy",
        ("scale",),
        True,
        "bicubic_upsample",
    ),
)
TASKS.register(
    "inpainting",
    Task(
        "inpainting",
        "fill a task.hole covering task.hole_fraction of the image",
        ("hole", "hole_fraction"),
        True,
        "classical_fill",
    ),
)
TASKS.register(
    "translation",
    Task(
        "translation",
        "recover the image from its task.source rendering (edges or grayscale)",
        ("source",),
        True,
        None,
    ),
)


def is_image_to_image(task_config) -> bool:
    """True when G maps a condition to an image (not `generate`'s sampling)."""
    return TASKS.get(task_field(task_config, "name")).conditional


HOLES = Registry("task.hole")
HOLES.register("center", "a centred rectangle of task.hole_fraction of the area (seed-independent)")
HOLES.register(
    "random_box",
    "a rectangle of task.hole_fraction of the area, random position and aspect ratio in [1/2, 2]",
)
HOLES.register(
    "free_form",
    "random thick brush strokes whose union covers close to task.hole_fraction of the area",
)

SOURCES = Registry("task.source")
SOURCES.register("edges", "thresholded Sobel gradient magnitude of the luminance, black on white")
SOURCES.register("grayscale", "BT.601 luminance (needs RGB data)")

SCALES = (2, 4)
MAX_HOLE_FRACTION = 0.75
MIN_CONDITION_SIZE = 4


# --------------------------------------------------------------------------- config


def task_field(task_config, name: str):
    """task_config[name] (a dict or ConfigDict) or its attribute `name`; ValueError naming
    `task.<name>` when it has neither."""
    try:
        return task_config[name]
    except (KeyError, TypeError, AttributeError):
        pass
    try:
        return getattr(task_config, name)
    except AttributeError:
        raise ValueError(f"task.{name} is missing from the config") from None


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def validate_task_config(task_config, *, resolution: int, channels: int) -> None:
    """ValueError naming `task.<field>` and its value if the task section is unusable.

    Checks the fields the named task reads (fields of other tasks are ignored):
    super_resolution: scale in (2, 4) divides resolution, resolution / scale >= 4;
    inpainting: hole, 0 < hole_fraction <= 0.75 (and >= one pixel);
    translation: source, grayscale only with channels == 3; every image-to-image
    task: integer seed, l1_weight >= 0, adversarial_weight >= 0, one of them > 0.
    """
    task = TASKS.get(task_field(task_config, "name"))
    if not task.conditional:
        return
    if channels not in (1, 3):
        raise ValueError(f"task.name={task.name!r} needs data.channels 1 or 3, got {channels!r}")
    if not _is_int(resolution) or resolution < 1:
        raise ValueError(f"data.resolution must be a positive int, got {resolution!r}")

    seed = task_field(task_config, "seed")
    if not _is_int(seed) or not -(2**63) <= seed < 2**63:
        raise ValueError(f"task.seed must be an int64 integer, got {seed!r}")
    weights = {}
    for name in ("l1_weight", "adversarial_weight"):
        value = task_field(task_config, name)
        if not _is_real(value) or value < 0:
            raise ValueError(f"task.{name} must be a finite number >= 0, got {value!r}")
        weights[name] = float(value)
    if not any(weights.values()):
        raise ValueError(
            "task.l1_weight and task.adversarial_weight are both 0: at least one "
            "must be > 0 (adversarial_weight=0 is the L1-only baseline)"
        )

    if task.name == "super_resolution":
        scale = task_field(task_config, "scale")
        if not _is_int(scale) or scale not in SCALES:
            raise ValueError(f"task.scale must be one of {SCALES}, got {scale!r}")
        if resolution % scale:
            raise ValueError(f"task.scale={scale} does not divide data.resolution={resolution}")
        if resolution // scale < MIN_CONDITION_SIZE:
            raise ValueError(
                f"task.scale={scale} leaves {resolution // scale}x"
                f"{resolution // scale} conditions at data.resolution={resolution}; "
                f"they must be at least {MIN_CONDITION_SIZE} pixels wide"
            )
    elif task.name == "inpainting":
        HOLES.check(task_field(task_config, "hole"))
        fraction = task_field(task_config, "hole_fraction")
        if not _is_real(fraction) or not 0 < fraction <= MAX_HOLE_FRACTION:
            raise ValueError(
                f"task.hole_fraction must be in (0, {MAX_HOLE_FRACTION}], got {fraction!r}"
            )
        if fraction * resolution * resolution < 1:
            raise ValueError(
                f"task.hole_fraction={fraction!r} is less than one pixel at "
                f"data.resolution={resolution}"
            )
    elif task.name == "translation":
        source = SOURCES.check(task_field(task_config, "source"))
        if source == "grayscale" and channels != 3:
            raise ValueError(
                f"task.source='grayscale' needs RGB data (data.channels=3), got "
                f"data.channels={channels}; use task.source='edges' for "
                f"1-channel data"
            )


def condition_shape(task_config, resolution: int, channels: int) -> tuple[int, int, int] | None:
    """(h, w, c) of one condition; None for `generate` (G takes z, no condition)."""
    validate_task_config(task_config, resolution=resolution, channels=channels)
    name = task_field(task_config, "name")
    if name == "super_resolution":
        s = task_field(task_config, "scale")
        return resolution // s, resolution // s, channels
    if name == "inpainting":
        return resolution, resolution, channels + 1
    if name == "translation":
        return resolution, resolution, 1
    return None


def metric_protocol(task_config) -> dict:
    """Keyword arguments for gan_keras.evaluation.image_scores' `psnr` / `ssim` under this
    task's protocol.

    super_resolution: on the luminance (Y, BT.601) with a border of `scale` pixels
    cropped, as super-resolution papers report. Other tasks: all channels, no crop
    (for grayscale->RGB translation the Y channel is the input, so scoring it
    would say nothing).
    """
    if task_field(task_config, "name") == "super_resolution":
        return {"y_channel": True, "border": int(task_field(task_config, "scale"))}
    return {"y_channel": False, "border": 0}
