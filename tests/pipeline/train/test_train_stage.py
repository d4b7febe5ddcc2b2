"""The train stage: resume after SIGKILL, divergence handling, TensorBoard server."""

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from helpers import REPO

from configs import smoke
from gan_keras.data import records
from gan_keras.training import losses
from pipeline import checkpoints, stages
from pipeline.train import loop, validation

# Failure guards only: every wait ends as soon as what it waits for has happened.
GUARD_SECONDS = 600


def _fresh_workdir(smoke_workdir, tmp_path):
    """A workdir holding only the smoke run's ingest output."""
    workdir = tmp_path / "work"
    shutil.copytree(smoke_workdir / "ingest", workdir / "ingest")
    return workdir


def _wait_for(done, proc, what, log=None):
    """Polls until `done()`; fails if `proc` exits first or after GUARD_SECONDS (a guard)."""
    deadline = time.monotonic() + GUARD_SECONDS
    while not done():
        if proc.poll() is not None:
            raise AssertionError(
                f"exited ({proc.returncode}) before {what}:\n"
                f"{log.read_text()[-4000:] if log else ''}"
            )
        assert time.monotonic() < deadline, f"still waiting for {what} after {GUARD_SECONDS} s"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_resumes_and_finishes_at_the_right_step(smoke_workdir, tmp_path):
    workdir = _fresh_workdir(smoke_workdir, tmp_path)

    def command(steps):
        return [
            sys.executable,
            "-m",
            "pipeline.run",
            f"--config={REPO / 'configs/smoke.py'}",
            f"--workdir={workdir}",
            "--stages=train",
            f"--config.train.steps={steps}",
            "--config.train.checkpoint_every=20",
            "--config.train.log_every=20",
            "--config.train.sample_every=200",
        ]

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    ckpt_dir = workdir / "train" / "checkpoints"

    def latest_step():
        latest = tf.train.latest_checkpoint(str(ckpt_dir)) if ckpt_dir.exists() else None
        return int(latest.rsplit("-", 1)[1]) if latest else 0

    # A step count no machine reaches before the kill: it always lands mid-run, once the
    # checkpoint of step 40 exists.
    log = tmp_path / "killed.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            command(1_000_000), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=out
        )
    try:
        _wait_for(lambda: latest_step() >= 40, proc, "the checkpoint of step 40", log)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    manifest = json.loads((workdir / "train" / "manifest.json").read_text())
    assert manifest["status"] == "running"  # a killed run is never taken as complete

    resumed_from = latest_step()
    assert resumed_from >= 40
    # Rerun to a step count just past the checkpoint (train.steps may change on a resume).
    steps = resumed_from + 60
    result = subprocess.run(
        command(steps), cwd=REPO, env=env, capture_output=True, text=True, timeout=GUARD_SECONDS
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"Resuming from step {resumed_from} " in result.stderr
    manifest = json.loads((workdir / "train" / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["summary"]["start_step"] == resumed_from
    assert manifest["summary"]["final_step"] == steps
    assert tf.train.latest_checkpoint(str(ckpt_dir)).endswith(f"ckpt-{steps}")
    # The progress lines of the resumed run start right after the checkpoint.
    logged = [
        int(line.split("step ")[1].split("/")[0])
        for line in result.stderr.splitlines()
        if "] step " in line
    ]
    assert logged == list(range(resumed_from + 20, steps + 1, 20))


@pytest.mark.slow
def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    smoke_workdir, tmp_path, monkeypatch
):
    workdir = _fresh_workdir(smoke_workdir, tmp_path)
    config = smoke.get_config()
    config.train.steps = 20
    loop.run_train(config, workdir)
    ckpt_dir = workdir / "train" / "checkpoints"
    assert tf.train.latest_checkpoint(str(ckpt_dir)).endswith("ckpt-20")

    monkeypatch.setattr(
        losses, "generator_loss", lambda name, logits: tf.reshape(logits, [-1]) * np.nan
    )
    config.train.steps = 40
    with pytest.raises(loop.TrainingDivergedError, match="non-finite loss at step 21"):
        loop.run_train(config, workdir)
    assert tf.train.latest_checkpoint(str(ckpt_dir)).endswith("ckpt-20")
    generator = checkpoints.load_generator(config, workdir)
    assert all(np.isfinite(w).all() for w in generator.get_weights())


@pytest.mark.slow
def test_records_that_disagree_with_the_config_fail_before_training(smoke_workdir, tmp_path):
    workdir = _fresh_workdir(smoke_workdir, tmp_path)
    config = smoke.get_config()
    config.data.resolution = 32
    with pytest.raises(records.DataError, match="records are 16x16x1 .* data.resolution=32"):
        loop.run_train(config, workdir)
    assert not (workdir / "train" / "checkpoints").exists()


@pytest.mark.slow
def test_tensorboard_server_serves_the_runs_scalars_and_images(smoke_workdir, tmp_path):
    tensorboard = shutil.which("tensorboard", path=os.path.dirname(sys.executable))
    # --port 0: TensorBoard binds a port the OS picks and prints it; no port is chosen here.
    log = tmp_path / "tensorboard.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                tensorboard,
                "--logdir",
                str(smoke_workdir / "train" / "logs"),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--load_fast=false",
            ],
            stdout=subprocess.DEVNULL,
            stderr=out,
        )

    def get(path):
        with urllib.request.urlopen(base + path, timeout=60) as response:
            return response.read()

    try:
        _wait_for(
            lambda: re.search(r"TensorBoard \S+ at (http://127\.0\.0\.1:\d+)/", log.read_text()),
            proc,
            "TensorBoard to print its address",
            log,
        )
        base = re.search(r"TensorBoard \S+ at (http://127\.0\.0\.1:\d+)/", log.read_text()).group(1)
        scalar_tags = {}

        def loaded():
            nonlocal scalar_tags
            try:
                scalar_tags = json.loads(get("/data/plugin/scalars/tags"))
            except OSError:
                return False
            return bool(scalar_tags.get(".", {}).get("train/d_loss"))

        # The server answers at once; the event files are loaded in the background.
        _wait_for(loaded, proc, "the run's scalars to load", log)
        points = json.loads(
            get(
                "/data/plugin/scalars/scalars?"
                + urllib.parse.urlencode({"run": ".", "tag": "train/g_loss"})
            )
        )
        assert [p[1] for p in points][-1] == 300
        assert all(np.isfinite(p[2]) for p in points)

        image_tags = json.loads(get("/data/plugin/images/tags"))
        assert {"samples", "real"} <= set(image_tags["."])
        images = json.loads(
            get(
                "/data/plugin/images/images?"
                + urllib.parse.urlencode({"run": ".", "tag": "samples"})
            )
        )
        assert [entry["step"] for entry in images] == [100, 200, 300]
        png = get("/data/plugin/images/individualImage?" + images[-1]["query"])
        assert png.startswith(b"\x89PNG")
    finally:
        proc.terminate()
        proc.wait(timeout=GUARD_SECONDS)


