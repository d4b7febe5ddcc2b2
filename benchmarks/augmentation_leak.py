"""Does an augmentation leak into G's output? A probe of sample grids against the real images.

    python -m benchmarks.augmentation_leak --ingest_dir=runs/q_emoji_long/data-47807ee9/ingest \
        --grids='runs/q_emoji_long/grids/auto+diffaugment-seed0-*k.png'

DiffAugment's cutout (gan_keras.training.diffaugment) fills a square of half the image's side
with 0, mid-grey in [-1, 1], and its translation fills the uncovered border with the same grey.
A G that learned these would draw them: uniform mid-grey squares, or mid-grey strips along an
edge. For each grid written by benchmarks.quality (`--results_dir/grids/`, 64 samples tiled by
gan_keras.images.make_grid and upscaled) and for the real train images, this reports the share
of images holding a uniform mid-grey square of at least `--square` pixels, and of images with a
uniform mid-grey strip at least 2 pixels deep along a whole edge. The real images' share is the
floor: a generator far above it is drawing the augmentation. A number, so the grids need not be
judged by eye alone; 64 samples per grid make it a screen for a leak, not a precise rate.
"""

import glob
import re

import numpy as np
from absl import app, flags

from gan_keras import images as gan_images
from gan_keras.data import input_pipeline

_INGEST_DIR = flags.DEFINE_string("ingest_dir", None, "The benchmark data's ingest dir.")
_GRIDS = flags.DEFINE_string("grids", None, "Glob of sample grids (benchmarks.quality).")
_SQUARE = flags.DEFINE_integer("square", 8, "Side of the uniform grey square that counts.")
_TOLERANCE = flags.DEFINE_integer("tolerance", 10, "Max |value - 128| per channel for 'grey'.")
_SAMPLES = flags.DEFINE_integer("samples_per_grid", 64, "Samples tiled in each grid.")


def grid_tiles(grid: np.ndarray, num: int, size: int) -> np.ndarray:
    """The `num` [size, size, C] samples of a make_grid + upscale_for_viewing image."""
    _, cols = gan_images.grid_layout(num)
    width = cols * (size + gan_images.GRID_PADDING) + gan_images.GRID_PADDING
    factor = grid.shape[1] // width
    if factor < 1 or grid.shape[1] != width * factor:
        raise ValueError(f"a grid {grid.shape[1]} px wide is not {cols} tiles of {size} px")
    small = grid[::factor, ::factor]
    tiles = []
    for i in range(num):
        top, left = gan_images.grid_tile_origin(i, cols, size, size)
        tiles.append(small[top : top + size, left : left + size])
    return np.stack(tiles)


def grey_mask(images: np.ndarray, tolerance: int) -> np.ndarray:
    """[N, H, W] True where every channel is within `tolerance` of mid-grey (128)."""
    return np.all(np.abs(images.astype(np.int16) - 128) <= tolerance, axis=-1)


def has_grey_square(mask: np.ndarray, side: int) -> np.ndarray:
    """[N] True where a side x side square is all grey (a summed-area table per image)."""
    table = np.pad(mask.astype(np.int32).cumsum(1).cumsum(2), ((0, 0), (1, 0), (1, 0)))
    sums = (
        table[:, side:, side:]
        - table[:, :-side, side:]
        - table[:, side:, :-side]
        + table[:, :-side, :-side]
    )
    return np.any(sums == side * side, axis=(1, 2))


def has_grey_edge(mask: np.ndarray, depth: int = 2) -> np.ndarray:
    """[N] True where the `depth` outermost rows or columns along some edge are all grey."""
    edges = (
        mask[:, :depth, :],
        mask[:, -depth:, :],
        mask[:, :, :depth],
        mask[:, :, -depth:],
    )
    return np.any([e.reshape(len(mask), -1).all(axis=1) for e in edges], axis=0)


def shares(images: np.ndarray) -> tuple[float, float]:
    mask = grey_mask(images, _TOLERANCE.value)
    return float(has_grey_square(mask, _SQUARE.value).mean()), float(has_grey_edge(mask).mean())


def _images_key(path: str) -> int:
    match = re.search(r"-(\d+)k\.png$", path)
    return int(match.group(1)) if match else -1


def main(argv):
    del argv
    from PIL import Image

    real, _ = input_pipeline.read_split(_INGEST_DIR.value, "train")
    if real.shape[-1] != 3:
        raise ValueError(f"the probe is for colour images, got {real.shape[-1]} channels")
    size = real.shape[1]
    square, edge = shares(real)
    print(f"| images | grey {_SQUARE.value}x{_SQUARE.value} square | grey edge strip |")
    print("|---|---|---|")
    print(f"| real train ({len(real):,}) | {square:.3f} | {edge:.3f} |")
    paths = sorted(glob.glob(_GRIDS.value), key=_images_key)
    if not paths:
        raise ValueError(f"no grid matches --grids={_GRIDS.value!r}")
    for path in paths:
        grid = np.asarray(Image.open(path).convert("RGB"))
        square, edge = shares(grid_tiles(grid, _SAMPLES.value, size))
        print(f"| {path} | {square:.3f} | {edge:.3f} |")


if __name__ == "__main__":
    flags.mark_flags_as_required(["ingest_dir", "grids"])
    app.run(main)
