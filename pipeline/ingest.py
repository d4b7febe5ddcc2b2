"""Ingest stage: images -> sharded GZIP TFRecords, statistics and a rejects report.

An Apache Beam pipeline (DirectRunner unless ``beam_pipeline_args`` name
another runner, e.g. --runner=FlinkRunner):

    plan (driver: list files / read headers) -> Create(work items)
      -> Read -> Preprocess --records--> AssignSplit -> KeyByShard -> GroupByKey -> WriteShard
          |         |                       `----------.
          |         `--rejected--> ToList -> rejected.jsonl
          `---------------------------------------------+-> CombineGlobally(IngestStatsFn) -> stats

Everything goes into `out_dir`:
    {train,eval}-NNNNN-of-NNNNN.tfrecord.gz  tf.train.Example records (see below)
    stats.json      counts per split/class, pixel mean/std, input size range, rejects
    rejected.jsonl  one {"source_id", "reason", "detail"} object per rejected input
    labels.json     class names (index = label), [] for unlabelled data

Example features: image/encoded (lossless PNG of uint8 pixels), image/height,
image/width, image/channels, image/class/label (-1 when unlabelled),
image/source_id.

Decisions worth knowing:
  * Transparency is composited over white before dropping alpha.
  * Hidden files and folders (names starting with '.', e.g. .DS_Store) are
    ignored; every other file is either written or rejected with a reason
    (e.g. unsupported_extension), never dropped silently.
  * Images are resized so the shorter side equals data.resolution (Lanczos,
    antialiased, also when upscaling) and centre-cropped; EXIF orientation
    is applied first. Animated images contribute their first frame.
  * 16-bit images are scaled to 8 bits (v / 257), not clipped.
"""

import collections
import dataclasses
import functools
import hashlib
import io
import json
import logging
import math
import os
import pathlib
import shlex
import struct
import uuid
import zlib

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from PIL import Image, ImageOps, UnidentifiedImageError

from gan_keras import io_utils
from pipeline import ingest_sources
from pipeline.ingest_sources import EVAL, TRAIN

# Aim for shards of about this many records when data.num_shards is 0.
RECORDS_PER_SHARD = 15_000
MIN_RESOLUTION = 8
_METRICS_NAMESPACE = "ingest"
# The pipeline's statistics, merged into stats.json by the driver.
SUMMARY_FILE = ".summary.json"

# A reason code per way an input can fail (stats.json and rejected.jsonl).
EMPTY_FILE = "empty_file"
UNSUPPORTED_EXTENSION = "unsupported_extension"
READ_ERROR = "read_error"
NOT_AN_IMAGE = "not_an_image"
TOO_MANY_PIXELS = "too_many_pixels"
DECODE_ERROR = "decode_error"
UNSUPPORTED_IMAGE = "unsupported_image"


class IngestError(RuntimeError):
    """The stage ran but its output must not be used (too many rejects, no train data)."""


# --- config -----------------------------------------------------------------


def _check_number(config, field, kind, low=None, high=None, high_open=False):
    value = config.get(field)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"data.{field} must be {kind if isinstance(kind, type) else kind[0]}, got {value!r}")
    if (low is not None and value < low) or (high is not None and (value >= high if high_open else value > high)):
        hi = "" if high is None else f" and {'<' if high_open else '<='} {high}"
        raise ValueError(f"data.{field} must be >= {low}{hi}, got {value!r}")
    return value


