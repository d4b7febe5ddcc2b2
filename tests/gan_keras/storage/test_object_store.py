"""Object-store workdirs and ingest sources (gs://) against a local Cloud Storage
emulator, offline.

The emulator is gcp-storage-emulator (pure Python, from PyPI; scripts/test.sh installs
it), started on loopback. Beam's GCS filesystem (google-cloud-storage), which
gan_keras.storage.filesystem uses, honours STORAGE_EMULATOR_HOST; TensorFlow's own GCS
filesystem has its endpoints compiled in and is not used (see gan_keras.storage.filesystem).
"""

import gzip
import json
import os
import pathlib
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import requests
from helpers import REPO, run_pipeline
from PIL import Image

from gan_keras.data import records
from gan_keras.export import layout
from gan_keras.storage import filesystem
from pipeline import runner

BUCKET = "gan-test"
WORKDIR = f"gs://{BUCKET}/run"
# The evaluate stage's controls (projections, truncation sweeps) and a fully trained judge cost
# ~25 s on 2 cores and say nothing about where files live.
FAST = (
    "--config.evaluate.controls=False",
    "--config.evaluate.classifier_min_steps=20",
    "--config.evaluate.classifier_epochs=1",
)


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


@pytest.mark.heavy
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
        f"export/generator/1/{layout.SAVED_MODEL_FILE}",
        f"export/generator/1/{layout.ASSETS_DIR}/{layout.MODEL_INFO_ASSET}",
        f"export/generator/1/{layout.ASSETS_DIR}/{layout.EVALUATION_ASSET}",
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


@pytest.mark.heavy
@pytest.mark.slow
def test_killed_training_resumes_from_the_buckets_checkpoint(smoke_in_bucket):
    killed_step, _, _ = smoke_in_bucket
    assert 0 < killed_step < 300
    summary = json.loads(filesystem.read_text(f"{WORKDIR}/train/manifest.json"))["summary"]
    assert summary["start_step"] == killed_step and summary["final_step"] == 300


@pytest.mark.heavy
@pytest.mark.slow
def test_unchanged_rerun_is_skipped_from_the_bucket(smoke_in_bucket):
    log = smoke_in_bucket[2].stderr
    for stage in ("ingest", "train", "evaluate", "export"):
        assert f"[{stage}] up to date" in log, stage
    assert "[train] running" not in log


@pytest.mark.heavy
@pytest.mark.slow
def test_a_refused_run_names_the_bucket_not_its_local_working_copy(smoke_in_bucket, emulator):
    # Another G width against the bucket's checkpoints: the train stage refuses to resume.
    refused = run_pipeline(
        WORKDIR,
        *FAST,
        "--stages=train",
        "--config.model.g_width=48",
        env=emulator,
        check=False,
    )
    assert refused.returncode == 1
    error = next(line for line in refused.stderr.splitlines() if line.startswith("error: "))
    assert f"{WORKDIR}/train holds checkpoints of a different configuration" in error
    assert "model.g_width" in error and "gan-workdir-" not in error
    # Nothing was replaced: the bucket still holds the complete run.
    manifest = json.loads(filesystem.read_text(f"{WORKDIR}/train/manifest.json"))
    assert manifest["status"] == "complete" and manifest["summary"]["final_step"] == 300


@pytest.mark.heavy
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
    from helpers import ServerThread

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
        filesystem.copy_tree(f"{base}/1", f"{base}/2", (layout.SAVED_MODEL_FILE,))
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
    from gan_keras.serving.versions import ModelVersions

    with pytest.raises(filesystem.PathError, match="--workdir='gs:/b/run'"):
        runner.Runner(None, "gs:/b/run")
    with pytest.raises(filesystem.PathError, match="--model_base_path='gs:/b/x'"):
        ModelVersions("gs:/b/x", "generator")
    with pytest.raises(ValueError, match="data.source.*'gs:' is followed by"):
        from pipeline.ingest import sources

        sources.check_source("folder:gs:/b/images")
    assert list(tmp_path.iterdir()) == []


# --- ingest sources in the bucket -----------------------------------------------

SOURCES = f"gs://{BUCKET}/sources"
FASHION_MNIST = pathlib.Path("/usr/share/datasets/fashion-mnist")


def _upload(local_root: pathlib.Path, prefix: str) -> None:
    for path in sorted(local_root.rglob("*")):
        if path.is_file():
            filesystem.write_bytes(
                f"{prefix}/{path.relative_to(local_root).as_posix()}", path.read_bytes()
            )


def _png(path: pathlib.Path, seed: int, size=(20, 24), mode="L") -> None:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)


