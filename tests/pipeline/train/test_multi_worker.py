"""Multi-worker training: two `pipeline.run` processes on loopback ports under
MultiWorkerMirroredStrategy (cluster from TF_CONFIG), sharing one workdir.

Checks what an operator relies on: the cluster trains the same model as one
process at the same global batch and seed, only the chief writes to the
workdir, and after a worker is SIGKILLed a restarted cluster resumes from the
chief's last checkpoint without repeating or skipping steps.

The DCGAN with synchronised BatchNorm is the model here: the cross-process collectives are
the same for every model. StyleGAN2's regularisers under two replicas (style mixing, lazy R1,
path length, w_avg) are proven in one process (tests/gan_keras/models/test_stylegan2.py),
which costs a fifth of a cluster run.
"""

import contextlib
import json
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from helpers import REPO

from configs import smoke
from pipeline import checkpoints, runner
from pipeline.train import loop

# Synchronised BatchNorm makes 2 replicas x 16 the same computation as 1 x 32;
# with per-replica statistics it is a different (equally valid) model.
FLAGS = [
    "--stages=train",
    "--config.train.strategy=multi_worker",
    "--config.model.sync_batch_norm=True",
    "--config.train.checkpoint_every=10",
    "--config.train.log_every=10",
]
# Failure guards only: every wait below ends as soon as what it waits for has happened.
GUARD_SECONDS = 600
# What a worker logs when its gRPC server cannot bind its port (TensorFlow's message).
_PORT_TAKEN = "Could not start gRPC server"
_MAX_LAUNCHES = 4

pytestmark = pytest.mark.slow


def _unused_ports(n):
    """`n` ports free right now, below the kernel's ephemeral range.

    TF_CONFIG must name every worker's address before any of them starts, so the ports cannot
    be bound by the servers themselves first (port 0) and read back. Ports outside the range
    the kernel hands out for port 0 and outgoing connections cannot be taken by another
    process's automatic choice in the meantime; only a process naming the same port could take
    one, and a worker that cannot bind is detected and the cluster relaunched (_Cluster).
    """
    try:
        low = int(pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.SystemRandom()
    ports = []
    while len(ports) < n:
        port = rng.randrange(max(1024, low - 16384), low)
        if port in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))  # TensorFlow's gRPC server binds every interface
            except OSError:
                continue
        ports.append(port)
    return ports


class _Cluster:
    """Two worker processes, each in its own process group so it can be killed whole.

    A launch whose worker could not bind its port (taken since it was chosen) is relaunched
    with other ports; this happens before training starts, so it changes nothing else.
    """

    def __init__(self, workdir, tmp_path, tag, steps, sample_every, extra=()):
        """`workdir`: shared by both workers, or a list with one per worker."""
        self.workdirs = workdir if isinstance(workdir, list) else [workdir, workdir]
        self.tmp_path, self.tag = tmp_path, tag
        self.args = [
            f"--config.train.steps={steps}",
            f"--config.train.sample_every={sample_every}",
            *extra,
        ]
        self.launches = 0
        self._launch()

    def _launch(self):
        self.launches += 1
        ports = _unused_ports(2)
        cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
        self.logs, self.tmpdirs, self.procs = [], [], []
        for index in range(2):
            tmpdir = self.tmp_path / f"tmp-{self.tag}-{self.launches}-{index}"
            tmpdir.mkdir()
            log = self.tmp_path / f"worker{index}-{self.tag}-{self.launches}.log"
            env = {
                **os.environ,
                "CUDA_VISIBLE_DEVICES": "",
                "TF_CPP_MIN_LOG_LEVEL": "2",
                "TMPDIR": str(tmpdir),  # where a non-chief puts its scratch directory
                "TF_CONFIG": json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": index}}
                ),
            }
            cmd = [
                sys.executable,
                "-m",
                "pipeline.run",
                f"--config={REPO / 'configs/smoke.py'}",
                f"--workdir={self.workdirs[index]}",
                *FLAGS,
                *self.args,
            ]
            with open(log, "w") as out:
                self.procs.append(
                    subprocess.Popen(
                        cmd,
                        cwd=REPO,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            self.logs.append(log)
            self.tmpdirs.append(tmpdir)

    def log(self, index):
        return self.logs[index].read_text()

    def kill(self, index):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.procs[index].pid, signal.SIGKILL)
        self.procs[index].wait()

    def exited(self):
        return all(proc.poll() is not None for proc in self.procs)

    def poll_until(self, done, what, timeout=GUARD_SECONDS):
        """Returns as soon as `done()`; relaunches a cluster that could not bind its ports."""
        deadline = time.monotonic() + timeout
        while True:
            if any(
                proc.poll() is not None and _PORT_TAKEN in self.log(index)
                for index, proc in enumerate(self.procs)
            ):
                assert self.launches < _MAX_LAUNCHES, (
                    f"no free ports after {self.launches} launches"
                )
                self.close()
                self._launch()
                continue
            if done():
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"still waiting for {what} after {timeout} s (a failure guard):\n"
                    + "\n".join(self.log(i)[-3000:] for i in range(2))
                )
            time.sleep(0.05)

    def wait(self):
        """Both workers' exit; both must succeed."""
        self.poll_until(self.exited, "the workers to exit")
        for index, proc in enumerate(self.procs):
            assert proc.returncode == 0, (
                f"worker {index} exited with {proc.returncode}:\n{self.log(index)[-6000:]}"
            )

    def close(self):
        for index, proc in enumerate(self.procs):
            if proc.poll() is None:
                self.kill(index)


