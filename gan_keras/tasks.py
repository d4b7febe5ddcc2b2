"""What G is asked to do (`task.name`), and the conditions it is given.

Tasks:

- ``generate``: today's sampling; G maps z (and a label) to an image; no condition.
- ``super_resolution``: G maps an image downsampled ``task.scale`` times back to full size.
- ``inpainting``: G fills a hole (``task.hole``) covering ``task.hole_fraction`` of the image.
- ``translation``: G maps a 1-channel rendering of the image (``task.source``: a Sobel
  edge map or the luminance) back to the image.

Records are unchanged: the condition is derived from the stored image on the fly,
one example at a time, by `degrade(task_config, image, seed)`, with a stateless
seed per example (`example_seed`: [task.seed, index]), so it is the same for an example whatever
the replica layout, and fixed for the eval split.

Conventions (images float32 in [-1, 1], [H, W, C], C = 1 or 3):

- super_resolution condition: [H/s, W/s, C], the image downsampled with
  antialiased bicubic resizing (see `downsample`), on the uint8 grid.
- inpainting condition: [H, W, C + 1] = concat(image * (1 - mask), mask). The mask
  is float32 in {0, 1}, 1 = hole, 0 = keep; hole pixels of the masked image are 0
  (mid grey). Served masks are uint8 [N, H, W, 1] with 255 = hole, 0 = keep: see
  `mask_to_uint8`, `mask_from_uint8`, `inpainting_condition_from_uint8`.
- translation condition: [H, W, 1]. ``edges``: black (-1) edges on white (+1), as
  pix2pix's edge maps; ``grayscale``: BT.601 luminance (RGB data only).

Classical baselines, the outside references the evaluation compares G with:
`bicubic_upsample` (super_resolution), `classical_fill` (inpainting: harmonic
fill). Translation has none; `baseline` says so.
"""

import dataclasses
import math
import numbers
import warnings

import numpy as np
import tensorflow as tf

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
    # Name of the classical baseline function in this module, or None.
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
    return TASKS.get(_field(task_config, "name")).conditional


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

# ITU-R BT.601 luma weights (R, G, B); they sum to 1, so they apply to [-1, 1] data as is.
BT601 = (0.299, 0.587, 0.114)

# An edge is where the Sobel gradient magnitude, divided by 4 so that a step of
# height h reads h, is at least this many [-1, 1] units: a step of 10% of the
# full range (~25 grey levels). A fixed contrast, not one relative to the
# image's maximum, so a flat image has no edges, a faint texture does not turn
# into edges because the image holds nothing stronger, and the rule does not
# depend on the resolution (Sobel differences are per pixel).
EDGE_THRESHOLD = 0.2

# Free-form masks: _STROKES strokes of _STROKE_SEGMENTS straight segments each.
_STROKES = 10
_STROKE_SEGMENTS = 8
# Free-form masks of larger images are drawn on a grid of at most this many pixels a side.
_FREE_FORM_GRID = 64
# classical_fill solves this many images at a time.
_FILL_CHUNK = 256


# --------------------------------------------------------------------------- config


def _field(task_config, name: str):
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


def check_task_config(task_config, *, resolution: int, channels: int) -> None:
    """ValueError naming `task.<field>` and its value if the task section is unusable.

    Checks the fields the named task reads (fields of other tasks are ignored):
    super_resolution: scale in (2, 4) divides resolution, resolution / scale >= 4;
    inpainting: hole, 0 < hole_fraction <= 0.75 (and >= one pixel);
    translation: source, grayscale only with channels == 3; every image-to-image
    task: integer seed, l1_weight >= 0, adversarial_weight >= 0, one of them > 0.
    """
    task = TASKS.get(_field(task_config, "name"))
    if not task.conditional:
        return
    if channels not in (1, 3):
        raise ValueError(f"task.name={task.name!r} needs data.channels 1 or 3, got {channels!r}")
    if not _is_int(resolution) or resolution < 1:
        raise ValueError(f"data.resolution must be a positive int, got {resolution!r}")

    seed = _field(task_config, "seed")
    if not _is_int(seed) or not -(2**63) <= seed < 2**63:
        raise ValueError(f"task.seed must be an int64 integer, got {seed!r}")
    weights = {}
    for name in ("l1_weight", "adversarial_weight"):
        value = _field(task_config, name)
        if not _is_real(value) or value < 0:
            raise ValueError(f"task.{name} must be a finite number >= 0, got {value!r}")
        weights[name] = float(value)
    if not any(weights.values()):
        raise ValueError(
            "task.l1_weight and task.adversarial_weight are both 0: at least one "
            "must be > 0 (adversarial_weight=0 is the L1-only baseline)"
        )

    if task.name == "super_resolution":
        scale = _field(task_config, "scale")
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
        HOLES.check(_field(task_config, "hole"))
        fraction = _field(task_config, "hole_fraction")
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
        source = SOURCES.check(_field(task_config, "source"))
        if source == "grayscale" and channels != 3:
            raise ValueError(
                f"task.source='grayscale' needs RGB data (data.channels=3), got "
                f"data.channels={channels}; use task.source='edges' for "
                f"1-channel data"
            )


