"""Shared test setup.

Two logical CPU devices let distribution tests run MirroredStrategy with two
replicas on any machine; they must be configured before TensorFlow starts.
"""

import os
import pathlib
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
except RuntimeError:
    pass  # already initialised by an earlier import; distribution tests skip themselves

REPO = pathlib.Path(__file__).resolve().parents[1]


def run_pipeline(workdir, *args, config="configs/smoke.py", check=True, timeout=600, env=None):
    """Runs `python -m pipeline.run` in a subprocess, as a user would."""
    cmd = [
        sys.executable,
        "-m",
        "pipeline.run",
        f"--config={REPO / config}",
        f"--workdir={workdir}",
        *args,
    ]
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    result = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=full_env
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"pipeline failed ({result.returncode}):\n{result.stdout}\n{result.stderr[-6000:]}"
        )
    return result


@pytest.fixture(scope="session")
def smoke_workdir(tmp_path_factory):
    """A workdir in which the whole smoke pipeline has run once (shared, read-only)."""
    workdir = tmp_path_factory.mktemp("smoke") / "work"
    result = run_pipeline(workdir)
    workdir.joinpath("run_stdout.txt").write_text(result.stdout)
    workdir.joinpath("run_stderr.txt").write_text(result.stderr)
    return workdir


def tiny_generator(
    conditional: bool,
    seed: int = 0,
    *,
    latent_dim: int = 8,
    num_classes: int = 3,
    channels: int = 1,
):
    """A small generator honouring the generator contract: z (and label) -> 8x8 images in
    [-1, 1]."""
    import keras

    keras.utils.set_random_seed(seed)
    z = keras.Input((latent_dim,))
    inputs, h = z, z
    if conditional:
        label = keras.Input((), dtype="int32")
        emb = keras.layers.Flatten()(keras.layers.Embedding(num_classes, latent_dim)(label))
        h = keras.layers.Concatenate()([z, emb])
        inputs = [z, label]
    h = keras.layers.Reshape((4, 4, 8))(keras.layers.Dense(4 * 4 * 8)(h))
    out = keras.layers.Conv2DTranspose(channels, 3, strides=2, padding="same", activation="tanh")(h)
    return keras.Model(inputs, out)