@contextlib.contextmanager
def _cluster(*args, **kwargs):
    cluster = _Cluster(*args, **kwargs)
    try:
        yield cluster
    finally:
        cluster.close()


def _workdir_with_ingest(smoke_workdir, path):
    shutil.copytree(smoke_workdir / "ingest", path / "ingest")
    return path


def _reference_run(workdir, *step_targets):
    """One process, one replica, same global batch and seed; resumes at each target in turn."""
    config = smoke.get_config()
    config.train.strategy = "default"
    config.model.sync_batch_norm = True
    config.train.checkpoint_every = 10
    config.train.log_every = 10
    for steps in step_targets:
        config.train.steps = steps
        loop.run_train(config, workdir)
    return config


def _assert_same_training_state(ckpt_a, ckpt_b, atol):
    """Every float tensor of two checkpoints (G, D, EMA G, both Adam states) agrees."""
    a, b = tf.train.load_checkpoint(str(ckpt_a)), tf.train.load_checkpoint(str(ckpt_b))
    names = sorted(a.get_variable_to_shape_map())
    assert names == sorted(b.get_variable_to_shape_map())
    compared = 0
    for name in names:
        x, y = a.get_tensor(name), b.get_tensor(name)
        if not isinstance(x, np.ndarray) or x.dtype == object:
            continue  # the object graph
        np.testing.assert_allclose(x, y, rtol=0, atol=atol, err_msg=name)
        compared += 1
    assert compared > 20


def _logged_steps(log):
    return [
        int(line.split("] step ")[1].split("/")[0])
        for line in log.splitlines()
        if "] step " in line
    ]


def test_two_workers_train_like_one_process_and_only_the_chief_writes(smoke_workdir, tmp_path):
    workdir = _workdir_with_ingest(smoke_workdir, tmp_path / "work")
    with _cluster(workdir, tmp_path, "run", steps=40, sample_every=20) as cluster:
        cluster.wait()

    for index in (0, 1):
        assert "step 40/40" in cluster.log(index)
    reference = _workdir_with_ingest(smoke_workdir, tmp_path / "reference")
    config = _reference_run(reference, 40)
    _assert_same_training_state(
        workdir / "train/checkpoints/ckpt-40", reference / "train/checkpoints/ckpt-40", atol=1e-5
    )
    np.testing.assert_allclose(
        np.concatenate(
            [w.ravel() for w in checkpoints.load_generator(config, workdir).get_weights()]
        ),
        np.concatenate(
            [w.ravel() for w in checkpoints.load_generator(config, reference).get_weights()]
        ),
        rtol=0,
        atol=1e-5,
    )

    # Exactly the chief's artifacts: one event file, one set of samples and
    # checkpoints; worker 1 wrote to its scratch directory and removed it.
    files = sorted(
        str(p.relative_to(workdir / "train")) for p in (workdir / "train").rglob("*") if p.is_file()
    )
    events = [f for f in files if f.startswith("logs/")]
    assert len(events) == 1 and ".tfevents." in events[0], files
    assert [f for f in files if not f.startswith("logs/")] == [
        "checkpoints/checkpoint",
        *(
            f"checkpoints/ckpt-{s}.{ext}"
            for s in (20, 30, 40)
            for ext in ("data-00000-of-00001", "index")
        ),
        "manifest.json",
        "samples/raw/real.png",
        "samples/raw/step_0000020.png",
        "samples/raw/step_0000040.png",
        "samples/real.png",
        "samples/step_0000020.png",
        "samples/step_0000040.png",
    ]
    assert list(cluster.tmpdirs[1].iterdir()) == [], "worker 1 left its scratch directory behind"
    assert list(cluster.tmpdirs[0].iterdir()) == []

    manifest = json.loads((workdir / "train/manifest.json").read_text())
    assert manifest["status"] == "complete"
    summary = manifest["summary"]
    assert summary["chief"] is True and summary["replicas"] == 2 and summary["final_step"] == 40
    assert summary["latest_checkpoint"] == str(workdir / "train/checkpoints/ckpt-40")