def condition_shape(task_config, resolution: int, channels: int) -> tuple[int, int, int] | None:
    """(h, w, c) of one condition; None for `generate` (G takes z, no condition)."""
    check_task_config(task_config, resolution=resolution, channels=channels)
    name = _field(task_config, "name")
    if name == "super_resolution":
        s = _field(task_config, "scale")
        return resolution // s, resolution // s, channels
    if name == "inpainting":
        return resolution, resolution, channels + 1
    if name == "translation":
        return resolution, resolution, 1
    return None


def metric_protocol(task_config) -> dict:
    """Keyword arguments for `image_metrics.psnr` / `ssim` under this task's protocol.

    super_resolution: on the luminance (Y, BT.601) with a border of `scale` pixels
    cropped, as super-resolution papers report. Other tasks: all channels, no crop
    (for grayscale->RGB translation the Y channel is the input, so scoring it
    would say nothing).
    """
    if _field(task_config, "name") == "super_resolution":
        return {"y_channel": True, "border": int(_field(task_config, "scale"))}
    return {"y_channel": False, "border": 0}


# --------------------------------------------------------------------------- seeds


def example_seed(base_seed, index=0) -> tf.Tensor:
    """int64 [2] stateless seed of one example: [base_seed, index], `index` its position in the
    stream (`Dataset.enumerate`). The train stage's stream folds its start step into
    `base_seed`; fixed condition sets offset `index` (`fixed_conditions`).

    Works eagerly and in graph mode (tf.data.Dataset.map).
    """
    return tf.stack([tf.cast(base_seed, tf.int64), tf.cast(index, tf.int64)])