def validate_config(data_config) -> None:
    """Raises ValueError naming the data.* field with a bad value. Reads no images."""
    ingest_sources.check_source(data_config.get("source"))
    _check_number(data_config, "resolution", int, MIN_RESOLUTION)
    channels = data_config.get("channels")
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ValueError(f"data.channels must be 1 or 3, got {channels!r}")
    _check_number(data_config, "eval_fraction", (float, int), 0, 1, high_open=True)
    _check_number(data_config, "max_pixels", int, 1)
    _check_number(data_config, "max_reject_fraction", (float, int), 0, 1)
    _check_number(data_config, "num_shards", int, 0)
    for field in ("tfds_data_dir", "beam_pipeline_args", "label_names"):
        if not isinstance(data_config.get(field, ""), str):
            raise ValueError(f"data.{field} must be a string, got {data_config.get(field)!r}")
    try:
        shlex.split(data_config.get("beam_pipeline_args", ""))
    except ValueError as e:
        raise ValueError(f"data.beam_pipeline_args cannot be split like a shell command line: {e}") from e
    tfds_dir = data_config.get("tfds_data_dir", "")
    if tfds_dir and not os.path.isdir(tfds_dir):
        raise ValueError(f"data.tfds_data_dir {tfds_dir!r} is not a directory")
    if any(not n for n in _label_names(data_config)):
        raise ValueError(f"data.label_names has an empty name: {data_config.get('label_names')!r}")


def _label_names(data_config):
    names = data_config.get("label_names", "")
    return [n.strip() for n in names.split(",")] if names.strip() else []


# --- per-example processing (shared by the pipeline and the benchmark loop) --


@dataclasses.dataclass(frozen=True)
class PreprocessOptions:
    resolution: int
    channels: int
    max_pixels: int

    @classmethod
    def from_config(cls, data_config):
        return cls(int(data_config.resolution), int(data_config.channels), int(data_config.max_pixels))


# One output record. The pixel sums feed the statistics without decoding the
# PNG again; they are Python ints so merging partial sums is exact.
Record = collections.namedtuple(
    "Record",
    ["source_id", "split", "label", "example", "pixel_sum", "pixel_sumsq", "input_height", "input_width"],
)
Rejection = collections.namedtuple("Rejection", ["source_id", "reason", "detail"])


class _Reject(Exception):
    def __init__(self, reason, detail):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def allow_max_pixels(max_pixels):
    """Lets PIL open images up to `max_pixels` (never lowers PIL's guard).

    Our own header check rejects anything larger before decoding; PIL's
    DecompressionBombError stays as a backstop and is reported the same way.
    """
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels


def _open(payload):
    if isinstance(payload, str):
        ext = os.path.splitext(payload)[1].lower()
        if ext not in ingest_sources.IMAGE_EXTENSIONS:
            raise _Reject(UNSUPPORTED_EXTENSION, f"extension {ext or '(none)'!r} is not one of {ingest_sources.IMAGE_EXTENSIONS}")
        try:
            size = os.path.getsize(payload)
        except OSError as e:
            raise _Reject(READ_ERROR, str(e)) from e
        if size == 0:
            raise _Reject(EMPTY_FILE, "file has zero bytes")
        return Image.open(payload)
    if isinstance(payload, bytes | bytearray | memoryview):
        if len(payload) == 0:
            raise _Reject(EMPTY_FILE, "image has zero bytes")
        return Image.open(io.BytesIO(payload))
    raise TypeError(f"unexpected payload type {type(payload).__name__}")


def _array_to_image(array):
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise _Reject(UNSUPPORTED_IMAGE, f"array of shape {array.shape} is not an image")
    if array.dtype == np.uint16 and array.ndim == 2:
        return Image.fromarray(array, "I;16")
    if array.dtype != np.uint8:
        raise _Reject(UNSUPPORTED_IMAGE, f"array dtype {array.dtype} (expected uint8)")
    return Image.fromarray(array)


