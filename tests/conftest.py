"""Shared test setup: TensorFlow's devices and the pytest fixtures. Helpers that tests call
directly live in helpers.py.

Two logical CPU devices let distribution tests run MirroredStrategy with two
replicas on any machine; they must be configured before TensorFlow starts, and
tests/test_devices.py checks that they were.
"""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

# No try/except: if something initialised TensorFlow before this line (a plugin, an import in
# a test module collected first), the 2-replica equivalence tests would have one device and
# prove nothing, so the session stops here with TensorFlow's RuntimeError instead.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

from helpers import run_pipeline  # noqa: E402


@pytest.fixture(scope="session")
def smoke_workdir(tmp_path_factory):
    """A workdir in which the whole smoke pipeline has run once (shared, read-only)."""
    workdir = tmp_path_factory.mktemp("smoke") / "work"
    result = run_pipeline(workdir)
    workdir.joinpath("run_stdout.txt").write_text(result.stdout)
    workdir.joinpath("run_stderr.txt").write_text(result.stderr)
    return workdir