@pytest.mark.heavy
def test_sigkilled_worker_then_cluster_restart_resumes_from_the_chiefs_checkpoint(
    smoke_workdir, tmp_path
):
    workdir = _workdir_with_ingest(smoke_workdir, tmp_path / "work")
    ckpt_dir = workdir / "train" / "checkpoints"
    # Keep every checkpoint, to compare the states around the restart.
    keep = ["--config.train.keep_checkpoints=1000"]

    def latest_step():
        latest = tf.train.latest_checkpoint(str(ckpt_dir)) if ckpt_dir.exists() else None
        return int(latest.rsplit("-", 1)[1]) if latest else 0

    # A step count the cluster cannot reach before it is killed, however fast the machine:
    # the kill always lands mid-run, after the checkpoint of step 20 exists.
    with _cluster(
        workdir, tmp_path, "first", steps=1_000_000, sample_every=100, extra=keep
    ) as cluster:
        cluster.poll_until(
            lambda: latest_step() >= 20 or cluster.exited(), "the checkpoint of step 20"
        )
        assert not cluster.exited(), (
            f"a worker exited mid-run:\n{cluster.log(0)[-4000:]}\n{cluster.log(1)[-4000:]}"
        )
        cluster.kill(1)
        # The chief fails on its next collective (UnavailableError after the
        # peer's heartbeats stop, ~10 s); a scheduler would restart the whole
        # cluster, so kill it too rather than wait.
        cluster.kill(0)
    resumed_from = latest_step()
    assert resumed_from >= 20
    assert json.loads((workdir / "train/manifest.json").read_text())["status"] == "running"

    # Restarted with a step count just past the checkpoint (train.steps may change on a resume).
    steps = resumed_from + 20
    with _cluster(
        workdir, tmp_path, "restart", steps=steps, sample_every=100, extra=keep
    ) as restart:
        restart.wait()
    chief_log, worker_log = restart.log(0), restart.log(1)
    assert (
        f"Resuming from step {resumed_from} (checkpoint {ckpt_dir}/ckpt-{resumed_from})"
        in chief_log
    )
    assert f"Resuming from step {resumed_from} (checkpoint of the chief)" in worker_log
    # Progress picks up right after the checkpoint, every step once, up to the end.
    for log in (chief_log, worker_log):
        assert _logged_steps(log) == list(range(resumed_from + 10, steps + 1, 10))
    manifest = json.loads((workdir / "train/manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert (
        manifest["summary"]["start_step"] == resumed_from
        and manifest["summary"]["final_step"] == steps
    )

    # Same states as one process interrupted at the same step: a repeated or
    # skipped step would shift the step-keyed noise and the data order. (Only
    # right after the restart: GAN training amplifies float round-off, so
    # 1- and 2-replica runs drift apart over hundreds of steps.)
    reference = _workdir_with_ingest(smoke_workdir, tmp_path / "reference")
    _reference_run(reference, resumed_from, resumed_from + 10)
    for step in (resumed_from, resumed_from + 10):
        _assert_same_training_state(
            ckpt_dir / f"ckpt-{step}", reference / f"train/checkpoints/ckpt-{step}", atol=1e-5
        )
    assert tf.train.latest_checkpoint(str(ckpt_dir)).endswith(f"ckpt-{steps}")


@pytest.mark.heavy
def test_workers_that_cannot_see_the_chiefs_checkpoints_fail_instead_of_training_apart(
    smoke_workdir, tmp_path
):
    # The chief resumes at step 10; worker 1 gets a workdir without checkpoints,
    # as on a host that does not share the chief's filesystem.
    chief_dir = _workdir_with_ingest(smoke_workdir, tmp_path / "chief")
    config = smoke.get_config()
    config.train.update(
        strategy="default", steps=10, checkpoint_every=10, log_every=10, sample_every=10
    )
    config.model.sync_batch_norm = True
    runner.Runner(config, chief_dir).run(["train"])
    other_dir = _workdir_with_ingest(smoke_workdir, tmp_path / "other")

    with _cluster([chief_dir, other_dir], tmp_path, "split", steps=20, sample_every=10) as cluster:
        cluster.poll_until(cluster.exited, "the workers to exit")
    for index, start in ((0, 10), (1, 0)):
        assert cluster.procs[index].returncode != 0
        assert (
            f"the workers resumed from different steps (this one: {start}, mean over replicas: 5)"
            in cluster.log(index)
        )
    assert tf.train.latest_checkpoint(str(chief_dir / "train/checkpoints")).endswith("ckpt-10")