def _load(payload, opts):
    """Decoded PIL image and its stored (height, width); rejects bad inputs."""
    if isinstance(payload, ingest_sources.SourceReject):
        raise _Reject(payload.reason, payload.detail)
    if isinstance(payload, np.ndarray):
        image = _array_to_image(payload)
        return image, image.height, image.width
    try:
        image = _open(payload)
    except _Reject:
        raise
    except Image.DecompressionBombError as e:
        raise _Reject(TOO_MANY_PIXELS, str(e)) from e
    except UnidentifiedImageError as e:
        raise _Reject(NOT_AN_IMAGE, "not a decodable image format") from e
    except OSError as e:
        raise _Reject(READ_ERROR, f"{type(e).__name__}: {e}") from e
    with image:
        width, height = image.size
        # The header is all that has been read so far: refuse decompression
        # bombs before allocating their pixels.
        if width * height > opts.max_pixels:
            raise _Reject(TOO_MANY_PIXELS, f"{width}x{height} = {width * height} pixels > data.max_pixels={opts.max_pixels}")
        if width == 0 or height == 0:
            raise _Reject(UNSUPPORTED_IMAGE, f"image size {width}x{height}")
        try:
            if image.format == "JPEG":
                # Let libjpeg decode at 1/2..1/8 scale while staying >= 2x the
                # target: much faster for photos, no visible loss after Lanczos.
                image.draft(None, (2 * opts.resolution, 2 * opts.resolution))
            image.load()
            if image.getexif().get(0x0112, 1) != 1:  # EXIF orientation
                image = ImageOps.exif_transpose(image)
        except Exception as e:  # noqa: BLE001 - decoders raise OSError, SyntaxError, ValueError, ...
            raise _Reject(DECODE_ERROR, f"{type(e).__name__}: {e}") from e
    return image, height, width


_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def to_channels(image, channels):
    """`image` as mode 'L' (channels=1) or 'RGB' (channels=3), alpha over white."""
    mode = image.mode
    # 16-bit data ('I;16*', or 'I' holding values above 255) is scaled by
    # 255/65535 so the full range survives; clipping would saturate it.
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image).astype(np.int64)
        if mode == "I" and values.size and values.max() <= 255:
            values8 = np.clip(values, 0, 255)  # 'I' holding 8-bit data
        else:
            values8 = np.round(np.clip(values, 0, 65535) / 257.0)
        image = Image.fromarray(values8.astype(np.uint8), "L")
    elif mode == "F":
        image = Image.fromarray(np.clip(np.round(np.asarray(image)), 0, 255).astype(np.uint8), "L")
    elif mode == "La":
        image = image.convert("LA")
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba).convert("RGB")
    target = "L" if channels == 1 else "RGB"
    return image if image.mode == target else image.convert(target)


def resize_and_center_crop(image, resolution):
    """Shorter side -> `resolution` (antialiased Lanczos), then a centre crop."""
    width, height = image.size
    if (width, height) == (resolution, resolution):
        return image
    # The same rounding as torchvision's Resize(int) + CenterCrop.
    if width <= height:
        new_size = (resolution, int(resolution * height / width))
    else:
        new_size = (int(resolution * width / height), resolution)
    if new_size != (width, height):
        # reducing_gap=3 first shrinks by whole factors where that is
        # indistinguishable from full Lanczos, which is what makes big inputs cheap.
        image = image.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    left = int(round((new_size[0] - resolution) / 2.0))
    top = int(round((new_size[1] - resolution) / 2.0))
    return image.crop((left, top, left + resolution, top + resolution))


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


_PNG_IEND = _png_chunk(b"IEND", b"")


