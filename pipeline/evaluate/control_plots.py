"""The pictures of the controls' measurements (pipeline.evaluate.control_metrics).

One concern, drawing: ``nearest_neighbours.png`` (samples beside their nearest training
images, the memorisation check) and ``truncation_tradeoff.png`` (Frechet distance, precision
and recall against the truncation psi), with PIL (matplotlib is not a runtime dependency).
"""

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gan_keras import images as gan_images

# Memorisation check: neighbours shown (and searched) per sample, samples shown.
NEIGHBOURS = 5
NEIGHBOUR_GRID_SAMPLES = 8
# Tiles of nearest_neighbours.png are upscaled (nearest) to at least this many pixels.
NEIGHBOUR_TILE_MIN = 48
TRUNCATION_PLOT = "truncation_tradeoff.png"
TRUNCATION_PLOT_SIZE = (760, 320)
NEIGHBOURS_PLOT = "nearest_neighbours.png"


def _tile_scale(height: int) -> int:
    return max(1, -(-NEIGHBOUR_TILE_MIN // height))


def neighbour_grid(samples: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """One row per sample: the sample, a blank tile, then its neighbours ([S, K, H, W, C])."""
    scale = _tile_scale(samples.shape[1])
    rows = []
    for sample, near in zip(samples, neighbours, strict=True):
        rows += [sample, np.zeros_like(sample), *near]
    tiles = np.stack(rows).repeat(scale, axis=1).repeat(scale, axis=2)
    return gan_images.make_grid(tiles, rows=len(samples))


def neighbour_grid_size(num_samples: int, height: int, width: int) -> tuple[int, int]:
    """(width, height) in pixels of `neighbour_grid` for that many samples of H x W."""
    scale, padding = _tile_scale(height), 2
    return (
        (NEIGHBOURS + 2) * (width * scale + padding) + padding,
        num_samples * (height * scale + padding) + padding,
    )


# --------------------------------------------------------------------------
# The truncation plot (PIL: matplotlib is not a runtime dependency)
# --------------------------------------------------------------------------


def _font(size: int = 12):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _panel(draw, box, xs, series, title, font) -> None:
    left, top, right, bottom = box
    x0, x1, y0, y1 = left + 52, right - 12, top + 26, bottom - 40
    values = [y for _, ys, _ in series for y in ys if y is not None and math.isfinite(y)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    lo, hi = lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)
    x_lo, x_hi = min(xs), max(xs)
    if x_hi - x_lo < 1e-12:
        x_lo, x_hi = x_lo - 0.05, x_hi + 0.05

    def px(x):
        return x0 + (x - x_lo) / (x_hi - x_lo) * (x1 - x0)

    def py(y):
        return y1 - (y - lo) / (hi - lo) * (y1 - y0)

    draw.text((x0, top + 6), title, fill="black", font=font, anchor="lt")
    draw.rectangle([x0, y0, x1, y1], outline="black")
    for x in xs:
        draw.line([px(x), y1, px(x), y1 + 4], fill="black")
        draw.text((px(x), y1 + 6), f"{x:g}", fill="black", font=font, anchor="mt")
    draw.text(((x0 + x1) / 2, bottom - 6), "truncation psi", fill="black", font=font, anchor="mb")
    for i in range(5):
        y = lo + i * (hi - lo) / 4
        draw.line([x0 - 4, py(y), x0, py(y)], fill="black")
        draw.text((x0 - 6, py(y)), f"{y:.3g}", fill="black", font=font, anchor="rm")
    legend_right = x1
    for label, ys, color in reversed(series):
        points = [
            (px(x), py(y))
            for x, y in zip(xs, ys, strict=True)
            if y is not None and math.isfinite(y)
        ]
        if len(points) > 1:
            draw.line(points, fill=color, width=2)
        for x, y in points:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=color)
        # The legend: right-aligned above the plot, in the series' colours.
        draw.text((legend_right, top + 6), label, fill=color, font=font, anchor="rt")
        legend_right -= draw.textlength(label, font=font) + 10


def plot_truncation(rows: list[dict], path) -> None:
    """Frechet distance, and precision and recall, against psi: TRUNCATION_PLOT_SIZE, PNG."""
    width, height = TRUNCATION_PLOT_SIZE
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = _font()
    rows = sorted(rows, key=lambda r: r["psi"])
    xs = [r["psi"] for r in rows]
    _panel(
        draw,
        (0, 0, width // 2, height),
        xs,
        [("FD", [r["frechet_distance"] for r in rows], (200, 30, 30))],
        "Frechet distance (lower is better)",
        font,
    )
    _panel(
        draw,
        (width // 2, 0, width, height),
        xs,
        [
            ("precision", [r["precision"] for r in rows], (30, 80, 200)),
            ("recall", [r["recall"] for r in rows], (230, 130, 0)),
        ],
        "higher is better:",
        font,
    )
    image.save(path, format="PNG")