# ----------------------------------------------------------------------------
# In-training evaluation and the best checkpoint (train.eval_every)
# ----------------------------------------------------------------------------


def _scalars(logdir, tag):
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    acc.Reload()
    if tag not in acc.Tags()["tensors"]:
        return {}
    return {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)}


@pytest.mark.slow
def test_in_training_evaluation_logs_scores_keeps_the_best_and_shares_the_judge(
    smoke_workdir, tmp_path
):
    from pipeline.evaluate import generator_eval

    workdir = _fresh_workdir(smoke_workdir, tmp_path)
    config = smoke.get_config()
    config.train.steps = 40
    config.train.eval_every = 20
    config.train.eval_num_samples = 200
    config.train.log_every = config.train.checkpoint_every = config.train.sample_every = 20
    summary = loop.run_train(config, workdir)

    # The judge was trained before the first step and cached where the evaluate stage looks.
    judge_info = json.loads((workdir / "judge" / "classifier.json").read_text())
    fds = _scalars(workdir / "train" / "logs", "eval/frechet_distance")
    kids = _scalars(workdir / "train" / "logs", "eval/kid_mean")
    assert sorted(fds) == [20, 40] and sorted(kids) == [20, 40]
    assert all(np.isfinite(v) and v >= 0 for v in fds.values())

    best = json.loads((workdir / "train" / "best" / "best.json").read_text())
    best_step = min(fds, key=fds.get)
    assert best["step"] == best_step and best["frechet_distance"] == pytest.approx(
        fds[best_step], rel=1e-5
    )
    assert best["kid_mean"] == pytest.approx(kids[best_step], rel=1e-4, abs=1e-6)
    assert best["num_samples"] == 200 and best["judge_fingerprint"] == judge_info["fingerprint"]
    assert tf.train.latest_checkpoint(str(workdir / "train" / "best")).endswith(f"ckpt-{best_step}")
    assert summary["best_step"] == best_step
    assert summary["best_frechet_distance"] == pytest.approx(best["frechet_distance"])

    # Evaluate restores that checkpoint, says so, and reuses the cached judge (no retraining).
    _, info = checkpoints.load_generator_with_info(config, workdir)
    assert info["checkpoint"] == "best by in-training FD" and info["checkpoint_step"] == best_step
    judge_mtime = (workdir / "judge" / "classifier.keras").stat().st_mtime_ns
    metrics = generator_eval.run_evaluate(config, workdir, workdir / "evaluate")
    assert (workdir / "judge" / "classifier.keras").stat().st_mtime_ns == judge_mtime
    assert metrics["extractor_fingerprint"] == best["judge_fingerprint"]
    assert metrics["model"]["checkpoint_step"] == best_step
    assert metrics["model"]["checkpoint"] == "best by in-training FD"
    assert f"checkpoint step {best_step} (best by in-training FD)" in metrics["summary"]


