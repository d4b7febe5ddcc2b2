"""The conditions G is given: TensorFlow ops that derive them from the stored images.

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
"""

import math

import numpy as np
import tensorflow as tf

from gan_keras import images as gan_images
from gan_keras.tasks import HOLES, task_field, validate_task_config

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
    base = int(task_field(task_config, "seed"))
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
    hole = HOLES.check(task_field(task_config, "hole"))
    fraction = float(task_field(task_config, "hole_fraction"))
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
        validate_task_config(task_config, resolution=size, channels=channels)
    name = task_field(task_config, "name")
    if name == "super_resolution":
        return gan_images.to_uint8_grid_tensor(downsample(image, task_field(task_config, "scale")))
    if name == "inpainting":
        return inpainting_condition(image, make_mask(task_config, height, width, seed))
    if name == "translation":
        if task_field(task_config, "source") == "edges":
            return sobel_edges(image)
        return gan_images.to_uint8_grid_tensor(luminance(image))
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
    images = gan_images.to_float_tensor(tf.convert_to_tensor(images, tf.uint8))
    return inpainting_condition(images, mask_from_uint8(masks))
