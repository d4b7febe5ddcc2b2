"""Object-store workdirs (gs://) against a local Cloud Storage emulator, offline.

The emulator is gcp-storage-emulator (pure Python, from PyPI; scripts/test.sh installs
it), started on loopback. Beam's GCS filesystem (google-cloud-storage), which
gan_keras.filesystem uses, honours STORAGE_EMULATOR_HOST; TensorFlow's own GCS
filesystem has its endpoints compiled in and is not used (see gan_keras.filesystem).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import requests

from gan_keras import export_layout, filesystem, records
from pipeline import runner
from tests.conftest import REPO, run_pipeline

BUCKET = "gan-test"
WORKDIR = f"gs://{BUCKET}/run"
# The evaluate stage's controls (projections, truncation sweeps) cost ~8 s and say nothing
# about where files live.
FAST = ("--config.evaluate.controls=False",)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def emulator():
    """A Cloud Storage emulator on loopback with one bucket; clients pointed at it."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host=127.0.0.1",
         f"--port={port}", f"--default-bucket={BUCKET}", "--in-memory", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    host = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(f"{host}/storage/v1/b", timeout=1).read()
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("the Cloud Storage emulator did not start") from None
            time.sleep(0.2)
    # NO_GCE_CHECK: google-auth would otherwise probe the GCE metadata server for credentials.
    env = {"STORAGE_EMULATOR_HOST": host, "NO_GCE_CHECK": "true"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _objects(prefix) -> dict:
    return {
        rel: meta.size_in_bytes
        for rel, meta in filesystem._objects(filesystem.path(prefix)).items()
    }


def _pipeline_cmd(*args):
    return [
        sys.executable,
        "-m",
        "pipeline.run",
        f"--config={REPO / 'configs/smoke.py'}",
        f"--workdir={WORKDIR}",
        *FAST,
        *args,
    ]


@pytest.fixture(scope="module")
def smoke_in_bucket(emulator):
    """One smoke run into the bucket, after a training run killed at its first checkpoint:
    (killed run's checkpoint step, full run, unchanged rerun)."""
    env = {**os.environ, **emulator, "TF_CPP_MIN_LOG_LEVEL": "2"}
    # Far more steps than it gets to: killed as soon as the bucket holds a committed checkpoint.
    killed = subprocess.Popen(
        _pipeline_cmd("--stages=ingest,train", "--config.train.steps=5000"),
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    pointer = f"{WORKDIR}/train/checkpoints/checkpoint"
    deadline = time.time() + 120
    try:
        while not filesystem.is_file(pointer):
            if killed.poll() is not None:
                raise AssertionError(
                    f"training ended before it was killed:\n{killed.stderr.read()}"
                )
            if time.time() > deadline:
                raise AssertionError("no checkpoint reached the bucket within 120 s")
            time.sleep(0.2)
    finally:
        killed.kill()
        killed.wait()
    state = filesystem.read_text(pointer)
    killed_step = int(state.split('model_checkpoint_path: "ckpt-')[1].split('"')[0])
    first = run_pipeline(WORKDIR, *FAST, env=emulator)
    again = run_pipeline(WORKDIR, *FAST, env=emulator)
    return killed_step, first, again


@pytest.mark.slow
def test_every_artifact_of_the_workdir_contract_is_in_the_bucket(smoke_in_bucket):
    objects = _objects(WORKDIR)
    for split in records.SPLITS:
        assert any(
            rel.startswith(f"ingest/{split}-") and rel.endswith(".tfrecord.gz") for rel in objects
        ), split
    expected = [
        f"ingest/{records.STATS_FILE}",
        f"ingest/{records.LABELS_FILE}",
        f"ingest/{records.REJECTED_FILE}",
        "train/checkpoints/checkpoint",
        "train/checkpoints/ckpt-300.index",
        "train/samples/real.png",
        "train/samples/step_0000300.png",
        "judge/classifier.keras",
        "evaluate/metrics.json",
        f"export/generator/1/{export_layout.SAVED_MODEL_FILE}",
        f"export/generator/1/{export_layout.ASSETS_DIR}/{export_layout.MODEL_INFO_ASSET}",
        f"export/generator/1/{export_layout.ASSETS_DIR}/{export_layout.EVALUATION_ASSET}",
    ]
    for stage in ("ingest", "train", "evaluate", "export"):
        expected.append(f"{stage}/manifest.json")
        manifest = json.loads(filesystem.read_text(f"{WORKDIR}/{stage}/manifest.json"))
        assert manifest["status"] == "complete", stage
    assert not [rel for rel in expected if rel not in objects]
    assert any(rel.startswith("train/logs/") and ".tfevents." in rel for rel in objects)
    # Nothing temporary is left, nothing went to a local folder named `gs:`.
    assert not [rel for rel in objects if "/." in f"/{rel}"]
    assert not (REPO / "gs:").exists()
    # The summaries name the store, not the run's local working copy.
    train = json.loads(filesystem.read_text(f"{WORKDIR}/train/manifest.json"))
    assert train["summary"]["latest_checkpoint"] == f"{WORKDIR}/train/checkpoints/ckpt-300"
    assert f"SavedModel       {WORKDIR}/export/generator/1" in smoke_in_bucket[1].stdout


@pytest.mark.slow
def test_killed_training_resumes_from_the_buckets_checkpoint(smoke_in_bucket):
    killed_step, _, _ = smoke_in_bucket
    assert 0 < killed_step < 300
    summary = json.loads(filesystem.read_text(f"{WORKDIR}/train/manifest.json"))["summary"]
    assert summary["start_step"] == killed_step and summary["final_step"] == 300


@pytest.mark.slow
def test_unchanged_rerun_is_skipped_from_the_bucket(smoke_in_bucket):
    log = smoke_in_bucket[2].stderr
    for stage in ("ingest", "train", "evaluate", "export"):
        assert f"[{stage}] up to date" in log, stage
    assert "[train] running" not in log


@pytest.mark.slow
def test_server_serves_the_bucket_and_picks_up_new_complete_versions(smoke_in_bucket):
    from gan_keras.serving import app as serving_app

    base = f"{WORKDIR}/export/generator"
    app = serving_app.create_app(base, "generator", poll_seconds=0.2)
    try:
        _serve_and_poll(app, base)
    finally:
        app.config["REGISTRY"].stop()
        filesystem.rmtree(f"{base}/2")
        filesystem.rmtree(f"{base}/3")


def _serve_and_poll(app, base):
    from tests.server_thread import ServerThread

    with ServerThread(app) as server:
        status = requests.get(f"{server.url}/v1/models/generator", timeout=30).json()
        assert status["model_version_status"][0]["version"] == "1"
        body = {"signature_name": "sample", "inputs": {"num_samples": 2, "seed": 1}}
        out = requests.post(f"{server.url}/v1/models/generator:predict", json=body, timeout=60)
        assert out.status_code == 200, out.text
        assert len(out.json()["outputs"]["images"]) == 2
        # A version without its saved_model.pb (a push cut short) is never taken.
        filesystem.write_bytes(f"{base}/3/variables/variables.index", b"half")
        # A complete version 2 (saved_model.pb copied last) is picked up by polling.
        filesystem.copy_tree(f"{base}/1", f"{base}/2", (export_layout.SAVED_MODEL_FILE,))
        deadline = time.time() + 60
        while time.time() < deadline:
            status = requests.get(f"{server.url}/v1/models/generator", timeout=30).json()
            if status["model_version_status"][0]["version"] == "2":
                break
            time.sleep(0.3)
        assert status["model_version_status"][0]["version"] == "2"
        time.sleep(0.5)  # a few more polls: version 3 stays ignored
        status = requests.get(f"{server.url}/v1/models/generator", timeout=30).json()
        assert status["model_version_status"][0]["version"] == "2"


@pytest.mark.parametrize(
    "workdir, says",
    [
        ("gs:/bucket/run", "'gs:' is followed by '/b', not '//'"),
        ("gs:bucket/run", "not '//'"),
        ("hdfs://namenode/run", "unsupported scheme hdfs://"),
        ("s3://bucket/run", "s3:// is not supported"),
        ("gs:///run", "no bucket"),
    ],
)
def test_unsupported_workdirs_are_refused_up_front(tmp_path, workdir, says):
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.run", f"--config={REPO / 'configs/smoke.py'}",
         f"--workdir={workdir}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    assert result.returncode != 0
    assert f"--workdir={workdir!r}" in result.stderr and says in result.stderr
    assert list(tmp_path.iterdir()) == []  # no local folder named `gs:` (or anything else)


def test_runner_and_server_refuse_a_one_slash_url(tmp_path):
    from gan_keras.serving.registry import ModelRegistry

    with pytest.raises(filesystem.PathError, match="--workdir='gs:/b/run'"):
        runner.Runner(None, "gs:/b/run")
    with pytest.raises(filesystem.PathError, match="--model_base_path='gs:/b/x'"):
        ModelRegistry("gs:/b/x", "generator")
    with pytest.raises(ValueError, match="data.source.*'gs:' is followed by"):
        from pipeline import ingest_sources

        ingest_sources.check_source("folder:gs:/b/images")
    assert list(tmp_path.iterdir()) == []
