"""Image bytes and files: PNG decoding to an exact shape, PNG strips and grids, looping GIFs."""

import io
import pathlib

import numpy as np
from PIL import Image, UnidentifiedImageError

from gan_keras import images as gan_images
from gan_keras.client.model import RequestError
from gan_keras.storage import atomic

DEFAULT_GIF_FRAME_MS = 100
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class WrongPngShape(RequestError):
    """A PNG that decodes but has another size or channel count than expected."""


_CHANNEL_NAMES = {1: "grayscale", 2: "grayscale + alpha", 3: "RGB", 4: "RGBA"}


def shape_text(shape) -> str:
    h, w, c = shape
    return f"{w}x{h} pixels, {c} channel{'s' if c != 1 else ''} ({_CHANNEL_NAMES.get(c, '?')})"


def shape_list(shape) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def decode_png(data: bytes, expected_shape=None, name: str = "image") -> np.ndarray:
    """An 8-bit PNG's pixels, uint8 [H, W, C], which must be `expected_shape` when given.

    Nothing is resized or converted between grayscale and colour: a wrong
    size or channel count is an error naming the expected [H, W, C] (and
    `name`, the input it is for). (1-bit and palette PNGs are read as the
    grayscale or RGB(A) pixels they hold.)
    """
    if not data:
        raise RequestError("empty image: expected a PNG")
    if not data.startswith(PNG_SIGNATURE):
        raise RequestError("not a PNG image (the data does not start with the PNG signature)")
    try:
        image = Image.open(io.BytesIO(data))
        mode = image.mode
        if mode == "1":
            channels = 1
        elif mode == "P":
            channels = 4 if "transparency" in image.info else 3
        elif mode in ("L", "LA", "RGB", "RGBA"):
            channels = len(mode)
        else:
            raise RequestError(
                f"unsupported PNG pixel format {mode!r}: use 8-bit grayscale or RGB(A)"
            )
        got = (image.height, image.width, channels)
        if expected_shape is not None and got != tuple(expected_shape):
            raise WrongPngShape(
                f"{name} must have shape {shape_list(expected_shape)} "
                f"({shape_text(expected_shape)}), got {shape_list(got)} ({shape_text(got)}); "
                "it is not resized or converted"
            )
        image.load()
        if mode == "1":
            image = image.convert("L")
        elif mode == "P":
            image = image.convert("RGBA" if channels == 4 else "RGB")
    except RequestError:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
    ) as e:
        raise RequestError(f"could not decode the PNG: {e}") from None
    pixels = np.asarray(image, np.uint8)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def read_png(path, expected_shape=None, name: str = "image") -> np.ndarray:
    """`decode_png` of a file; errors name the file."""
    try:
        return decode_png(pathlib.Path(path).read_bytes(), expected_shape, name)
    except RequestError as e:
        raise RequestError(f"{path}: {e}") from None


def strip_png(images: np.ndarray) -> bytes:
    """PNG of images [N, H, W, C] in one row (2-pixel padding, as the sample grids)."""
    return gan_images.encode_png(gan_images.make_grid(images, rows=1))


def edit_grid(images: np.ndarray) -> np.ndarray:
    """[num, S, H, W, C] -> one grid image: one row per sample, one column per strength."""
    num, strengths = images.shape[:2]
    return gan_images.make_grid(images.reshape((num * strengths, *images.shape[2:])), rows=num)


def encode_gif(frames: np.ndarray, duration_ms: int = DEFAULT_GIF_FRAME_MS) -> bytes:
    """An animated GIF of uint8 frames [N, H, W, C] that loops forever.

    Grayscale frames are stored exactly; colour ones through a 256-colour
    palette per frame (GIF's limit). GIF delays are in 10 ms units, and
    identical consecutive frames become one longer frame.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[0] == 0 or frames.dtype != np.uint8:
        raise ValueError(
            f"encode_gif expects uint8 frames [N, H, W, C], got {frames.dtype} {frames.shape}"
        )
    if frames.shape[-1] == 1:
        frames = frames[..., 0]
    pictures = [Image.fromarray(frame) for frame in frames]
    buf = io.BytesIO()
    pictures[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=pictures[1:],
        duration=int(duration_ms),
        loop=0,
    )
    return buf.getvalue()


def write_image_file(path, images: np.ndarray, duration_ms: int = DEFAULT_GIF_FRAME_MS) -> None:
    """Images [N, H, W, C] to `path`: an animated GIF for '*.gif', else a one-row PNG strip."""
    path = pathlib.Path(path)
    if path.suffix.lower() == ".gif":
        data = encode_gif(images, duration_ms)
    else:
        data = strip_png(images)
    atomic.atomic_write_bytes(path, data)


def write_images(images: np.ndarray, out=None, out_dir=None, rows: int | None = None) -> None:
    if out is not None:
        gan_images.save_png(out, gan_images.make_grid(images, rows=rows))
    if out_dir is not None:
        out_dir = pathlib.Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            gan_images.save_png(out_dir / f"sample_{i:05d}.png", image)
