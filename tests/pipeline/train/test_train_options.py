"""train.jit_compile (XLA) and train.mixed_precision on the smoke config."""

import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import run_pipeline

from configs import smoke
from pipeline import checkpoints
from pipeline.train import loop

STEPS = 10

# Every test here trains (the train stage, on the smoke run's ingest output).
pytestmark = pytest.mark.slow


def _workdir(smoke_workdir, path):
    shutil.copytree(smoke_workdir / "ingest", path / "ingest")
    return path


def _config(**train_fields):
    config = smoke.get_config()
    config.train.update(
        {
            "strategy": "default",
            "steps": STEPS,
            "checkpoint_every": STEPS,
            "log_every": STEPS,
            "sample_every": STEPS,
            **train_fields,
        }
    )
    return config


def _weights(config, workdir):
    # Trainable weights: Adam moves each by about lr per step. (The EMA generator's BatchNorm
    # statistics are re-estimated from its weights, not stepped by the optimizer.)
    generator = checkpoints.load_generator(config, workdir)
    return np.concatenate([np.ravel(w) for w in generator.trainable_weights])


@pytest.fixture(scope="module")
def float32_run(smoke_workdir, tmp_path_factory):
    workdir = _workdir(smoke_workdir, tmp_path_factory.mktemp("float32"))
    config = _config()
    loop.run_train(config, workdir)
    return _weights(config, workdir)


def test_xla_trains_and_really_compiles(smoke_workdir, tmp_path, float32_run):
    config = _config(jit_compile=True)
    summary = loop.run_train(config, _workdir(smoke_workdir, tmp_path))
    assert summary["final_step"] == STEPS
    assert all(np.isfinite(v) for v in summary["last_window_metrics"].values())
    weights = _weights(config, tmp_path)
    assert np.isfinite(weights).all()
    # TensorFlow's XLA kernels for stateless RNG draw other numbers than its
    # CPU kernels (even with alg="philox"), so a compiled step sees different
    # noise: a run that equalled the uncompiled one would not have used XLA.
    # Same learning rate and step count: the weights moved as far (Adam's
    # steps are about lr each).
    assert np.max(np.abs(weights - float32_run)) > 1e-4
    assert np.max(np.abs(weights - float32_run)) < 2 * config.train.g_learning_rate * STEPS


@pytest.mark.heavy
def test_xla_with_the_default_mirrored_strategy_from_the_command_line(
    smoke_workdir, tmp_path, float32_run
):
    # configs/default.py trains under MirroredStrategy; on this CPU-only host
    # (no logical-device split in the subprocess) that is one replica.
    workdir = _workdir(smoke_workdir, tmp_path)
    run_pipeline(
        workdir,
        "--stages=train",
        "--config.train.jit_compile=True",
        f"--config.train.steps={STEPS}",
        env={"CUDA_VISIBLE_DEVICES": ""},
    )
    assert tf.train.latest_checkpoint(str(workdir / "train/checkpoints")).endswith(f"ckpt-{STEPS}")
    manifest = json.loads((workdir / "train" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["config"]["train.jit_compile"] is True
    summary = manifest["summary"]
    assert (summary["replicas"], summary["start_step"], summary["final_step"]) == (1, 0, STEPS)
    assert all(np.isfinite(v) for v in summary["last_window_metrics"].values())
    # The same run uncompiled gives float32_run's weights exactly (one replica of MirroredStrategy
    # computes what the default strategy does); XLA's other RNG kernels move them, as far.
    config = _config(jit_compile=True)
    weights = _weights(config, workdir)
    assert 1e-4 < np.max(np.abs(weights - float32_run)) < 2 * config.train.g_learning_rate * STEPS


def test_xla_with_several_cpu_replicas_fails_before_training(smoke_workdir, tmp_path):
    # conftest splits the CPU in two, so MirroredStrategy has 2 replicas here.
    config = _config(jit_compile=True, strategy="mirrored")
    with pytest.raises(ValueError, match="jit_compile=True with 2 replicas on CPUs"):
        loop.run_train(config, _workdir(smoke_workdir, tmp_path))
    assert not (tmp_path / "train" / "checkpoints").exists()


def test_mixed_precision_trains_in_bfloat16_and_keeps_float32_weights(
    smoke_workdir, tmp_path, float32_run
):
    config = _config(mixed_precision=True)
    summary = loop.run_train(config, _workdir(smoke_workdir, tmp_path))
    assert summary["final_step"] == STEPS
    # The process-wide policy is back to float32 for whatever runs next.
    assert keras.mixed_precision.global_policy().name == "float32"
    reader = tf.train.load_checkpoint(summary["latest_checkpoint"])
    dtypes = set(reader.get_variable_to_dtype_map().values())
    assert tf.bfloat16 not in dtypes and tf.float16 not in dtypes and tf.float32 in dtypes
    generator = checkpoints.load_generator(config, tmp_path)
    images = generator(tf.random.stateless_normal([4, config.model.latent_dim], [0, 1]))
    assert images.dtype == tf.float32 and np.isfinite(images.numpy()).all()
    # bfloat16 compute really happened (the weights differ from the float32
    # run), yet it is the same training (they stay close).
    weights = _weights(config, tmp_path)
    assert 1e-6 < np.max(np.abs(weights - float32_run)) < 0.02
