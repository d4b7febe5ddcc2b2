"""pipeline.generate and gan_keras.client.sampling: grid and per-image outputs from an export."""

import os
import shutil
import subprocess
import sys

import helpers
import numpy as np
import pytest
from PIL import Image

from gan_keras import images as gan_images
from gan_keras.client import sampling
from gan_keras.export import sampling_model as gan_export

LATENT = 8
CLASSES = 3


def tiny_generator(conditional: bool, seed: int = 0):
    return helpers.tiny_generator(
        conditional, seed, latent_dim=LATENT, num_classes=CLASSES, channels=3
    )


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    gan_export.export_generator(tiny_generator(False, 1), root / "uncond", latent_dim=LATENT)
    gan_export.export_generator(tiny_generator(False, 2), root / "uncond", latent_dim=LATENT)
    gan_export.export_generator(
        tiny_generator(True), root / "cond", latent_dim=LATENT, num_classes=CLASSES
    )
    return root


def _read(path):
    return np.array(Image.open(path))


def _generate_command(how):
    if how == "console_script":
        script = shutil.which("gan-generate", path=os.path.dirname(sys.executable))
        assert script, "the gan-generate console script is not installed (pip install -e .)"
        return [script]
    return [sys.executable, "-m", "pipeline.generate"]


@pytest.mark.slow
@pytest.mark.parametrize("how", ["console_script", "module"])
def test_cli_writes_grid_and_images(bases, tmp_path, how):
    """`gan-generate` (setup.py's console script) and `python -m pipeline.generate`."""
    grid, out_dir = tmp_path / "grid.png", tmp_path / "images"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = str(helpers.REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        _generate_command(how)
        + [
            f"--model_base_path={bases / 'uncond'}",
            "--num=6",
            "--seed=5",
            f"--out={grid}",
            f"--out_dir={out_dir}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The files are the highest version's images for that seed...
    expected = sampling.generate(bases / "uncond", num=6, seed=5)
    files = sorted(p.name for p in out_dir.iterdir())
    assert files == [f"sample_{i:05d}.png" for i in range(6)]
    for i, name in enumerate(files):
        np.testing.assert_array_equal(_read(out_dir / name), expected[i])
    # ...and the grid holds them: 6 images of 8x8x3 in a 2x3 grid with 2-pixel padding.
    assert _read(grid).shape == (2 * 10 + 2, 3 * 10 + 2, 3)
    np.testing.assert_array_equal(_read(grid), gan_images.make_grid(expected))


@pytest.mark.slow
def test_console_script_generates_a_class_from_a_chosen_version(bases, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = str(helpers.REPO) + os.pathsep + env.get("PYTHONPATH", "")
    grid = tmp_path / "grid.png"
    proc = subprocess.run(
        _generate_command("console_script")
        + [
            f"--model_base_path={bases / 'cond'}",
            "--version=1",
            "--label=2",
            "--num=4",
            "--seed=2",
            f"--out={grid}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = sampling.generate(bases / "cond", num=4, seed=2, label=2)
    np.testing.assert_array_equal(_read(grid), gan_images.make_grid(expected))
    assert not np.array_equal(expected, sampling.generate(bases / "cond", num=4, seed=2, label=0))


def test_seed_version_and_label(bases):
    a = sampling.generate(bases / "uncond", num=4, seed=0)
    assert a.dtype == np.uint8 and a.shape == (4, 8, 8, 3)
    np.testing.assert_array_equal(a, sampling.generate(bases / "uncond", num=4, seed=0))
    assert not np.array_equal(a, sampling.generate(bases / "uncond", num=4, seed=1))
    v1 = sampling.generate(bases / "uncond", num=4, seed=0, version=1)
    assert not np.array_equal(a, v1)
    np.testing.assert_array_equal(a, sampling.generate(bases / "uncond", num=4, seed=0, version=2))
    two = sampling.generate(bases / "cond", num=3, seed=0, label=2)
    zero = sampling.generate(bases / "cond", num=3, seed=0, label=0)
    assert not np.array_equal(two, zero)
    # No label: each image is that of a random class for the same latent (the sample signature
    # draws z from the seed alone), and the classes vary.
    per_class = [sampling.generate(bases / "cond", num=12, seed=0, label=c) for c in range(CLASSES)]
    mixed = sampling.generate(bases / "cond", num=12, seed=0)
    drawn = []
    for i, image in enumerate(mixed):
        matches = [c for c in range(CLASSES) if np.array_equal(image, per_class[c][i])]
        assert len(matches) == 1, (i, matches)
        drawn += matches
    assert len(set(drawn)) > 1


def test_errors(bases, tmp_path):
    with pytest.raises(FileNotFoundError, match="No integer version"):
        sampling.generate(tmp_path, num=1)
    with pytest.raises(FileNotFoundError, match="Version 7"):
        sampling.generate(bases / "uncond", num=1, version=7)
    with pytest.raises(ValueError, match="unconditional"):
        sampling.generate(bases / "uncond", num=1, label=1)
    with pytest.raises(ValueError, match="num_classes"):
        sampling.generate(bases / "cond", num=1, label=CLASSES)
    with pytest.raises(ValueError, match="--num"):
        sampling.generate(bases / "cond", num=0)
