"""Three-channel data through every stage: ingest, train, evaluate and export on RGB images.

Every image has the same dominant colour (red over green over blue) and a class-coloured square;
a channel dropped, swapped or averaged anywhere between the PNG files and the exported model
shows up in the colours the trained generator draws.
"""

import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from configs import smoke
from pipeline import runner

pytestmark = pytest.mark.slow

BASE_COLOUR = (200, 110, 30)
STEPS = 100


def _write_rgb_folder(root, per_class=80):
    rng = np.random.default_rng(0)
    for k, name in enumerate(("a", "b", "c")):
        directory = root / name
        directory.mkdir(parents=True)
        for i in range(per_class):
            image = np.empty((16, 16, 3), np.float32)
            image[:] = BASE_COLOUR
            image += rng.normal(0, 15, image.shape)
            y, x = rng.integers(2, 10, 2)
            image[y : y + 6, x : x + 6, k] = (
                0 if k == 0 else 255
            )  # the class: a square in channel k
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB").save(
                directory / f"{i}.png"
            )


def _tiles(grid, size=16, padding=2):
    """The images of a grid from gan_keras.images.make_grid, without the padding."""
    rows, cols = (
        (grid.shape[0] - padding) // (size + padding),
        (grid.shape[1] - padding) // (size + padding),
    )
    return np.stack(
        [
            grid[
                padding + r * (size + padding) : padding + r * (size + padding) + size,
                padding + c * (size + padding) : padding + c * (size + padding) + size,
            ]
            for r in range(rows)
            for c in range(cols)
        ]
    )


@pytest.fixture(scope="module")
def rgb_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("rgb")
    _write_rgb_folder(root / "images")
    config = smoke.get_config()
    config.data.source = f"folder:{root / 'images'}"
    config.data.channels = 3
    config.data.num_shards = 1
    config.data.eval_fraction = 0.25
    config.train.steps = STEPS
    config.train.sample_every = config.train.checkpoint_every = STEPS
    config.evaluate.num_samples = 200
    config.evaluate.kid_subset_size = 50
    config.evaluate.classifier_min_steps = 100
    workdir = root / "work"
    results = runner.Runner(config, workdir).run()
    return workdir, results


def test_ingest_keeps_three_channels_in_order(rgb_run):
    workdir, results = rgb_run
    stats = results["ingest"]
    assert (stats["resolution"], stats["channels"], stats["num_classes"]) == (16, 3, 3)
    assert stats["records_written"] == 240 and stats["rejected"] == 0
    red, green, blue = stats["pixel_mean"]
    assert red > green + 50 and green > blue + 50


def test_training_draws_rgb_samples_in_the_datas_colours(rgb_run):
    workdir, results = rgb_run
    assert results["train"]["final_step"] == STEPS
    raw = workdir / "train" / "samples" / "raw"  # the grids at 1:1, as _tiles expects
    real = np.array(Image.open(raw / "real.png"))
    fake = np.array(Image.open(raw / f"step_{STEPS:07d}.png"))
    assert real.ndim == 3 and real.shape[-1] == 3 and fake.shape == real.shape
    # The real grid shows the training images' colours...
    red, green, blue = _tiles(real).reshape(-1, 3).mean(axis=0)
    assert red > green + 50 and green > blue + 50
    # ...and the generator has learnt them: red over green over blue, from grey at the start.
    red, green, blue = _tiles(fake).reshape(-1, 3).mean(axis=0)
    assert red > green + 10 and green > blue + 10, (red, green, blue)


def test_evaluation_and_export_of_an_rgb_model(rgb_run):
    workdir, results = rgb_run
    metrics = json.loads((workdir / "evaluate" / "metrics.json").read_text())
    assert metrics["classifier_eval_accuracy"] > 0.9  # the judge tells the coloured squares apart
    references = metrics["references"]
    assert references["real_floor"]["frechet_distance"] < metrics["frechet_distance"]
    assert metrics["frechet_distance"] < references["noise_ceiling"]["frechet_distance"]
    assert metrics["blessed"] is True and results["export"]["exported"] is True

    path = workdir / "export" / "generator" / "1"
    info = json.loads((path / "assets.extra" / "model_info.json").read_text())
    assert info["image_shape"] == [16, 16, 3]
    model = tf.saved_model.load(str(path))
    images = model.signatures["sample"](
        num_samples=tf.constant(256), seed=tf.constant(0, tf.int64)
    )["images"]
    assert images.shape == (256, 16, 16, 3) and images.dtype == tf.uint8
    red, green, blue = images.numpy().reshape(-1, 3).mean(axis=0)
    assert red > green + 10 and green > blue + 10, (red, green, blue)