def encode_png(pixels) -> bytes:
    """Lossless 8-bit grey/RGB PNG of uint8 pixels [H, W, 1|3].

    Same output contract as gan_keras.images.encode_png, written with zlib
    directly: PIL's PNG writer spends ~40 us per 28x28 image in Python
    plugin overhead, which was a third of the whole per-image cost. Rows
    use PNG's 'Up' filter for larger images (it helps photos a lot) and no
    filter for tiny ones, where filtering does not pay.
    """
    height, width, channels = pixels.shape
    rows = np.ascontiguousarray(pixels, dtype=np.uint8).reshape(height, width * channels)
    filtered = np.empty((height, width * channels + 1), np.uint8)
    if rows.size > 4096:
        filtered[:, 0] = 2  # Up: difference to the row above (row 0 keeps its values)
        filtered[0, 1:] = rows[0]
        np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    else:
        filtered[:, 0] = 0
        filtered[:, 1:] = rows
    header = struct.pack(">IIBBBBB", width, height, 8, 0 if channels == 1 else 2, 0, 0, 0)
    return b"".join((_PNG_SIGNATURE, _png_chunk(b"IHDR", header),
                     _png_chunk(b"IDAT", zlib.compress(filtered.tobytes(), 6)), _PNG_IEND))


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

    Written directly in protobuf wire format so Beam workers need not import
    TensorFlow (4 s and hundreds of MB per worker); the tests parse the output
    with tf.train.Example and tf.io.parse_single_example.
    """
    entries = []
    for key in sorted(features):
        value = features[key]
        if isinstance(value, bytes):
            entries.append(_entry(key, _field(1, _field(1, value))))  # Feature.bytes_list.value
        else:
            entries.append(_int64_entry(key, int(value)))
    return _field(1, b"".join(entries))  # Example.features


def preprocess(raw, opts):
    """RawInput -> Record (split still as the source says) or Rejection."""
    if _already_final(raw.payload, opts):
        # E.g. MNIST at 28x28: nothing to convert, skip PIL entirely.
        pixels = raw.payload.reshape(opts.resolution, opts.resolution, opts.channels)
        return make_record(raw, pixels, opts.resolution, opts.resolution)
    try:
        image, height, width = _load(raw.payload, opts)
        try:
            image = resize_and_center_crop(to_channels(image, opts.channels), opts.resolution)
        except Exception as e:  # noqa: BLE001 - exotic modes PIL cannot convert
            raise _Reject(UNSUPPORTED_IMAGE, f"{type(e).__name__}: {e}") from e
    except _Reject as r:
        return Rejection(raw.source_id, r.reason, r.detail)
    pixels = np.asarray(image).reshape(opts.resolution, opts.resolution, opts.channels)
    return make_record(raw, pixels, height, width)


def _already_final(payload, opts):
    """True for a uint8 array that needs no conversion, resize or crop."""
    if not isinstance(payload, np.ndarray) or payload.dtype != np.uint8:
        return False
    shape = (opts.resolution, opts.resolution)
    return payload.shape in ((*shape, opts.channels), shape if opts.channels == 1 else None)


def make_record(raw, pixels, height, width):
    """Record for final uint8 pixels [R, R, C]; height/width are the input's."""
    resolution, channels = pixels.shape[0], pixels.shape[2]
    example = serialize_example({
        "image/encoded": encode_png(pixels),
        "image/height": resolution,
        "image/width": resolution,
        "image/channels": channels,
        "image/class/label": raw.label,
        "image/source_id": raw.source_id.encode("utf-8"),
    })
    flat = pixels.reshape(-1, channels).astype(np.int64)
    return Record(
        source_id=raw.source_id,
        split=raw.split,
        label=raw.label,
        example=example,
        pixel_sum=tuple(int(v) for v in flat.sum(axis=0)),
        pixel_sumsq=tuple(int(v) for v in np.einsum("ij,ij->j", flat, flat)),
        input_height=height,
        input_width=width,
    )


def hash_split(source_id, eval_fraction):
    """Deterministic split from the source id alone (stable across runs/workers)."""
    digest = hashlib.sha256(source_id.encode("utf-8")).digest()
    return EVAL if int.from_bytes(digest[:8], "big") / 2.0**64 < eval_fraction else TRAIN


def assign_split(record, eval_fraction):
    if record.split is not None:
        return record
    return record._replace(split=hash_split(record.source_id, eval_fraction))


def rejection_json(rejection):
    return json.dumps(rejection._asdict(), sort_keys=True)


# --- statistics -------------------------------------------------------------


# Events the statistics are combined from, one per batch / rejection.
INPUTS, RECORDS, REJECTED = "inputs", "records", "rejected"