class _ScriptedEvaluator:
    """Stands in for loop.InTrainingEvaluator: returns the FDs of `fds` in turn."""

    fds: list = []
    calls: list = []

    def __init__(self, config, workdir, num_classes):
        self.judge_fingerprint = "scripted-judge"
        self.num_samples = int(config.train.eval_num_samples)

    def __call__(self, model):
        fd = self.fds.pop(0)
        self.calls.append((int(model.step.numpy()), fd))
        return {
            "frechet_distance": fd,
            "kid_mean": fd / 100,
            "kid_std": 0.0,
            "num_samples": self.num_samples,
            "seconds": 0.0,
        }


def _generator_weights(config, checkpoint_path):
    generator = checkpoints.load_generator(config, pathlib.Path(checkpoint_path).parents[2])
    tf.train.Checkpoint(ema_generator=generator).restore(checkpoint_path).expect_partial()
    return generator.get_weights()


@pytest.mark.slow
def test_the_best_checkpoint_has_the_lowest_fd_also_across_a_resume(
    smoke_workdir, tmp_path, monkeypatch
):
    workdir = _fresh_workdir(smoke_workdir, tmp_path)
    monkeypatch.setattr(loop, "InTrainingEvaluator", _ScriptedEvaluator)
    monkeypatch.setattr(_ScriptedEvaluator, "calls", [])
    config = smoke.get_config()
    config.train.eval_every = 10
    config.train.eval_num_samples = 100
    config.train.log_every = config.train.checkpoint_every = config.train.sample_every = 10
    config.train.keep_checkpoints = 10
    best_dir, ckpt_dir = workdir / "train" / "best", workdir / "train" / "checkpoints"

    config.train.steps = 30
    monkeypatch.setattr(_ScriptedEvaluator, "fds", [5.0, 3.0, 4.0])
    summary = loop.run_train(config, workdir)
    assert [step for step, _ in _ScriptedEvaluator.calls] == [10, 20, 30]
    best = json.loads((best_dir / "best.json").read_text())
    assert (best["step"], best["frechet_distance"], best["num_samples"]) == (20, 3.0, 100)
    assert best["judge_fingerprint"] == "scripted-judge" and best["checkpoint"] == "ckpt-20"
    assert (summary["best_step"], summary["best_frechet_distance"]) == (20, 3.0)
    assert sorted(p.name for p in best_dir.glob("ckpt-*.index")) == ["ckpt-20.index"]
    # The best checkpoint holds the state of step 20, not of a later step.
    _, info = checkpoints.load_generator_with_info(config, workdir)
    assert (info["checkpoint"], info["checkpoint_step"]) == ("best by in-training FD", 20)
    assert info["in_training_eval"]["frechet_distance"] == 3.0
    for a, b in zip(
        checkpoints.load_generator(config, workdir).get_weights(),
        _generator_weights(config, str(ckpt_dir / "ckpt-20")),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)

    # A resumed run starts from best.json: a worse FD does not replace the best one.
    config.train.steps = 40
    monkeypatch.setattr(_ScriptedEvaluator, "fds", [3.5])
    summary = loop.run_train(config, workdir)
    assert _ScriptedEvaluator.calls[-1] == (40, 3.5)
    assert json.loads((best_dir / "best.json").read_text())["step"] == 20
    assert summary["best_step"] == 20 and summary["start_step"] == 30
    assert tf.train.latest_checkpoint(str(best_dir)).endswith("ckpt-20")

    # A better one does, and only one best checkpoint is kept.
    config.train.steps = 50
    monkeypatch.setattr(_ScriptedEvaluator, "fds", [2.5])
    assert loop.run_train(config, workdir)["best_step"] == 50
    assert sorted(p.name for p in best_dir.glob("ckpt-*.index")) == ["ckpt-50.index"]
    assert json.loads((best_dir / "best.json").read_text())["frechet_distance"] == 2.5

    # With in-training evaluation off, nothing changes from before: the latest checkpoint.
    config.train.eval_every = 0
    assert checkpoints.generator_checkpoint(config, workdir)["checkpoint"] == "latest"
    config.train.steps = 60
    summary = loop.run_train(config, workdir)
    assert _ScriptedEvaluator.calls[-1][0] == 50 and summary["best_step"] is None
    _, info = checkpoints.load_generator_with_info(config, workdir)
    assert (info["checkpoint"], info["checkpoint_step"]) == ("latest", 60)
    assert json.loads((best_dir / "best.json").read_text())["step"] == 50


