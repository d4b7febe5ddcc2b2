"""Conversions between model outputs and viewable images, and sample grids.

The one home of the uint8 <-> float conversions: [-1, 1] floats (model space) to uint8
[0, 255] and back, in numpy (`to_uint8`, `to_float`) and as TensorFlow ops for graphs and
SavedModel signatures (`to_uint8_tensor`, `to_float_tensor`, `to_uint8_grid_tensor`).
"""

import io
import math

import numpy as np
import tensorflow as tf
from PIL import Image

from gan_keras.storage import atomic


def to_uint8(images) -> np.ndarray:
    """Maps float images in [-1, 1] to uint8 in [0, 255] (rounding, clipping)."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def to_float(images) -> np.ndarray:
    """Maps uint8 images to float32 in [-1, 1]."""
    return np.asarray(images, dtype=np.float32) / 127.5 - 1.0


def to_uint8_tensor(images: tf.Tensor) -> tf.Tensor:
    """In-graph twin of `to_uint8`: round((x + 1) * 127.5), clipped."""
    images = tf.cast(images, tf.float32)
    return tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


def to_float_tensor(images: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]; `to_uint8_tensor` maps the result back exactly."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def to_uint8_grid_tensor(x: tf.Tensor) -> tf.Tensor:
    """Rounds [-1, 1] floats to the nearest of the 256 values a uint8 image maps to.

    Conditions are quantised so training sees exactly what a client sending
    uint8 images to the exported model can send. Unlike `to_uint8_tensor` it clips the
    input to [-1, 1] before rounding and returns float32 in [-1, 1], not uint8.
    """
    return tf.round((tf.clip_by_value(x, -1.0, 1.0) + 1.0) * 127.5) / 127.5 - 1.0


GRID_PADDING = 2


def grid_layout(n: int, rows: int | None = None) -> tuple[int, int]:
    """(rows, cols) of `make_grid` for n images: `rows` defaults to a near-square layout."""
    if rows is None:
        rows = max(1, int(math.floor(math.sqrt(n))))
    return rows, int(math.ceil(n / rows))


def grid_tile_origin(i: int, cols: int, h: int, w: int, padding: int = GRID_PADDING):
    """(top, left) pixel of image i in a `make_grid` of `cols` columns (filled row by row)."""
    r, col = divmod(i, cols)
    return padding + r * (h + padding), padding + col * (w + padding)


def make_grid(images, rows: int | None = None, padding: int = GRID_PADDING) -> np.ndarray:
    """Tiles uint8 images [N, H, W, C] into one [H', W', C] image.

    `rows` defaults to a near-square layout; the grid is filled row by row.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"make_grid expects [N, H, W, C] images, got shape {images.shape}")
    n, h, w, c = images.shape
    if n == 0:
        raise ValueError("make_grid needs at least one image")
    rows, cols = grid_layout(n, rows)
    grid = np.zeros(
        (rows * (h + padding) + padding, cols * (w + padding) + padding, c), images.dtype
    )
    for i, image in enumerate(images[: rows * cols]):
        top, left = grid_tile_origin(i, cols, h, w, padding)
        grid[top : top + h, left : left + w] = image
    return grid


def upscale_for_viewing(image, min_long_side: int = 768) -> np.ndarray:
    """Nearest-neighbour upscaling of an [H, W] or [H, W, C] image by one integer factor, the
    smallest that makes the long side at least `min_long_side` (ceil(min_long_side / long side));
    each pixel becomes a factor x factor block. Never downscales: an image already that large
    comes back unchanged (factor 1)."""
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"upscale_for_viewing expects [H, W] or [H, W, C], got {image.shape}")
    long_side = max(image.shape[0], image.shape[1])
    if long_side == 0:
        raise ValueError(f"upscale_for_viewing got an empty image of shape {image.shape}")
    factor = max(1, math.ceil(min_long_side / long_side))
    if factor == 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def encode_png(image) -> bytes:
    """PNG bytes of a uint8 [H, W, 1|3] image."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"encode_png expects uint8, got {image.dtype}")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def save_png(path, image) -> None:
    atomic.atomic_write_bytes(path, encode_png(image))