class IngestStatsFn(beam.CombineFn):
    """Inputs read, counts per split and class, exact pixel sums, input size
    range and rejects per reason, all in one combine.

    Inputs are tagged events: (INPUTS, number read), (RECORDS, list of
    Records) or (REJECTED, reason); batches keep it one call per work item.
    """

    def create_accumulator(self):
        return {"inputs": 0, "rejected": {}, "counts": {}, "sum": None, "sumsq": None, "height": None, "width": None}

    @staticmethod
    def _range(r, value):
        return (value, value) if r is None else (min(r[0], value), max(r[1], value))

    @staticmethod
    def _add(a, b):
        return b if a is None else (a if b is None else tuple(x + y for x, y in zip(a, b, strict=True)))

    def add_input(self, acc, event):
        kind, value = event
        if kind == INPUTS:
            acc["inputs"] += value
        elif kind == REJECTED:
            acc["rejected"][value] = acc["rejected"].get(value, 0) + 1
        else:
            for record in value:
                key = (record.split, record.label)
                acc["counts"][key] = acc["counts"].get(key, 0) + 1
                acc["sum"] = self._add(acc["sum"], record.pixel_sum)
                acc["sumsq"] = self._add(acc["sumsq"], record.pixel_sumsq)
                acc["height"] = self._range(acc["height"], record.input_height)
                acc["width"] = self._range(acc["width"], record.input_width)
        return acc

    def merge_accumulators(self, accumulators):
        out = self.create_accumulator()
        for acc in accumulators:
            out["inputs"] += acc["inputs"]
            for field in ("rejected", "counts"):
                for key, n in acc[field].items():
                    out[field][key] = out[field].get(key, 0) + n
            out["sum"] = self._add(out["sum"], acc["sum"])
            out["sumsq"] = self._add(out["sumsq"], acc["sumsq"])
            for dim in ("height", "width"):
                if acc[dim] is not None:
                    out[dim] = self._range(self._range(out[dim], acc[dim][0]), acc[dim][1])
        return out

    def extract_output(self, acc):
        return acc


def summarize(acc, resolution):
    """The pipeline-computed part of stats.json (JSON-ready)."""
    splits = {}
    for split in (TRAIN, EVAL):
        per_class = {str(label): n for (s, label), n in sorted(acc["counts"].items()) if s == split}
        splits[split] = {"count": sum(per_class.values()), "per_class": per_class}
    per_class = collections.Counter()
    for (_, label), n in acc["counts"].items():
        per_class[str(label)] += n
    records = sum(acc["counts"].values())
    mean = std = None
    if records:
        n = records * resolution * resolution
        mean = [s / n for s in acc["sum"]]
        std = [math.sqrt(max(q / n - m * m, 0.0)) for q, m in zip(acc["sumsq"], mean, strict=True)]
    return {
        "inputs_read": acc["inputs"],
        "records_written": records,
        "rejected": sum(acc["rejected"].values()),
        "rejected_by_reason": dict(sorted(acc["rejected"].items())),
        "splits": splits,
        "per_class": dict(sorted(per_class.items(), key=lambda kv: int(kv[0]))),
        "pixel_mean": mean,
        "pixel_std": std,
        "input_height": None if acc["height"] is None else {"min": acc["height"][0], "max": acc["height"][1]},
        "input_width": None if acc["width"] is None else {"min": acc["width"][0], "max": acc["width"][1]},
    }


# --- the Beam pipeline ------------------------------------------------------
#
# Elements are *batches*: one list per work item (a chunk of an array source,
# or a group of files), down to the shard writers. Beam's per-element cost in
# Python (several DoFn hops, plus encoding through the GroupByKey that
# WriteToTFRecord needs for a fixed shard count) measured ~60 us per image,
# as much as the real work on a 28x28 image. So records are grouped per
# (split, shard) within a batch, shuffled as such, and the shard writer
# frames TFRecords itself. The work items are numerous enough that workers
# still share the load evenly.


def _counter(name):
    return beam.metrics.Metrics.counter(_METRICS_NAMESPACE, name)


class ReadFn(beam.DoFn):
    """Work item -> list of RawInputs, with the source's reader."""

    def __init__(self, reader):
        self._reader = reader
        self._inputs = _counter("inputs_read")

    def setup(self):
        self._reader.setup()

    def process(self, item):
        batch = list(self._reader.read(item))
        self._inputs.inc(len(batch))
        yield batch


class PreprocessFn(beam.DoFn):
    """Decode, convert, resize, encode a batch; rejects go to the 'rejected' output."""

    REJECTED = "rejected"

    def __init__(self, opts):
        self._opts = opts
        self._rejected = _counter("rejected")
        self._by_reason = {}

    def setup(self):
        allow_max_pixels(self._opts.max_pixels)

    def process(self, raw_batch):
        records = []
        for raw in raw_batch:
            out = preprocess(raw, self._opts)
            if isinstance(out, Rejection):
                self._rejected.inc()
                if out.reason not in self._by_reason:
                    self._by_reason[out.reason] = _counter(f"rejected_{out.reason}")
                self._by_reason[out.reason].inc()
                yield beam.pvalue.TaggedOutput(self.REJECTED, out)
            else:
                records.append(out)
        yield records


