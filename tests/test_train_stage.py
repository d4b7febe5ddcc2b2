"""The train stage: resume after SIGKILL, divergence handling, TensorBoard server."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO

from configs import smoke
from gan_keras import input_pipeline, losses
from pipeline import train


def _fresh_workdir(smoke_workdir, tmp_path):
    """A workdir holding only the smoke run's ingest output."""
    workdir = tmp_path / "work"
    shutil.copytree(smoke_workdir / "ingest", workdir / "ingest")
    return workdir


def test_sigkill_mid_run_then_rerun_resumes_and_finishes_at_the_right_step(smoke_workdir, tmp_path):
    workdir = _fresh_workdir(smoke_workdir, tmp_path)
    cmd = [sys.executable, "-m", "pipeline.run", f"--config={REPO / 'configs/smoke.py'}",
           f"--workdir={workdir}", "--stages=train", "--config.train.steps=400",
           "--config.train.checkpoint_every=20", "--config.train.log_every=20",
           "--config.train.sample_every=200"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt_dir = workdir / "train" / "checkpoints"
    deadline = time.time() + 240
    killed_after = None
    while time.time() < deadline and proc.poll() is None:
        latest = tf.train.latest_checkpoint(str(ckpt_dir)) if ckpt_dir.exists() else None
        if latest and int(latest.rsplit("-", 1)[1]) >= 40:
            proc.send_signal(signal.SIGKILL)
            killed_after = int(latest.rsplit("-", 1)[1])
            break
        time.sleep(0.05)
    proc.wait(timeout=30)
    assert killed_after is not None, "training finished or stalled before it could be killed"
    assert proc.returncode == -signal.SIGKILL
    manifest = json.loads((workdir / "train" / "manifest.json").read_text())
    assert manifest["status"] == "running"  # a killed run is never taken as complete

    resumed_from = int(tf.train.latest_checkpoint(str(ckpt_dir)).rsplit("-", 1)[1])
    assert resumed_from >= killed_after
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"Resuming from step {resumed_from} " in result.stderr
    manifest = json.loads((workdir / "train" / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["summary"]["start_step"] == resumed_from
    assert manifest["summary"]["final_step"] == 400
    assert tf.train.latest_checkpoint(str(ckpt_dir)).endswith("ckpt-400")
    # The progress lines of the resumed run start right after the checkpoint.
    logged = [int(line.split("step ")[1].split("/")[0]) for line in result.stderr.splitlines()
              if "] step " in line]
    assert logged[0] == resumed_from + 20 and logged[-1] == 400


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
        smoke_workdir, tmp_path, monkeypatch):
    workdir = _fresh_workdir(smoke_workdir, tmp_path)
    config = smoke.get_config()
    config.train.steps = 20
    train.run_train(config, workdir)
    ckpt_dir = workdir / "train" / "checkpoints"
    assert tf.train.latest_checkpoint(str(ckpt_dir)).endswith("ckpt-20")

    monkeypatch.setattr(losses, "generator_loss", lambda name, logits: tf.reshape(logits, [-1]) * np.nan)
    config.train.steps = 40
    with pytest.raises(train.TrainingDivergedError, match="non-finite loss at step 21"):
        train.run_train(config, workdir)
    assert tf.train.latest_checkpoint(str(ckpt_dir)).endswith("ckpt-20")
    generator = train.load_generator(config, workdir)
    assert all(np.isfinite(w).all() for w in generator.get_weights())


def test_records_that_disagree_with_the_config_fail_before_training(smoke_workdir, tmp_path):
    workdir = _fresh_workdir(smoke_workdir, tmp_path)
    config = smoke.get_config()
    config.data.resolution = 32
    with pytest.raises(input_pipeline.DataError, match="records are 16x16x1 .* data.resolution=32"):
        train.run_train(config, workdir)
    assert not (workdir / "train" / "checkpoints").exists()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tensorboard_server_serves_the_runs_scalars_and_images(smoke_workdir):
    port = _free_port()
    tensorboard = shutil.which("tensorboard", path=os.path.dirname(sys.executable))
    proc = subprocess.Popen([tensorboard, "--logdir", str(smoke_workdir / "train" / "logs"),
                             "--host", "127.0.0.1", "--port", str(port), "--load_fast=false"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def get(path):
        with urllib.request.urlopen(base + path, timeout=10) as response:
            return response.read()

    try:
        deadline = time.time() + 90
        scalar_tags = {}
        while time.time() < deadline:
            try:
                scalar_tags = json.loads(get("/data/plugin/scalars/tags"))
                if scalar_tags.get(".", {}).get("train/d_loss"):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert "train/d_loss" in scalar_tags.get(".", {}), scalar_tags
        points = json.loads(get("/data/plugin/scalars/scalars?" + urllib.parse.urlencode(
            {"run": ".", "tag": "train/g_loss"})))
        assert [p[1] for p in points][-1] == 300
        assert all(np.isfinite(p[2]) for p in points)

        image_tags = json.loads(get("/data/plugin/images/tags"))
        assert {"samples", "real"} <= set(image_tags["."])
        images = json.loads(get("/data/plugin/images/images?" + urllib.parse.urlencode(
            {"run": ".", "tag": "samples"})))
        assert [entry["step"] for entry in images] == [100, 200, 300]
        png = get("/data/plugin/images/individualImage?" + images[-1]["query"])
        assert png.startswith(b"\x89PNG")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
