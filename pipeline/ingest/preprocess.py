"""One input image -> one record: decoding, conversion, resizing and PNG encoding.

`preprocess` turns a source's RawInput (a file path, encoded bytes or a
decoded array) into a `Record` (the serialized tf.train.Example plus the
numbers the statistics need) or a `Rejection` with a reason code. It is
what the ingest stage's Beam graph runs per image, and what the ingest and
capacity benchmarks time on its own.

Decisions worth knowing:
  * Transparency is composited over white before dropping alpha.
  * Images are resized so the shorter side equals data.resolution (Lanczos,
    antialiased, also when upscaling) and centre-cropped; EXIF orientation
    is applied first. Animated images contribute their first frame.
  * 16-bit images are scaled to 8 bits (v / 257), not clipped.
  * Inputs larger than data.max_pixels are refused from their header, before
    their pixels are decoded (decompression bombs).
"""

import collections
import dataclasses
import io
import os
import struct
import zlib

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gan_keras.data import records
from gan_keras.storage import filesystem
from pipeline.ingest import sources

# A reason code per way an input can fail (stats.json and rejected.jsonl).
EMPTY_FILE = "empty_file"
UNSUPPORTED_EXTENSION = "unsupported_extension"
READ_ERROR = "read_error"
NOT_AN_IMAGE = "not_an_image"
TOO_MANY_PIXELS = "too_many_pixels"
DECODE_ERROR = "decode_error"
UNSUPPORTED_IMAGE = "unsupported_image"


@dataclasses.dataclass(frozen=True)
class PreprocessOptions:
    resolution: int
    channels: int
    max_pixels: int

    @classmethod
    def from_config(cls, data_config):
        return cls(
            int(data_config.resolution), int(data_config.channels), int(data_config.max_pixels)
        )


# One output record. The pixel sums feed the statistics without decoding the
# PNG again; they are Python ints so merging partial sums is exact.
Record = collections.namedtuple(
    "Record",
    [
        "source_id",
        "split",
        "label",
        "example",
        "pixel_sum",
        "pixel_sumsq",
        "input_height",
        "input_width",
    ],
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
        if ext not in sources.IMAGE_EXTENSIONS:
            raise _Reject(
                UNSUPPORTED_EXTENSION,
                f"extension {ext or '(none)'!r} is not one of {sources.IMAGE_EXTENSIONS}",
            )
        if filesystem.is_object_store(payload):
            # One whole-object GET: a lazily read stream would cost a request per PIL read
            # and turn a network error mid-decode into a decode_error.
            try:
                data = filesystem.read_bytes(payload)
            except OSError as e:
                raise _Reject(READ_ERROR, str(e)) from e
            if not data:
                raise _Reject(EMPTY_FILE, "file has zero bytes")
            return Image.open(io.BytesIO(data))
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
    if isinstance(payload, sources.SourceReject):
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
            raise _Reject(
                TOO_MANY_PIXELS,
                f"{width}x{height} = {width * height} pixels > data.max_pixels={opts.max_pixels}",
            )
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
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))
    )


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
    return b"".join(
        (
            _PNG_SIGNATURE,
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", zlib.compress(filtered.tobytes(), 6)),
            _PNG_IEND,
        )
    )


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
        detail = r.detail
        if isinstance(raw.payload, str):
            detail = sources.object_detail(raw.payload, detail)
        return Rejection(raw.source_id, r.reason, detail)
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
    example = records.make_example(
        encode_png(pixels), resolution, resolution, channels, raw.label, raw.source_id
    )
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
