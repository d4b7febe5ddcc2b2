"""tf.data input from ingest's records: normalisation, slicing per replica, bad records."""

import json

import numpy as np
import pytest
import tensorflow as tf

from gan_keras import images as gan_images
from gan_keras.data import input_pipeline, records


def _example(image, label, source_id):
    return records.make_example(gan_images.encode_png(image), *image.shape, label, source_id)


def _write_ingest(directory, images, labels, shards=2, resolution=8, channels=1):
    directory.mkdir(parents=True, exist_ok=True)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    for shard in range(shards):
        path = directory / records.shard_name("train", shard, shards)
        with tf.io.TFRecordWriter(str(path), options) as writer:
            for i in range(shard, len(images), shards):
                writer.write(_example(images[i], int(labels[i]), f"img{i}"))
    stats = {
        "resolution": resolution,
        "channels": channels,
        "splits": {"train": {"count": len(images)}},
    }
    (directory / records.STATS_FILE).write_text(json.dumps(stats))
    return directory


@pytest.fixture
def ingest_dir(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 8, 8, 1), dtype=np.uint8)
    return _write_ingest(tmp_path / "ingest", images, np.arange(40) % 4), images


def test_batches_are_normalised_exactly_and_drop_the_remainder(tmp_path):
    # Every image holds the byte values 0, 1, 127, 128, 254 and 255 plus its own index; its
    # label is its index, so each batch row can be checked against the image it came from.
    known = np.array([0, 1, 127, 128, 254, 255], np.uint8)
    images = np.zeros((40, 8, 8, 1), np.uint8)
    for i in range(40):
        images[i] = np.resize(np.append(known, i), (8, 8, 1))
    directory = _write_ingest(tmp_path / "ingest", images, np.arange(40))
    ds = input_pipeline.make_dataset(
        directory, "train", resolution=8, channels=1, global_batch_size=16, repeat=False
    )
    batches = list(ds)
    assert len(batches) == 2  # 40 records -> two full batches of 16, remainder dropped
    x, y = batches[0]
    assert x.dtype == tf.float32 and x.shape == (16, 8, 8, 1) and y.dtype == tf.int32
    labels = np.concatenate([b[1].numpy() for b in batches])
    assert len(set(labels.tolist())) == 32 and set(labels.tolist()) <= set(range(40))
    # x / 127.5 - 1 (to float32 rounding) for every pixel of every image, the one it came from.
    expected = images.astype(np.float64) / 127.5 - 1.0
    for batch_x, batch_y in batches:
        np.testing.assert_allclose(batch_x.numpy(), expected[batch_y.numpy()], rtol=0, atol=1e-6)
    # ...which puts the known bytes at these values, the ends of the range exactly.
    first = batches[0][0].numpy()[0].ravel()[:6]
    np.testing.assert_allclose(
        first,
        [-1.0, 1 / 127.5 - 1, -0.5 / 127.5, 0.5 / 127.5, 1 - 1 / 127.5, 1.0],
        rtol=0,
        atol=1e-6,
    )
    assert first[0] == -1.0 and first[-1] == 1.0


def test_each_input_pipeline_keeps_its_slice_of_the_same_global_batch(ingest_dir):
    directory, _ = ingest_dir
    common = dict(resolution=8, channels=1, global_batch_size=8, shuffle_buffer=40, seed=5)
    whole = next(iter(input_pipeline.make_dataset(directory, "train", **common)))[0].numpy()
    parts = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=4
        )
        ds = input_pipeline.make_dataset(directory, "train", input_context=context, **common)
        it = iter(ds)
        # Two local replicas per pipeline, two examples each.
        parts += [next(it)[0].numpy(), next(it)[0].numpy()]
    assert all(p.shape == (2, 8, 8, 1) for p in parts)
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_record_with_other_shape_names_the_file(tmp_path):
    rng = np.random.default_rng(1)
    images = list(rng.integers(0, 256, size=(6, 8, 8, 1), dtype=np.uint8))
    directory = _write_ingest(tmp_path / "ingest", images, np.zeros(6), shards=1)
    odd = directory / "train-00001-of-00002.tfrecord.gz"
    with tf.io.TFRecordWriter(str(odd), tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
        writer.write(_example(rng.integers(0, 256, size=(9, 9, 1), dtype=np.uint8), 0, "odd.png"))
    ds = input_pipeline.make_dataset(
        directory, "train", resolution=8, channels=1, global_batch_size=1, repeat=False
    )
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        list(ds)
    assert "train-00001-of-00002.tfrecord.gz" in str(error.value)
    assert "odd.png" in str(error.value)


def test_corrupt_shard_is_named(ingest_dir):
    directory, _ = ingest_dir
    shard = directory / "train-00001-of-00002.tfrecord.gz"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(records.DataError, match="train-00001-of-00002.tfrecord.gz: corrupt"):
        input_pipeline.verify_shards(directory, "train", 40)


def test_missing_records_and_count_mismatch_fail_clearly(tmp_path, ingest_dir):
    with pytest.raises(records.DataError, match="run the ingest stage first"):
        records.list_shards(tmp_path / "nothing", "train")
    directory, _ = ingest_dir
    with pytest.raises(records.DataError, match="hold 40 records but stats.json says 41"):
        input_pipeline.verify_shards(directory, "train", 41)