def fixed_conditions(task_config, images, first_index: int, batch_size: int = 256) -> np.ndarray:
    """The conditions of `images` (float32 [N, H, W, C] in [-1, 1]) with the seeds
    example_seed(task.seed, first_index + i): the same every run (sample grids, evaluation)."""
    base = int(_field(task_config, "seed"))
    ds = (
        tf.data.Dataset.from_tensor_slices(np.asarray(images, np.float32))
        .enumerate()
        .map(
            lambda i, image: degrade(task_config, image, example_seed(base, first_index + i)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    )
    return np.concatenate([batch.numpy() for batch in ds.batch(batch_size)])


def _streams(seed, n: int) -> list[tf.Tensor]:
    """n independent stateless seeds from one."""
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    return tf.unstack(tf.random.experimental.stateless_split(seed, num=n))


# --------------------------------------------------------------------------- degradations


def to_uint8_grid(x: tf.Tensor) -> tf.Tensor:
    """Rounds [-1, 1] floats to the nearest of the 256 values a uint8 image maps to.

    Conditions are quantised so training sees exactly what a client sending
    uint8 images to the exported model can send.
    """
    return tf.round((tf.clip_by_value(x, -1.0, 1.0) + 1.0) * 127.5) / 127.5 - 1.0


def luminance(images: tf.Tensor) -> tf.Tensor:
    """[..., 1] BT.601 luma of [..., 3] images (full range; same units as the input);
    1-channel images are returned as they are."""
    images = tf.convert_to_tensor(images)
    if images.shape[-1] == 1:
        return images
    if images.shape[-1] != 3:
        raise ValueError(f"luminance expects 1 or 3 channels, got shape {images.shape}")
    return tf.reduce_sum(images * tf.constant(BT601, images.dtype), axis=-1, keepdims=True)


def downsample(images: tf.Tensor, scale: int) -> tf.Tensor:
    """Antialiased bicubic downsampling by `scale`, clipped to [-1, 1]; [H, W, C] or
    [N, H, W, C] with H, W multiples of scale.

    Bicubic with antialias=True stretches the Keys cubic kernel (a = -0.5) by the
    scale, as MATLAB's `imresize` does (borders differ: TF renormalises the kernel,
    MATLAB mirrors): the "BI" degradation super-resolution benchmarks (Set5,
    DIV2K, ...) are made with, so G learns the standard problem. "area" (a box
    average over s x s blocks) is a different, blockier degradation.
    The cubic's negative lobes can overshoot, hence the clip.
    """
    h, w = images.shape[-3], images.shape[-2]
    small = tf.image.resize(images, [h // scale, w // scale], method="bicubic", antialias=True)
    return tf.clip_by_value(small, -1.0, 1.0)


def sobel_edges(image: tf.Tensor) -> tf.Tensor:
    """[H, W, 1] edge map of one [H, W, C] image: -1 (black) where the luminance's Sobel
    gradient magnitude / 4 is >= EDGE_THRESHOLD, +1 (white) elsewhere.

    Borders are reflected, so a flat image has no edges; a step between two columns
    marks both columns next to it (a 2-pixel line).
    """
    y = luminance(image)[tf.newaxis]
    grad = tf.image.sobel_edges(y)[0]  # [H, W, 1, 2] (dy, dx)
    magnitude = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=-1)) / 4.0
    return tf.where(magnitude >= EDGE_THRESHOLD, -1.0, 1.0)


def _box(height: int, width: int, top, left, box_h, box_w) -> tf.Tensor:
    rows = tf.range(height, dtype=tf.int32)[:, tf.newaxis]
    cols = tf.range(width, dtype=tf.int32)[tf.newaxis, :]
    inside = (rows >= top) & (rows < top + box_h) & (cols >= left) & (cols < left + box_w)
    return tf.cast(inside, tf.float32)[..., tf.newaxis]


def _box_size(fraction: float, height: int, width: int) -> tuple[int, int]:
    box_h = min(height, max(1, round(math.sqrt(fraction) * height)))
    box_w = min(width, max(1, round(fraction * height * width / box_h)))
    return box_h, box_w


def _random_box_mask(fraction: float, height: int, width: int, seed) -> tf.Tensor:
    s_aspect, s_top, s_left = _streams(seed, 3)
    # Aspect ratio box_h / box_w log-uniform in [1/2, 2], narrowed so the box fits.
    log_lo = max(-math.log(2.0), math.log(fraction))
    log_hi = min(math.log(2.0), -math.log(fraction))
    aspect = tf.exp(tf.random.stateless_uniform([], s_aspect, log_lo, log_hi))
    area = fraction * height * width
    box_h = tf.clip_by_value(tf.round(tf.sqrt(area * aspect * height / width)), 1.0, height)
    box_w = tf.clip_by_value(tf.round(area / box_h), 1.0, float(width))
    box_h, box_w = tf.cast(box_h, tf.int32), tf.cast(box_w, tf.int32)
    top = tf.random.stateless_uniform([], s_top, 0, height - box_h + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([], s_left, 0, width - box_w + 1, dtype=tf.int32)
    return _box(height, width, top, left, box_h, box_w)


def _free_form_mask(fraction: float, height: int, width: int, seed) -> tf.Tensor:
    """Union of the first k segments of random brush strokes, k chosen so the area is the
    closest to `fraction` (so every mask is close, not only the average).

    Strokes are polylines (a random start, a random heading that turns by up to
    45 degrees per segment, segment lengths 10-30% of the image side, reflected at
    the borders) with one width per stroke, thicker for bigger holes. A pixel is
    in the hole when its distance to a segment is at most half the stroke's width
    (vectorised over segments x pixels). Images larger than _FREE_FORM_GRID on a
    side are computed on that grid and the distance field to the strokes is
    bilinearly upsampled, so the cost is bounded and the edges stay smooth.
    """
    s_start, s_heading, s_turn, s_length, s_width = _streams(seed, 5)
    n_strokes, n_seg = _STROKES, _STROKE_SEGMENTS
    n = n_strokes * n_seg
    side = math.sqrt(height * width)
    limits = tf.constant([height - 1.0, width - 1.0])
    start = tf.random.stateless_uniform([n_strokes, 1, 2], s_start) * limits
    heading = tf.random.stateless_uniform([n_strokes, 1], s_heading, 0.0, 2.0 * math.pi)
    turn = tf.random.stateless_uniform([n_strokes, n_seg], s_turn, -math.pi / 4, math.pi / 4)
    angle = heading + tf.cumsum(turn, axis=1)
    length = tf.random.stateless_uniform([n_strokes, n_seg], s_length, 0.1, 0.3) * side
    steps = tf.stack([tf.sin(angle), tf.cos(angle)], axis=-1) * length[..., tf.newaxis]
    vertices = tf.concat([start, start + tf.cumsum(steps, axis=1)], axis=1)
    # Reflected at the borders (period 2 L), so strokes stay in the image at full length.
    folded = tf.math.floormod(vertices, 2.0 * limits)
    vertices = limits - tf.abs(folded - limits)  # [strokes, n_seg + 1, 2]
    a = tf.reshape(vertices[:, :-1], [n, 2])
    ab = tf.reshape(vertices[:, 1:], [n, 2]) - a
    base_width = max(2.0, (0.05 + 0.20 * fraction) * side)
    stroke_width = tf.random.stateless_uniform([n_strokes], s_width, 0.6, 1.4) * base_width
    half = tf.reshape(tf.repeat(stroke_width / 2.0, n_seg), [n, 1, 1])

    # Pixel centres of the working grid, in image pixel coordinates.
    grid_h, grid_w = min(height, _FREE_FORM_GRID), min(width, _FREE_FORM_GRID)
    rows = (tf.range(grid_h, dtype=tf.float32) + 0.5) * (height / grid_h) - 0.5
    cols = (tf.range(grid_w, dtype=tf.float32) + 0.5) * (width / grid_w) - 0.5
    ay, ax = tf.reshape(a[:, 0], [n, 1, 1]), tf.reshape(a[:, 1], [n, 1, 1])
    aby, abx = tf.reshape(ab[:, 0], [n, 1, 1]), tf.reshape(ab[:, 1], [n, 1, 1])
    py = tf.reshape(rows, [1, grid_h, 1]) - ay  # [n, h, 1]
    px = tf.reshape(cols, [1, 1, grid_w]) - ax  # [n, 1, w]
    t = (py * aby + px * abx) / tf.maximum(aby * aby + abx * abx, 1e-12)
    t = tf.clip_by_value(t, 0.0, 1.0)  # [n, h, w]: the closest point's position on a segment
    signed = tf.sqrt(tf.square(py - t * aby) + tf.square(px - t * abx)) - half  # <= 0: painted

    # Index of the first segment painting each pixel (n: none); the union of the
    # first k segments is first < k, and its area follows from a histogram.
    index = tf.range(n, dtype=tf.int32)[:, tf.newaxis, tf.newaxis]
    first = tf.reduce_min(tf.where(signed <= 0.0, index, n), axis=0)
    counts = tf.math.bincount(tf.reshape(first, [-1]), minlength=n + 1, maxlength=n + 1)
    areas = tf.cast(tf.cumsum(counts[:n]), tf.float32) / float(grid_h * grid_w)
    last = tf.argmin(tf.abs(areas - fraction), output_type=tf.int32)  # k = last + 1
    if (grid_h, grid_w) == (height, width):
        return tf.cast(first <= last, tf.float32)[..., tf.newaxis]
    field = tf.reduce_min(tf.where(index <= last, signed, float(height + width)), axis=0)
    field = tf.image.resize(field[..., tf.newaxis], [height, width], method="bilinear")
    return tf.cast(field <= 0.0, tf.float32)


def make_mask(task_config, height: int, width: int, seed) -> tf.Tensor:
    """float32 [height, width, 1] hole mask, 1 = hole, 0 = keep, for task.hole and
    task.hole_fraction; `seed` an int64 [2] stateless seed (ignored for "center").

    center: a centred rectangle of round(sqrt(f) H) rows and the width that makes its
    area closest to f H W. random_box: the same area, aspect ratio log-uniform in
    [1/2, 2], uniform position. free_form: brush strokes (see `_free_form_mask`).
    """
    hole = HOLES.check(_field(task_config, "hole"))
    fraction = float(_field(task_config, "hole_fraction"))
    if hole == "center":
        box_h, box_w = _box_size(fraction, height, width)
        return _box(height, width, (height - box_h) // 2, (width - box_w) // 2, box_h, box_w)
    if hole == "random_box":
        return _random_box_mask(fraction, height, width, seed)
    return _free_form_mask(fraction, height, width, seed)


def inpainting_condition(images, masks) -> tf.Tensor:
    """concat(images * (1 - masks), masks): [..., H, W, C + 1] from [..., H, W, C] images in
    [-1, 1] and [..., H, W, 1] masks in {0, 1} (1 = hole)."""
    images = tf.convert_to_tensor(images, tf.float32)
    masks = tf.convert_to_tensor(masks, tf.float32)
    return tf.concat([images * (1.0 - masks), masks], axis=-1)


def degrade(task_config, image, seed) -> tf.Tensor:
    """The condition of ONE example: image float32 [H, W, C] in [-1, 1] (static shape),
    seed int64 [2] (stateless). Graph-mode friendly (tf.data.Dataset.map, tf.function);
    the output's shape is static and equals `condition_shape`.

    Config checks run in Python when traced; `generate` has no condition (ValueError).
    """
    image = tf.convert_to_tensor(image, tf.float32)
    if image.shape.rank != 3 or not image.shape.is_fully_defined():
        raise ValueError(
            f"degrade takes one image [H, W, C] with a static shape, got {image.shape}"
        )
    height, width, channels = image.shape
    for size in {height, width}:
        check_task_config(task_config, resolution=size, channels=channels)
    name = _field(task_config, "name")
    if name == "super_resolution":
        return to_uint8_grid(downsample(image, _field(task_config, "scale")))
    if name == "inpainting":
        return inpainting_condition(image, make_mask(task_config, height, width, seed))
    if name == "translation":
        if _field(task_config, "source") == "edges":
            return sobel_edges(image)
        return to_uint8_grid(luminance(image))
    raise ValueError(f"task.name={name!r} has no condition to derive")


# --------------------------------------------------------------------------- inpainting helpers


def mask_from_condition(condition):
    """The [..., H, W, 1] mask (1 = hole) of inpainting conditions [..., H, W, C + 1]."""
    return condition[..., -1:]


def masked_image_from_condition(condition):
    """The [..., H, W, C] masked image (hole = 0) of inpainting conditions."""
    return condition[..., :-1]


def paste_known(generated, condition) -> tf.Tensor:
    """G's output inside the hole, the known pixels outside (the usual inpainting
    composite, applied before scoring and serving)."""
    mask = tf.convert_to_tensor(mask_from_condition(condition), tf.float32)
    known = tf.convert_to_tensor(masked_image_from_condition(condition), tf.float32)
    return tf.convert_to_tensor(generated, tf.float32) * mask + known * (1.0 - mask)


def mask_to_uint8(masks) -> tf.Tensor:
    """Serving convention of float masks (1 = hole): uint8, 255 = hole, 0 = keep."""
    return tf.where(
        tf.convert_to_tensor(masks, tf.float32) >= 0.5,
        tf.constant(255, tf.uint8),
        tf.constant(0, tf.uint8),
    )


def mask_from_uint8(masks) -> tf.Tensor:
    """float32 {0, 1} masks from served uint8 ones: values >= 128 are hole (255 = hole)."""
    return tf.cast(tf.convert_to_tensor(masks, tf.uint8) >= 128, tf.float32)


def inpainting_condition_from_uint8(images, masks) -> tf.Tensor:
    """float32 conditions [N, H, W, C + 1] from uint8 images [N, H, W, C] and uint8 masks
    [N, H, W, 1] (255 = hole): exactly what `degrade` makes from the same pixels and mask."""
    images = tf.cast(tf.convert_to_tensor(images, tf.uint8), tf.float32) / 127.5 - 1.0
    return inpainting_condition(images, mask_from_uint8(masks))


# --------------------------------------------------------------------------- baselines


def bicubic_upsample(condition, scale: int) -> np.ndarray:
    """float32 numpy [N, H, W, C] in [-1, 1]: conditions [N, H/s, W/s, C] resized up by
    `scale` with bicubic interpolation (tf.image.resize, half-pixel centres), clipped."""
    condition = tf.convert_to_tensor(condition, tf.float32)
    h, w = condition.shape[1], condition.shape[2]
    big = tf.image.resize(condition, [h * scale, w * scale], method="bicubic")
    return tf.clip_by_value(big, -1.0, 1.0).numpy()


def _neighbour_sum(u: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Sum over the 4-neighbours q of p of inside[q] * u[q]; zero beyond the image."""
    v = u * inside
    out = np.zeros_like(u)
    out[:, 1:] += v[:, :-1]
    out[:, :-1] += v[:, 1:]
    out[:, :, 1:] += v[:, :, :-1]
    out[:, :, :-1] += v[:, :, 1:]
    return out


def classical_fill(
    condition, *, tol: float = 1e-7, max_iterations: int | None = None
) -> np.ndarray:
    """Harmonic (membrane) inpainting: float32 numpy [N, H, W, C] from inpainting
    conditions [N, H, W, C + 1].

    Inside the hole every pixel is the mean of its 4 neighbours (the discrete Laplace
    equation), the known pixels being the boundary condition; at the image border
    missing neighbours are left out (zero normal derivative). Solved to convergence
    by conjugate gradients on the hole pixels, vectorised over images and channels
    (float64; relative residual < `tol`; an affine image is filled exactly).
    Images with no known pixel are filled with 0 (mid grey).
    """
    condition = np.asarray(condition)
    if condition.ndim != 4 or condition.shape[-1] < 2:
        raise ValueError(
            f"classical_fill expects inpainting conditions [N, H, W, C + 1], got "
            f"shape {condition.shape}"
        )
    # In chunks, so a whole eval split does not hold a dozen float64 copies at once.
    return np.concatenate(
        [
            _harmonic_fill(condition[i : i + _FILL_CHUNK].astype(np.float64), tol, max_iterations)
            for i in range(0, len(condition), _FILL_CHUNK)
        ]
        or [condition[..., :-1]]
    ).astype(np.float32)


def _harmonic_fill(condition: np.ndarray, tol: float, max_iterations: int | None) -> np.ndarray:
    known_pixels = condition[..., :-1]
    hole = condition[..., -1:] >= 0.5  # [N, H, W, 1]
    hole_c = np.broadcast_to(hole, known_pixels.shape).astype(np.float64)
    keep_c = 1.0 - hole_c
    n, h, w, _ = known_pixels.shape
    ones = np.ones_like(hole_c)
    degree = _neighbour_sum(ones, ones)  # 4 inside, 3 on edges, 2 in corners

    # A x = b on hole pixels: A u = degree * u - sum of hole neighbours' u.
    def apply(u):
        return hole_c * (degree * u - _neighbour_sum(u, hole_c))

    known = known_pixels * keep_c
    b = hole_c * _neighbour_sum(known, keep_c)
    x = np.zeros_like(b)
    r = b - apply(x)
    p = r.copy()
    axes = (1, 2)
    rr = np.sum(r * r, axis=axes, keepdims=True)
    stop = (tol**2) * np.maximum(np.sum(b * b, axis=axes, keepdims=True), 1e-30)
    if max_iterations is None:
        max_iterations = 10 * (h + w) + 100
    active = rr > stop
    for _ in range(max_iterations):
        if not np.any(active):
            break
        ap = apply(p)
        pap = np.sum(p * ap, axis=axes, keepdims=True)
        alpha = np.where(active, rr / np.where(pap > 0, pap, 1.0), 0.0)
        x += alpha * p
        r -= alpha * ap
        rr_new = np.sum(r * r, axis=axes, keepdims=True)
        beta = np.where(active, rr_new / np.where(rr > 0, rr, 1.0), 0.0)
        p = r + beta * p
        rr = rr_new
        active = rr > stop
    if np.any(active):
        warnings.warn(
            f"classical_fill: {int(np.sum(np.any(active, axis=(1, 2, 3))))} of {n} "
            f"images did not converge in {max_iterations} iterations",
            stacklevel=3,
        )
    no_known = ~np.any(~hole, axis=(1, 2, 3))
    x[no_known] = 0.0
    filled = known + hole_c * x
    return np.clip(filled, -1.0, 1.0)


def baseline(task_config, condition) -> np.ndarray:
    """The classical baseline's prediction [N, H, W, C] (float32 numpy in [-1, 1]) for
    conditions [N, ...]: bicubic upsampling (super_resolution) or harmonic fill
    (inpainting).

    Translation has no classical baseline — nothing classical maps edges or luminance
    back to an image — so its reference is the L1-only model (task.adversarial_weight
    = 0); it and `generate` raise ValueError.
    """
    task = TASKS.get(_field(task_config, "name"))
    if task.name == "super_resolution":
        return bicubic_upsample(condition, int(_field(task_config, "scale")))
    if task.name == "inpainting":
        return classical_fill(condition)
    raise ValueError(
        f"task.name={task.name!r} has no classical baseline"
        + (
            " (its reference is the L1-only model, task.adversarial_weight=0)"
            if task.name == "translation"
            else ""
        )
    )
