"""The test session's devices: conftest.py splits the CPU into two logical devices before
TensorFlow starts, so that every 2-replica equivalence test really runs on two replicas."""

import tensorflow as tf


def test_conftest_split_the_cpu_into_two_logical_devices():
    assert len(tf.config.list_physical_devices("CPU")) == 1
    assert len(tf.config.list_logical_devices("CPU")) == 2


def test_gan_keras_turns_on_onednn_kernels_unless_the_user_chose():
    """The suite itself runs Eigen's kernels (conftest.py); users get oneDNN's, 1.8-3x faster on
    AVX2 CPUs where TensorFlow leaves them off (docs/results.md)."""
    import os
    import subprocess
    import sys

    probe = "import gan_keras, os; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    unset = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    chosen = subprocess.run(
        [sys.executable, "-c", probe],
        env={**env, "TF_ENABLE_ONEDNN_OPTS": "0"},
        capture_output=True,
        text=True,
    )
    assert (unset.stdout.strip(), chosen.stdout.strip()) == ("1", "0"), unset.stderr + chosen.stderr