def test_eval_fields_are_validated_naming_the_field():
    for field, value, match in [
        ("eval_every", -1, "train.eval_every"),
        ("eval_num_samples", 1, "train.eval_num_samples"),
        ("eval_num_samples", 0, "train.eval_num_samples"),
    ]:
        config = smoke.get_config()
        config.train[field] = value
        with pytest.raises(ValueError, match=match):
            validation.validate_config(config)
    # In-training evaluation uses the evaluate section's judge settings: checked up front too.
    config = smoke.get_config()
    config.evaluate.classifier_epochs = 0
    validation.validate_config(config)  # not used while eval_every = 0
    config.train.eval_every = 100
    with pytest.raises(ValueError, match="config.evaluate.classifier_epochs"):
        validation.validate_config(config)


# ----------------------------------------------------------------------------
# Config checks of the train stage, before any work
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, match",
    [
        # The gradient penalty is per example; BatchNorm in D couples a batch's examples.
        (
            {"train.loss": "wgan_gp", "model.d_norm": "batch"},
            "train.loss='wgan_gp' needs model.d_norm",
        ),
        # The per-step random streams are laid out for at most 7 critic updates.
        ({"train.n_critic": 8}, "train.n_critic"),
        ({"train.n_critic": 0}, "train.n_critic"),
        ({"train.batch_size": 0}, "train.batch_size"),
    ],
)
def test_train_config_is_refused_naming_the_field(fields, match):
    config = smoke.get_config()
    for name, value in fields.items():
        section, field = name.split(".")
        config[section][field] = value
    with pytest.raises(ValueError, match=re.escape(match)):
        stages.get("train").validate(config)


@pytest.mark.parametrize(
    "fields",
    [
        {"train.loss": "wgan_gp", "model.d_norm": "layer"},
        {"train.loss": "wgan_gp", "model.d_norm": "none"},
        {"train.loss": "hinge", "model.d_norm": "batch"},
        {"train.n_critic": 7},
    ],
)
def test_train_config_at_the_limits_is_accepted(fields):
    config = smoke.get_config()
    for name, value in fields.items():
        section, field = name.split(".")
        config[section][field] = value
    stages.get("train").validate(config)


def _tiny_ingest(workdir, count=40):
    """`count` 16x16x1 training records and their stats.json, as the ingest stage writes them."""
    from gan_keras import images as gan_images

    ingest = workdir / "ingest"
    ingest.mkdir(parents=True)
    rng = np.random.default_rng(0)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    with tf.io.TFRecordWriter(str(ingest / records.shard_name("train", 0, 1)), options) as writer:
        for i in range(count):
            image = rng.integers(0, 256, (16, 16, 1), dtype=np.uint8)
            writer.write(
                records.make_example(gan_images.encode_png(image), 16, 16, 1, i % 10, f"img{i}")
            )
    (ingest / records.STATS_FILE).write_text(
        json.dumps({"resolution": 16, "channels": 1, "splits": {"train": {"count": count}}})
    )
    return workdir


def test_batch_larger_than_the_training_data_fails_before_training(tmp_path):
    workdir = _tiny_ingest(tmp_path / "work", count=40)
    config = smoke.get_config()
    config.train.strategy = "default"
    config.train.batch_size = 41
    with pytest.raises(ValueError, match=r"train\.batch_size=41 exceeds the 40 training records"):
        loop.run_train(config, workdir)
    assert not (workdir / "train").exists()


def test_batch_that_does_not_divide_over_the_replicas_fails_before_training(tmp_path):
    # conftest splits the CPU in two logical devices: MirroredStrategy has two replicas here.
    assert len(tf.config.list_logical_devices("CPU")) == 2
    workdir = _tiny_ingest(tmp_path / "work", count=40)
    config = smoke.get_config()
    config.train.strategy = "mirrored"
    config.train.batch_size = 33
    with pytest.raises(
        ValueError, match=r"train\.batch_size=33 \(global\) is not divisible by the 2 replicas"
    ):
        loop.run_train(config, workdir)
    assert not (workdir / "train").exists()
