"""What a user sees: the train stage's progress line and sample grids upscaled for viewing."""

import numpy as np
import pytest
from PIL import Image

from gan_keras import images as gan_images
from pipeline.train.loop import format_progress

# --- the progress line -------------------------------------------------------------------------


def test_progress_line_with_metrics_rate_elapsed_and_eta():
    line = format_progress(
        500,
        3500,
        elapsed_s=38.2,
        steps_per_s=12.5,
        metrics={"d_loss": 0.69314, "g_loss": 1.5},
        images_per_s=850.4,
    )
    # 3000 steps left at 12.5 steps/s = 240 s.
    assert line == (
        "step 500/3500 (14%)  d_loss=0.6931  g_loss=1.5000  850 img/s  elapsed 0:38  ETA 4:00"
    )


@pytest.mark.parametrize(
    "step, total, elapsed_s, steps_per_s, expected",
    [
        (0, 100, 0.0, 1.0, "step 0/100 (0%)  elapsed 0:00  ETA 1:40"),
        (50, 100, 59.6, 0.5, "step 50/100 (50%)  elapsed 1:00  ETA 1:40"),
        # Rounded down: 99.9% is not yet 100%.
        (999, 1000, 10.0, 1.0, "step 999/1000 (99%)  elapsed 0:10  ETA 0:01"),
        # From one hour on, H:MM:SS; hours keep counting past a day.
        (1, 10001, 3600.0, 1.0, "step 1/10001 (0%)  elapsed 1:00:00  ETA 2:46:40"),
        (0, 100_000, 5.0, 1.0, "step 0/100000 (0%)  elapsed 0:05  ETA 27:46:40"),
    ],
)
def test_progress_line_closed_form(step, total, elapsed_s, steps_per_s, expected):
    assert format_progress(step, total, elapsed_s, steps_per_s) == expected


@pytest.mark.parametrize("rate", [0.0, -1.0, float("nan"), float("inf")])
def test_progress_line_without_a_usable_rate_has_no_eta(rate):
    assert format_progress(10, 100, 3.0, rate) == "step 10/100 (10%)  elapsed 0:03  ETA ?"


@pytest.mark.parametrize("rate", [0.0, 4.0])
def test_progress_line_when_finished(rate):
    line = format_progress(100, 100, 125.0, rate, images_per_s=512.0)
    assert line == "step 100/100 (100%)  512 img/s  elapsed 2:05  done"


# --- grids upscaled for viewing ----------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, factor",
    [
        ((242, 242, 1), 4),  # ceil(768 / 242): a 3x3 grid of 28x28 images -> 968 px
        ((146, 182, 3), 5),  # the long side decides, whichever axis it is
        ((182, 146, 3), 5),
        ((256, 100, 1), 3),  # exactly 768
        ((767, 10, 1), 2),
        ((1, 1, 3), 768),
    ],
)
def test_upscale_factor_is_the_smallest_reaching_the_long_side(shape, factor):
    grid = np.zeros(shape, np.uint8)
    out = gan_images.upscale_for_viewing(grid)
    assert out.shape == (shape[0] * factor, shape[1] * factor, shape[2])
    assert out.dtype == np.uint8
    assert max(out.shape[:2]) >= 768 and max(out.shape[:2]) - max(shape[:2]) < 768


def test_upscale_repeats_each_pixel_into_a_block_gray():
    rng = np.random.default_rng(0)
    grid = rng.integers(0, 256, size=(30, 20, 1), dtype=np.uint8)
    out = gan_images.upscale_for_viewing(grid, min_long_side=90)  # factor 3
    assert out.shape == (90, 60, 1)
    for y in range(30):
        for x in range(20):
            assert (out[3 * y : 3 * y + 3, 3 * x : 3 * x + 3] == grid[y, x]).all()


def test_upscale_repeats_each_pixel_into_a_block_rgb():
    grid = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [10, 20, 30]]], np.uint8)  # 2x2 RGB
    out = gan_images.upscale_for_viewing(grid, min_long_side=5)  # ceil(5 / 2) = 3
    expected = np.array(
        [[[255, 0, 0]] * 3 + [[0, 255, 0]] * 3] * 3 + [[[0, 0, 255]] * 3 + [[10, 20, 30]] * 3] * 3,
        np.uint8,
    )
    np.testing.assert_array_equal(out, expected)
    # Downsampling by taking every 3rd pixel gives the grid back.
    np.testing.assert_array_equal(out[::3, ::3], grid)


def test_upscale_of_a_2d_image():
    grid = np.arange(6, dtype=np.uint8).reshape(2, 3)
    out = gan_images.upscale_for_viewing(grid, min_long_side=6)
    np.testing.assert_array_equal(out, np.kron(grid, np.ones((2, 2), np.uint8)))


@pytest.mark.parametrize("shape", [(768, 100, 1), (100, 1000, 3), (2000, 2000, 1)])
def test_upscale_never_downscales(shape):
    grid = np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8)
    np.testing.assert_array_equal(gan_images.upscale_for_viewing(grid), grid)


def test_upscaled_grid_round_trips_through_png(tmp_path):
    tiles = np.random.default_rng(2).integers(0, 256, size=(9, 28, 28, 3), dtype=np.uint8)
    grid = gan_images.make_grid(tiles)
    assert grid.shape == (92, 92, 3)
    viewed = gan_images.upscale_for_viewing(grid)
    assert viewed.shape == (9 * 92, 9 * 92, 3)  # ceil(768 / 92) = 9
    gan_images.save_png(tmp_path / "g.png", viewed)
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "g.png")), viewed)