class AssignSplitFn(beam.DoFn):
    def __init__(self, eval_fraction):
        self._eval_fraction = eval_fraction
        self._counters = {TRAIN: _counter("records_train"), EVAL: _counter("records_eval")}

    def process(self, batch):
        batch = [assign_split(record, self._eval_fraction) for record in batch]
        for split, counter in self._counters.items():
            counter.inc(sum(record.split == split for record in batch))
        yield batch


def shard_index(source_id, num_shards):
    """Deterministic shard of a record (other hash bytes than the split's)."""
    digest = hashlib.sha256(source_id.encode("utf-8")).digest()
    return int.from_bytes(digest[8:16], "big") % num_shards


def shard_name(split, shard, num_shards):
    return f"{split}-{shard:05d}-of-{num_shards:05d}.tfrecord.gz"


class KeyByShardFn(beam.DoFn):
    """Batch -> ((split, shard), (first source_id, [serialized examples])) per shard it touches."""

    def __init__(self, shards):
        self._shards = shards

    def process(self, batch):
        groups = {}
        for record in batch:
            key = (record.split, shard_index(record.source_id, self._shards[record.split]))
            groups.setdefault(key, (record.source_id, []))[1].append(record.example)
        yield from groups.items()


def _masked_crc32c(data):
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def write_tfrecord(file, data):
    """One record in TFRecord framing (length, masked CRC32C of length, data, CRC)."""
    length = struct.pack("<Q", len(data))
    file.write(b"".join((length, struct.pack("<I", _masked_crc32c(length)), data,
                         struct.pack("<I", _masked_crc32c(data)))))


class WriteShardFn(beam.DoFn):
    """Writes one GZIP TFRecord shard from its grouped batches, atomically.

    Batches are written in source_id order, so a rerun produces byte-identical
    shards. A temp file renamed into place makes retried bundles harmless.
    """

    def __init__(self, out_dir, shards):
        self._out_dir, self._shards = out_dir, shards

    def process(self, element):
        from apache_beam.io.filesystems import FileSystems

        (split, shard), batches = element
        name = shard_name(split, shard, self._shards[split])
        final = FileSystems.join(self._out_dir, name)
        tmp = FileSystems.join(self._out_dir, f".{name}.tmp-{uuid.uuid4().hex}")
        with FileSystems.create(tmp, compression_type=CompressionTypes.GZIP) as f:
            for _, examples in sorted(batches, key=lambda batch: batch[0]):
                for example in examples:
                    write_tfrecord(f, example)
        FileSystems.rename([tmp], [final])
        yield name


def write_file(path, data: bytes):
    """Writes a whole file through Beam's FileSystems via a temp name and a rename."""
    from apache_beam.io.filesystems import FileSystems

    directory, name = FileSystems.split(path)
    tmp = FileSystems.join(directory, f".{name}.tmp-{uuid.uuid4().hex}")
    with FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(data)
    FileSystems.rename([tmp], [path])
    return path


def _write_rejected(rejections, path):
    """rejected.jsonl, sorted by source_id so reruns compare equal."""
    lines = sorted((r.source_id, rejection_json(r)) for r in rejections)
    return write_file(path, "".join(line + "\n" for _, line in lines).encode("utf-8"))


def _write_summary(acc, path, resolution):
    return write_file(path, json.dumps(summarize(acc, resolution), sort_keys=True).encode("utf-8"))


