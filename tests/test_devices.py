"""The test session's devices: conftest.py splits the CPU into two logical devices before
TensorFlow starts, so that every 2-replica equivalence test really runs on two replicas."""

import tensorflow as tf


def test_conftest_split_the_cpu_into_two_logical_devices():
    assert len(tf.config.list_physical_devices("CPU")) == 1
    assert len(tf.config.list_logical_devices("CPU")) == 2