def _image_tree(root: pathlib.Path) -> None:
    """Class folders with a nested folder (walk order: a folder's files before its
    subfolders'), hidden files and folders, and one corrupt PNG."""
    for i in range(6):
        _png(root / "coat" / f"c{i}.png", i)
        _png(root / "shoe" / f"s{i}.png", 10 + i, mode="RGB")
    _png(root / "coat" / "b_sub" / "deep.png", 20)
    _png(root / "coat" / "z.png", 21)
    _png(root / "shoe" / ".hidden.png", 22)
    _png(root / ".cache" / "x.png", 23)
    (root / ".DS_Store").write_bytes(b"\0\1")
    (root / "coat" / "broken.png").write_bytes(b"plain text wearing a .png name")


def _idx_slice(root: pathlib.Path) -> None:
    """The first images of Fashion-MNIST as an IDX pair per split (t10k images not gzipped,
    so both ways of storing IDX are read)."""
    root.mkdir(parents=True)
    for prefix, n, gz in (("train", 300, True), ("t10k", 60, False)):
        for what, ndim, item in (("images", 3, 28 * 28), ("labels", 1, 1)):
            name = f"{prefix}-{what}-idx{ndim}-ubyte"
            with gzip.open(FASHION_MNIST / f"{name}.gz", "rb") as f:
                head = f.read(4 + 4 * ndim)
                body = f.read(n * item)
            dims = struct.unpack(f">{ndim}I", head[4:])
            header = head[:4] + struct.pack(f">{ndim}I", n, *dims[1:])
            data = header + body
            if gz or what == "labels":
                (root / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
            else:
                (root / name).write_bytes(data)


def _smoke_data(source: str, **overrides):
    from configs import smoke

    config = smoke.get_config()
    config.data.source = source
    for key, value in overrides.items():
        config.data[key] = value
    return config


def _local_ingest(source: str, out: pathlib.Path, **overrides) -> dict:
    from pipeline.ingest import beam_ingest

    return beam_ingest.run_ingest(_smoke_data(source, **overrides).data, out)


def _run_ingest_stage(workdir, source: str, **overrides) -> dict:
    """`python -m pipeline.run --config=configs/smoke.py --stages=ingest
    --config.data.source=<source>`, in this process: a new process would spend ~30 s in
    Beam's retries of Google's credential lookup, which fails against the emulator."""
    return runner.Runner(_smoke_data(source, **overrides), str(workdir)).run(["ingest"])


def _examples(shard: bytes):
    """The tf.train.Examples of one GZIP TFRecord shard, in file order."""
    import tensorflow as tf

    data, i = gzip.decompress(shard), 0
    while i < len(data):
        (length,) = struct.unpack("<Q", data[i : i + 8])
        yield tf.train.Example.FromString(data[i + 12 : i + 12 + length])
        i += 12 + length + 4


def _shards(ingest_dir) -> dict:
    """Shard name -> bytes, for every split."""
    return {
        shard.name: filesystem.read_bytes(shard)
        for split in records.SPLITS
        for shard in filesystem.glob(ingest_dir, records.shard_pattern(split))
    }


def _rows(shards: dict) -> list:
    """(shard, source id, label, encoded PNG) of every record, in the shards' order."""
    rows = []
    for name, data in sorted(shards.items()):
        for example in _examples(data):
            feature = example.features.feature
            rows.append(
                (
                    name,
                    feature[records.SOURCE_ID].bytes_list.value[0].decode(),
                    feature[records.LABEL].int64_list.value[0],
                    feature[records.ENCODED].bytes_list.value[0],
                )
            )
    return rows


@pytest.mark.slow
def test_folder_and_idx_sources_in_the_bucket_give_the_records_of_a_local_copy(emulator, tmp_path):
    """folder:gs:// and idx:gs:// sources, read by the launcher and Beam's workers through
    the filesystem layer, give byte-identical shards to the same files on a local disk."""
    local = tmp_path / "local"
    _image_tree(local / "images")
    _idx_slice(local / "idx")
    _upload(local / "images", f"{SOURCES}/images")
    _upload(local / "idx", f"{SOURCES}/idx")

    # folder: into a gs:// workdir, as a Dataflow job would run (nothing on a shared disk).
    workdir = f"gs://{BUCKET}/folder-run"
    source = f"folder:{SOURCES}/images"
    # One corrupt file of 15 is more than smoke.py's data.max_reject_fraction allows.
    _run_ingest_stage(workdir, source, max_reject_fraction=0.2)
    ingest_dir = f"{workdir}/ingest"
    stats = json.loads(filesystem.read_text(f"{ingest_dir}/{records.STATS_FILE}"))
    reference = _local_ingest(
        f"folder:{local / 'images'}", tmp_path / "folder-ref", max_reject_fraction=0.2
    )
    assert stats["inputs_read"] == 15 and stats["records_written"] == 14
    assert stats["rejected_by_reason"] == {"not_an_image": 1}
    assert stats["label_names"] == ["coat", "shoe"] and stats["source"] == source
    assert {**stats, "source": None} == {**reference, "source": None}
    rejected = [
        json.loads(line)
        for line in filesystem.read_text(f"{ingest_dir}/{records.REJECTED_FILE}").splitlines()
    ]
    assert rejected == [
        {
            "source_id": "coat/broken.png",
            "reason": "not_an_image",
            "detail": f"{SOURCES}/images/coat/broken.png: not a decodable image format",
        }
    ]
    shards = _shards(ingest_dir)
    assert shards == _shards(tmp_path / "folder-ref")
    ids = [source_id for _, source_id, _, _ in _rows(shards)]
    assert len(ids) == 14 and "coat/b_sub/deep.png" in ids
    assert not [i for i in ids if "/." in f"/{i}"]  # hidden files and folders stay out
    manifest = json.loads(filesystem.read_text(f"{ingest_dir}/manifest.json"))
    assert manifest["status"] == "complete"
    assert manifest["config"]["data.source"] == source
    # The cache key is the config naming the source, as for a local one: a rerun is skipped.
    again = _run_ingest_stage(workdir, source, max_reject_fraction=0.2)
    assert again["ingest"]["skipped"] is True

    # idx: into a local workdir: the launcher reads the headers and labels, the workers their
    # slices of the images, from the bucket.
    source = f"idx:{SOURCES}/idx"
    _run_ingest_stage(tmp_path / "idx-run", source)
    ingest_dir = tmp_path / "idx-run" / "ingest"
    stats = json.loads((ingest_dir / records.STATS_FILE).read_text())
    reference = _local_ingest(f"idx:{local / 'idx'}", tmp_path / "idx-ref")
    assert stats["splits"]["train"]["count"] == 300 and stats["splits"]["eval"]["count"] == 60
    assert stats["rejected"] == 0 and stats["source"] == source
    assert stats["source_info"]["files"] == [
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]
    assert {**stats, "source": None} == {**reference, "source": None}
    shards = _shards(ingest_dir)
    assert shards == _shards(tmp_path / "idx-ref")
    rows = _rows(shards)
    labels = gzip.decompress((local / "idx" / "train-labels-idx1-ubyte.gz").read_bytes())[8:]
    by_id = {source_id: label for _, source_id, label, _ in rows}
    assert [by_id[f"train-images-idx3-ubyte.gz#{i}"] for i in range(300)] == list(labels)
    manifest = json.loads((ingest_dir / "manifest.json").read_text())
    assert manifest["config"]["data.source"] == source


@pytest.mark.slow  # alone, the first Cloud Storage call waits ~30 s on Beam's credential retries
def test_bucket_sources_are_checked_like_local_ones(emulator, tmp_path):
    """The up-front checks of a gs:// source say what they say for a local directory, and
    the filesystem layer lists a prefix in a local walk's order."""
    from pipeline.ingest import sources

    base = f"gs://{BUCKET}/checks"
    filesystem.write_bytes(f"{base}/empty/.DS_Store", b"x")
    filesystem.write_bytes(f"{base}/a_file.png", b"x")
    for source, says in [
        (f"folder:{base}/missing", "does not exist"),
        (f"folder:{base}/a_file.png", "is not a directory"),
        (f"folder:{base}/empty", "is empty"),
        (f"idx:{base}/empty", "no train-images-idx3-ubyte"),
    ]:
        with pytest.raises(ValueError, match=says):
            sources.check_source(source)
    with pytest.raises(ValueError, match="data.tfds_data_dir=.*local directory only"):
        from configs import smoke
        from pipeline.ingest import config_checks

        data = smoke.get_config().data
        data.tfds_data_dir = f"gs://{BUCKET}/tfds"
        config_checks.validate_data_config(data)

    tree = tmp_path / "tree"
    for rel in ["b/z.png", "b/a/y.png", "b/a.png", "a.png", ".h/x.png", "b/.h.png", "b/c/d/e"]:
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(b"x")
    _upload(tree, f"{base}/tree")
    hidden = sources._hidden
    local, remote = (
        filesystem.walk_files(tree, hidden),
        filesystem.walk_files(f"{base}/tree", hidden),
    )
    assert local == remote == ["a.png", "b/a.png", "b/z.png", "b/a/y.png", "b/c/d/e"]
    assert (
        filesystem.list_dir(tree)
        == filesystem.list_dir(f"{base}/tree")
        == [(".h", True), ("a.png", False), ("b", True)]
    )
    assert filesystem.stat(f"{base}/a_file.png")[0] == 1
    with pytest.raises(FileNotFoundError, match=f"{base}/nothing"):
        filesystem.stat(f"{base}/nothing")
    with (
        pytest.raises(FileNotFoundError, match=f"{base}/nothing"),
        filesystem.open_read(f"{base}/nothing") as f,
    ):
        f.read()
