"""tf.data input from the ingest stage's TFRecords.

Records hold lossless uint8 PNGs; normalisation to [-1, 1] happens here, when
the trainer reads. Every replica layout sees the same global batches: the
global stream is built deterministically, batched to the global batch with
`drop_remainder=True`, and each input pipeline keeps its own slice.
"""

import numpy as np
import tensorflow as tf

from gan_keras.data import records
from gan_keras.tasks import conditions


def verify_shards(ingest_dir, split: str, expected_count: int | None = None) -> int:
    """Reads every record of a split once; names the shard that is corrupt.

    A corrupt GZIP stream otherwise surfaces mid-training as a DataLossError
    that does not say which file it came from.
    """
    total = 0
    for shard in records.list_shards(ingest_dir, split):
        count = 0
        try:
            # Batched so Python sees a few thousand-record batches, not every record.
            for batch in tf.data.TFRecordDataset(shard, compression_type="GZIP").batch(4096):
                count += int(batch.shape[0])
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            raise records.DataError(
                f"{shard}: corrupt after {count} records ({e.message.splitlines()[0]})"
            ) from None
        total += count
    if expected_count is not None and total != expected_count:
        raise records.DataError(
            f"{ingest_dir}: {split} shards hold {total} records but "
            f"{records.STATS_FILE} says {expected_count}"
        )
    return total


def _parse(filename, serialized, resolution, channels):
    ex = tf.io.parse_single_example(serialized, records.parse_spec())
    image = tf.io.decode_png(ex[records.ENCODED], channels=0)
    shape = tf.shape(image, out_type=tf.int64)
    ok = tf.reduce_all(
        tf.stack(
            [
                shape[0] == resolution,
                shape[1] == resolution,
                shape[2] == channels,
                ex[records.HEIGHT] == resolution,
                ex[records.WIDTH] == resolution,
                ex[records.CHANNELS] == channels,
            ]
        )
    )
    check = tf.debugging.Assert(
        ok,
        [
            "record shape differs from the config; file:",
            filename,
            "source_id:",
            ex[records.SOURCE_ID],
            "decoded HxWxC:",
            shape,
            f"expected {resolution}x{resolution}x{channels}",
        ],
    )
    with tf.control_dependencies([check]):
        image = tf.ensure_shape(tf.identity(image), [resolution, resolution, channels])
    image = tf.cast(image, tf.float32) / 127.5 - 1.0
    return image, tf.cast(ex[records.LABEL], tf.int32)


def make_dataset(
    ingest_dir,
    split: str,
    *,
    resolution: int,
    channels: int,
    global_batch_size: int,
    shuffle_buffer: int = 10_000,
    seed: int = 0,
    repeat: bool = True,
    input_context: tf.distribute.InputContext | None = None,
    condition_fn=None,
    condition_seed: int = 0,
) -> tf.data.Dataset:
    """(images float32 [b, R, R, C] in [-1, 1], labels int32 [b]) batches.

    With `condition_fn(image, seed) -> condition` (an image-to-image task's
    degradation, gan_keras.tasks) the batches are ((conditions, images),
    labels): each example's seed is [condition_seed, its index in the global
    stream], so conditions do not depend on the replica layout, and a split
    read without shuffling always gets the same ones.

    Without `input_context`, b is the global batch. With one (from
    `strategy.distribute_datasets_from_function`), this pipeline yields the
    per-replica batches of its own replicas, cut from the same global batches
    a single process would see.
    """
    shards = records.list_shards(ingest_dir, split)
    files = tf.data.Dataset.from_tensor_slices(shards)
    if repeat:
        files = files.shuffle(len(shards), seed=seed, reshuffle_each_iteration=True)
    ds = files.interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP").map(lambda r: (f, r)),
        cycle_length=min(len(shards), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    ds = ds.map(
        lambda f, r: _parse(f, r, resolution, channels),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if repeat:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    if condition_fn is not None:
        ds = ds.enumerate().map(
            lambda index, example: with_condition(example, index, condition_fn, condition_seed),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    ds = ds.batch(global_batch_size, drop_remainder=True)
    if input_context is not None and input_context.num_replicas_in_sync > 1:
        per_replica = input_context.get_per_replica_batch_size(global_batch_size)
        replicas_here = input_context.num_replicas_in_sync // input_context.num_input_pipelines
        start = input_context.input_pipeline_id * replicas_here * per_replica
        ds = ds.map(
            lambda *batch: tf.nest.map_structure(
                lambda t: t[start : start + replicas_here * per_replica], batch
            )
        )
        ds = ds.rebatch(per_replica)
    options = tf.data.Options()
    options.deterministic = True
    # Every pipeline reads the whole stream and keeps its slice; tf.distribute
    # must not shard it again.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def with_condition(example, index, condition_fn, condition_seed: int):
    """(image, label), its stream index -> ((condition, image), label)."""
    image, label = example
    return (condition_fn(image, conditions.example_seed(condition_seed, index)), image), label


def read_split(
    ingest_dir,
    split: str,
    limit: int | None = None,
    *,
    resolution: int | None = None,
    channels: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The first `limit` records of a split, in file order, as numpy arrays: uint8 images
    [N, H, W, C] exactly as ingested (no normalisation) and int64 labels [N].

    Every record's PNG must decode to the shape it declares and, when `resolution` and
    `channels` are given, to that shape; errors name the shard and the record.
    """

    def parse(serialized):
        ex = tf.io.parse_single_example(serialized, records.parse_spec())
        image = tf.io.decode_png(ex[records.ENCODED], channels=0)
        declared = tf.stack([ex[records.HEIGHT], ex[records.WIDTH], ex[records.CHANNELS]])
        return image, ex[records.LABEL], declared, tf.shape(image, out_type=tf.int64)

    expected = None if resolution is None else [resolution, resolution, channels]
    all_images, all_labels = [], []
    total = 0
    for path in records.list_shards(ingest_dir, split):
        if limit is not None and total >= limit:
            break
        ds = tf.data.TFRecordDataset(path, compression_type="GZIP")
        if limit is not None:
            ds = ds.take(limit - total)
        ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE).batch(1024)
        try:
            for image, label, declared, actual in ds.as_numpy_iterator():
                bad = np.flatnonzero(np.any(declared != actual, axis=1))
                if bad.size:
                    raise records.DataError(
                        f"{path}: record {total + bad[0]} declares shape "
                        f"{declared[bad[0]].tolist()} "
                        f"but its PNG decodes to {actual[bad[0]].tolist()}"
                    )
                if expected is not None and list(image.shape[1:]) != expected:
                    raise records.DataError(
                        f"{path}: records are {list(image.shape[1:])} (HxWxC) but the config "
                        "expects "
                        f"{expected}"
                    )
                all_images.append(image)
                all_labels.append(label)
                total += len(image)
        except tf.errors.OpError as e:
            raise records.DataError(
                f"{path}: cannot read records after {total} images (corrupt file or images of "
                f"different shapes): {e.message}"
            ) from e
    if not all_images:
        raise records.DataError(f"the {split} split in {ingest_dir} has no records")
    shapes = {x.shape[1:] for x in all_images}
    if len(shapes) > 1:
        raise records.DataError(f"the {split} split mixes image shapes {sorted(shapes)}")
    return np.concatenate(all_images), np.concatenate(all_labels).astype(np.int64)
