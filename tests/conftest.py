"""Shared test setup: TensorFlow's devices and the pytest fixtures. Helpers that tests call
directly live in helpers.py.

Two logical CPU devices let distribution tests run MirroredStrategy with two
replicas on any machine; they must be configured before TensorFlow starts, and
tests/test_devices.py checks that they were.
"""

import fcntl
import os
import shutil

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The suite runs TensorFlow's Eigen CPU kernels, not the oneDNN ones `gan_keras` turns on for
# users: the multi-worker tests compare a 2-process run with a 1-process run checkpoint by
# checkpoint, and with oneDNN (whose blocking follows the per-worker batch) they parted by up to
# 5.5e-4 after 40 steps, a gap no tolerance tells from a bug. tests/test_devices.py checks that
# gan_keras still turns oneDNN on where the user did not choose; TF_ENABLE_ONEDNN_OPTS=1 in the
# environment runs the suite on oneDNN.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import gan_keras  # noqa: E402, F401  (chooses TensorFlow's CPU kernels before TensorFlow loads)

# isort: split
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
    """A workdir in which the whole smoke pipeline has run once (shared, read-only).

    Built once per test run, not once per xdist worker: the workers share the parent of their
    base temp directory, and the first to take the lock builds it while the other waits (~45 s
    of CPU saved on 2 cores). Tests only read it, or copy what they change."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    workdir = root / "smoke-shared" / "work"
    done = root / "smoke-shared" / "done"
    (root / "smoke-shared").mkdir(parents=True, exist_ok=True)
    with open(root / "smoke-shared.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            if workdir.exists():
                shutil.rmtree(workdir)  # a build that failed in the other worker
            result = run_pipeline(workdir)
            workdir.joinpath("run_stdout.txt").write_text(result.stdout)
            workdir.joinpath("run_stderr.txt").write_text(result.stderr)
            done.touch()
    return workdir


def pytest_collection_modifyitems(items):
    """Files with slow tests first, each file's tests in their own order: xdist (--dist
    loadfile) then hands out the long files while there is other work left to balance them,
    instead of one worker finishing a long file alone at the end."""
    has_slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in has_slow)