class IngestTransform(beam.PTransform):
    """Work items -> TFRecord shards, rejected.jsonl and a stats JSON file."""

    def __init__(self, plan, opts, eval_fraction, shards, out_dir):
        super().__init__()
        self._plan, self._opts = plan, opts
        self._eval_fraction, self._shards, self._out_dir = eval_fraction, shards, out_dir

    def expand(self, work_items):
        out_dir = pathlib.Path(self._out_dir)
        raw = work_items | "Read" >> beam.ParDo(ReadFn(self._plan.reader))
        processed = raw | "Preprocess" >> beam.ParDo(PreprocessFn(self._opts)).with_outputs(
            PreprocessFn.REJECTED, main="records")
        records = processed.records | "AssignSplit" >> beam.ParDo(AssignSplitFn(self._eval_fraction))

        # Every shard gets an (empty) entry so that shards no record hashes to
        # are still written: readers can rely on all N files existing.
        all_shards = [((split, i), ("", [])) for split, n in sorted(self._shards.items()) for i in range(n)]
        (
            (records | "KeyByShard" >> beam.ParDo(KeyByShardFn(self._shards)),
             work_items.pipeline | "AllShards" >> beam.Create(all_shards))
            | "FlattenShards" >> beam.Flatten()
            | "GroupShards" >> beam.GroupByKey()
            | "WriteShards" >> beam.ParDo(WriteShardFn(str(out_dir), self._shards))
        )

        rejected = processed[PreprocessFn.REJECTED]
        # Rejects are few by design (data.max_reject_fraction): one sorted file.
        (rejected
         | "CollectRejected" >> beam.combiners.ToList()
         | "WriteRejected" >> beam.Map(_write_rejected, str(out_dir / "rejected.jsonl")))

        events = (
            raw | "InputEvents" >> beam.Map(lambda batch: (INPUTS, len(batch))),
            records | "RecordEvents" >> beam.Map(lambda batch: (RECORDS, batch)),
            rejected | "RejectEvents" >> beam.Map(lambda rejection: (REJECTED, rejection.reason)),
        )
        return (
            events
            | "FlattenEvents" >> beam.Flatten()
            | "Stats" >> beam.CombineGlobally(IngestStatsFn())
            | "WriteSummary" >> beam.Map(_write_summary, str(out_dir / SUMMARY_FILE), self._opts.resolution)
        )


def choose_num_shards(plan, data_config):
    """Shards per split: data.num_shards for train (0 = ~RECORDS_PER_SHARD each),
    eval proportionally fewer, at least one each so readers always find files."""
    if plan.has_own_split:
        expected = dict(plan.split_sizes)
    else:
        n = plan.split_sizes[None]
        expected = {EVAL: n * data_config.eval_fraction, TRAIN: n * (1 - data_config.eval_fraction)}
    train = data_config.num_shards or max(1, math.ceil(expected[TRAIN] / RECORDS_PER_SHARD))
    if data_config.num_shards:
        eval_ = max(1, round(train * expected.get(EVAL, 0) / max(expected[TRAIN], 1)))
    else:
        eval_ = max(1, math.ceil(expected.get(EVAL, 0) / RECORDS_PER_SHARD))
    return {TRAIN: int(train), EVAL: int(eval_)}


def pipeline_options(data_config, beam_pipeline_args=None):
    args = list(beam_pipeline_args or []) + shlex.split(data_config.get("beam_pipeline_args", ""))
    return PipelineOptions(args)


def make_pipeline(options):
    """A Beam pipeline on the runner `options` name, the DirectRunner's batch engine by default.

    Without --runner we run Beam's FnApiRunner, which is what DirectRunner
    executes batch pipelines with (it honours --direct_num_workers and
    --direct_running_mode). Going through DirectRunner itself would first try
    the Prism runner, a binary Beam downloads from GitHub at run time: no
    network here, and a silently different runner where there is.
    """
    if options.view_as(StandardOptions).runner is None:
        from apache_beam.runners.portability.fn_api_runner import fn_runner

        return beam.Pipeline(runner=fn_runner.FnApiRunner(), options=options)
    return beam.Pipeline(options=options)


