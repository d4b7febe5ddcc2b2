"""The record contract: what the ingest stage writes and every reader reads.

An ingest directory holds

    {train,eval}-NNNNN-of-NNNNN.tfrecord.gz  GZIP TFRecords of tf.train.Example
    stats.json       counts per split/class, resolution, channels, ... (see pipeline.ingest)
    labels.json      class names, index = label ([] for unlabelled data)
    rejected.jsonl   one {"source_id", "reason", "detail"} object per rejected input

and every Example has these features:

    image/encoded      bytes  lossless PNG of the uint8 pixels
    image/height       int64  the stored image's height (= data.resolution)
    image/width        int64  the stored image's width (= data.resolution)
    image/channels     int64  1 or 3
    image/class/label  int64  class index, -1 when unlabelled
    image/source_id    bytes  where the input came from (UTF-8), e.g. "cat/1.jpg"

Writers use `make_example` and `write_tfrecord`, which need no TensorFlow (Beam
workers would otherwise pay seconds and hundreds of MB to import it); TF
readers parse with `parse_spec()`.
"""

import functools
import json
import pathlib
import struct

TRAIN, EVAL = "train", "eval"
SPLITS = (TRAIN, EVAL)

ENCODED = "image/encoded"
HEIGHT = "image/height"
WIDTH = "image/width"
CHANNELS = "image/channels"
LABEL = "image/class/label"
SOURCE_ID = "image/source_id"
UNLABELLED = -1
# Feature key -> (value type, default when a record lacks it; None: required).
SCHEMA = {
    ENCODED: (bytes, None),
    HEIGHT: (int, None),
    WIDTH: (int, None),
    CHANNELS: (int, None),
    LABEL: (int, UNLABELLED),
    SOURCE_ID: (bytes, b""),
}

STATS_FILE = "stats.json"
LABELS_FILE = "labels.json"
REJECTED_FILE = "rejected.jsonl"


class DataError(ValueError):
    """The ingested records are missing, corrupt, or disagree with the config."""


class RecordsNotFoundError(DataError, FileNotFoundError):
    """No ingest output where it should be (the ingest stage has not run)."""


# --- writing ----------------------------------------------------------------


def make_example(
    png: bytes, height: int, width: int, channels: int, label: int, source_id: str
) -> bytes:
    """A serialized tf.train.Example holding one image (the features above)."""
    return serialize_example(
        {
            ENCODED: png,
            HEIGHT: height,
            WIDTH: width,
            CHANNELS: channels,
            LABEL: label,
            SOURCE_ID: source_id.encode("utf-8"),
        }
    )


def _varint(value):
    if 0 <= value < 0x80:
        return _SMALL_VARINTS[value]
    value &= (1 << 64) - 1  # int64 two's complement, as protobuf encodes negatives
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL_VARINTS = [bytes((i,)) for i in range(0x80)]


def _field(number, payload):
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _entry(key, feature):
    return _field(1, _field(1, key.encode()) + _field(2, feature))  # Features.feature map entry


@functools.lru_cache(maxsize=4096)
def _int64_entry(key, value):
    return _entry(key, _field(3, _field(1, _varint(value))))  # Feature.int64_list.value (packed)


def serialize_example(features) -> bytes:
    """A serialized tf.train.Example from {key: bytes | int}.

    Written directly in protobuf wire format so writers need not import
    TensorFlow; the tests parse the output with tf.train.Example and
    tf.io.parse_single_example.
    """
    entries = []
    for key in sorted(features):
        value = features[key]
        if isinstance(value, bytes):
            entries.append(_entry(key, _field(1, _field(1, value))))  # Feature.bytes_list.value
        else:
            entries.append(_int64_entry(key, int(value)))
    return _field(1, b"".join(entries))  # Example.features


def _masked_crc32c(data):
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def write_tfrecord(file, data: bytes) -> None:
    """One record in TFRecord framing (length, masked CRC32C of length, data, CRC)."""
    length = struct.pack("<Q", len(data))
    file.write(
        b"".join(
            (
                length,
                struct.pack("<I", _masked_crc32c(length)),
                data,
                struct.pack("<I", _masked_crc32c(data)),
            )
        )
    )


# --- reading ----------------------------------------------------------------


@functools.cache
def parse_spec() -> dict:
    """{feature key: tf.io.FixedLenFeature} for tf.io.parse_single_example."""
    import tensorflow as tf

    dtypes = {bytes: tf.string, int: tf.int64}
    return {
        key: tf.io.FixedLenFeature([], dtypes[kind], default_value=default)
        for key, (kind, default) in SCHEMA.items()
    }


# --- shard files ------------------------------------------------------------


def shard_name(split: str, shard: int, num_shards: int) -> str:
    return f"{split}-{shard:05d}-of-{num_shards:05d}.tfrecord.gz"


def shard_pattern(split: str = "*") -> str:
    """Glob matching the shards of `split` (every split's by default)."""
    return f"{split}-*-of-*.tfrecord.gz"


def list_shards(ingest_dir, split: str) -> list[str]:
    """The shard paths of a split, sorted; raises RecordsNotFoundError if there are none."""
    shards = sorted(str(p) for p in pathlib.Path(ingest_dir).glob(shard_pattern(split)))
    if not shards:
        raise RecordsNotFoundError(
            f"no {split} records: {ingest_dir}/{shard_pattern(split)} "
            "matched nothing (run the ingest stage first)"
        )
    return shards


# --- stats.json and labels.json ---------------------------------------------


def read_stats(ingest_dir) -> dict:
    path = pathlib.Path(ingest_dir) / STATS_FILE
    if not path.exists():
        raise RecordsNotFoundError(f"{path} is missing (run the ingest stage first)")
    return json.loads(path.read_text())


def read_label_names(ingest_dir) -> list[str]:
    """The class names ([] when labels.json is absent or the data is unlabelled)."""
    path = pathlib.Path(ingest_dir) / LABELS_FILE
    if not path.exists():
        return []
    names = json.loads(path.read_text())
    if not isinstance(names, list):
        raise DataError(f"{path} must hold a list of class names, got {type(names).__name__}")
    return names


def split_count(stats: dict, split: str) -> int:
    return int(stats["splits"][split]["count"])


def check_records_match_config(ingest_dir, resolution: int, channels: int) -> dict:
    """stats.json; fails fast, naming both sides, when the records' shape is not the config's."""
    stats = read_stats(ingest_dir)
    got = (stats.get("resolution"), stats.get("channels"))
    if got != (resolution, channels):
        raise DataError(
            f"{pathlib.Path(ingest_dir) / STATS_FILE}: records are {got[0]}x{got[0]}x{got[1]} "
            f"but the config asks for data.resolution={resolution}, data.channels={channels}; "
            "re-run ingest with this config or fix the config"
        )
    return stats