def run_ingest(data_config, out_dir, beam_pipeline_args=None) -> dict:
    """Runs the ingest pipeline into `out_dir` and returns the stats (stats.json).

    Raises ValueError for bad config or a missing/empty source (before any
    work), IngestError after writing the report when too many inputs were
    rejected or the train split is empty.
    """
    validate_config(data_config)
    plan = ingest_sources.plan_source(data_config.source, data_config.tfds_data_dir, _label_names(data_config))
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Shards of an earlier run in the same directory would mix with ours.
    for stale in [*out_dir.glob("train-*.tfrecord.gz"), *out_dir.glob("eval-*.tfrecord.gz")]:
        stale.unlink()
    opts = PreprocessOptions.from_config(data_config)
    shards = choose_num_shards(plan, data_config)
    options = pipeline_options(data_config, beam_pipeline_args)
    logging.info("Ingesting %d inputs from %s into %s (shards %s)", plan.num_inputs, data_config.source, out_dir, shards)

    pipeline = make_pipeline(options)
    _ = (pipeline
         | "WorkItems" >> beam.Create(plan.work_items, reshuffle=len(plan.work_items) > 1)
         | "Ingest" >> IngestTransform(plan, opts, float(data_config.eval_fraction), shards, str(out_dir)))
    result = pipeline.run()
    result.wait_until_finish()
    _log_metrics(result)

    summary = json.loads((out_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    (out_dir / SUMMARY_FILE).unlink()
    stats = {
        "source": data_config.source,
        "source_kind": plan.kind,
        "source_info": plan.info,
        "resolution": opts.resolution,
        "channels": opts.channels,
        "num_classes": len(plan.label_names),
        "label_names": plan.label_names,
        "split_method": "source" if plan.has_own_split else "hash",
        "eval_fraction": None if plan.has_own_split else float(data_config.eval_fraction),
        "num_shards": shards,
        "files": {split: sorted(p.name for p in out_dir.glob(f"{split}-*-of-*.tfrecord.gz")) for split in (TRAIN, EVAL)},
        **summary,
    }
    io_utils.atomic_write_json(out_dir / "labels.json", plan.label_names)
    io_utils.atomic_write_json(out_dir / "stats.json", stats)
    _check_outcome(stats, data_config, out_dir)
    return stats


def _check_outcome(stats, data_config, out_dir):
    read, written, rejected = stats["inputs_read"], stats["records_written"], stats["rejected"]
    if read != written + rejected:
        raise IngestError(f"ingest lost inputs: read {read} but wrote {written} and rejected {rejected}")
    fraction = rejected / read if read else 0.0
    if fraction > data_config.max_reject_fraction:
        raise IngestError(
            f"{rejected} of {read} inputs ({fraction:.2%}) were rejected, more than "
            f"data.max_reject_fraction={data_config.max_reject_fraction}; reasons {stats['rejected_by_reason']}, "
            f"details in {out_dir / 'rejected.jsonl'}")
    if stats["splits"][TRAIN]["count"] == 0:
        raise IngestError(f"the train split is empty ({read} inputs read, {rejected} rejected); see {out_dir / 'stats.json'}")


def _log_metrics(result):
    try:
        counters = result.metrics().query(beam.metrics.MetricsFilter().with_namespace(_METRICS_NAMESPACE))["counters"]
    except Exception:  # noqa: BLE001 - not every runner reports metrics
        return
    totals = collections.Counter()
    for counter in counters:
        totals[counter.key.metric.name] += counter.committed or 0
    logging.info("Ingest counters: %s", dict(sorted(totals.items())))


# --- command line -----------------------------------------------------------


def main(argv):
    from absl import flags

    if len(argv) > 1:
        raise ValueError(f"unexpected arguments: {argv[1:]}")
    config = flags.FLAGS.config
    stats = run_ingest(config.data, pathlib.Path(flags.FLAGS.out_dir), flags.FLAGS.beam_arg)
    print(json.dumps({k: stats[k] for k in ("inputs_read", "records_written", "rejected", "num_shards")}, indent=2))


if __name__ == "__main__":
    from absl import app, flags
    from ml_collections import config_flags

    config_flags.DEFINE_config_file("config", "configs/default.py", "Pipeline config file.")
    flags.DEFINE_string("out_dir", None, "Directory for the ingest artifacts.", required=True)
    flags.DEFINE_multi_string("beam_arg", [], "Extra Beam pipeline option, e.g. --beam_arg=--runner=DirectRunner.")
    app.run(main)
