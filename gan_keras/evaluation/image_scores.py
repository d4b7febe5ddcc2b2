"""Per-image full-reference metrics for the image-to-image tasks.

Every function takes two batches [N, H, W, C] of the same shape and dtype, either
float in [-1, 1] (model space) or uint8 in [0, 255], as numpy arrays or tensors,
and returns a float64 numpy array [N], one score per image (average them, or
report their spread, as the evaluation needs).

Protocol (`gan_keras.tasks.metric_protocol` gives the keyword arguments per task):

- ``y_channel=True``: RGB images are scored on their luminance Y = 0.299 R +
  0.587 G + 0.114 B (ITU-R BT.601), as super-resolution papers do; 1-channel
  images on the channel itself. Y is full range (same units as the input), so
  a grey RGB image scores as its 1-channel copy. (MATLAB's `rgb2ycbcr`, used by
  many SR papers, maps Y to [16, 235]; its PSNRs are 20 log10(255 / 219) =
  1.32 dB higher than these for the same images.)
- ``border=b``: b pixels are cropped from every side first (b = scale for
  super-resolution: the border is where resizing kernels lack support).
- PSNR's peak is the range: 2.0 for [-1, 1] floats, 255 for uint8 (so both give
  the same dB for the same pixels); identical images score +inf.

`psnr_uint8_tensor` is the in-graph PSNR (TensorFlow ops, float32 tensor [N], uint8
batches, no protocol), for SavedModel signatures (the exported ``project``'s "psnr").
"""

import math

import numpy as np
import tensorflow as tf

from gan_keras.tasks.conditions import BT601

SSIM_FILTER_SIZE = 11


def _pair(a, b, name: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(a, b) as float64 numpy [N, H, W, C] and the peak value their dtype implies."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 4 or a.shape[-1] not in (1, 3):
        raise ValueError(
            f"{name} expects two batches [N, H, W, 1|3] of one shape, got {a.shape} and {b.shape}"
        )
    if (a.dtype == np.uint8) != (b.dtype == np.uint8):
        raise ValueError(
            f"{name}: dtypes {a.dtype} and {b.dtype} mix uint8 with floats; "
            "convert both to the same range first"
        )
    peak = 255.0 if a.dtype == np.uint8 else 2.0
    return a.astype(np.float64), b.astype(np.float64), peak


def _protocol(x: np.ndarray, *, y_channel: bool, border: int) -> np.ndarray:
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    if border:
        if 2 * border >= min(x.shape[1], x.shape[2]):
            raise ValueError(f"border {border} crops away all of {x.shape[1]}x{x.shape[2]} images")
        x = x[:, border:-border, border:-border]
    if y_channel and x.shape[-1] == 3:
        x = np.sum(x * np.asarray(BT601), axis=-1, keepdims=True)
    return x


def _psnr_from_mse(mse: np.ndarray, peak: float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(peak**2 / mse)


def psnr(
    a, b, *, max_val: float | None = None, y_channel: bool = False, border: int = 0
) -> np.ndarray:
    """Peak signal-to-noise ratio in dB per image, float64 numpy [N]:
    10 log10(max_val^2 / MSE). max_val defaults to 2.0 ([-1, 1] floats) or 255 (uint8)."""
    a, b, peak = _pair(a, b, "psnr")
    a = _protocol(a, y_channel=y_channel, border=border)
    b = _protocol(b, y_channel=y_channel, border=border)
    mse = np.mean(np.square(a - b), axis=(1, 2, 3))
    return _psnr_from_mse(mse, peak if max_val is None else float(max_val))


def psnr_uint8_tensor(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """PSNR in dB per image of two uint8 batches [N, H, W, C] (peak 255; +inf if identical),
    in-graph: float32 tensor [N]."""
    diff = tf.cast(a, tf.float32) - tf.cast(b, tf.float32)
    mse = tf.reduce_mean(tf.square(diff), axis=tf.range(1, tf.rank(diff)))
    return 10.0 * tf.math.log(255.0**2 / mse) / math.log(10.0)


def ssim(
    a, b, *, max_val: float | None = None, y_channel: bool = False, border: int = 0
) -> np.ndarray:
    """Structural similarity per image, float64 numpy [N] (tf.image.ssim: 11x11 Gaussian
    window, sigma 1.5, k1 = 0.01, k2 = 0.03; averaged over channels when several).

    The window needs images of at least 11x11 pixels after the crop (score outputs,
    not 7x7 super-resolution conditions); smaller ones raise ValueError.
    """
    a, b, peak = _pair(a, b, "ssim")
    a = _protocol(a, y_channel=y_channel, border=border)
    b = _protocol(b, y_channel=y_channel, border=border)
    if min(a.shape[1], a.shape[2]) < SSIM_FILTER_SIZE:
        raise ValueError(
            f"ssim needs images of at least {SSIM_FILTER_SIZE}x{SSIM_FILTER_SIZE} "
            f"pixels (after cropping the border), got {a.shape[1]}x{a.shape[2]}"
        )
    peak = peak if max_val is None else float(max_val)
    # float64 keeps identical images at exactly 1.
    return (
        tf.image.ssim(tf.constant(a), tf.constant(b), max_val=peak, filter_size=SSIM_FILTER_SIZE)
        .numpy()
        .astype(np.float64)
    )


def _hole(mask, shape) -> np.ndarray:
    """float64 [N, H, W, 1] in {0, 1} from a mask: uint8 with 255 = hole, or bool/float
    with 1 = hole."""
    mask = np.asarray(mask)
    if mask.shape != (*shape[:3], 1):
        raise ValueError(f"mask must be [N, H, W, 1] = {(*shape[:3], 1)}, got {mask.shape}")
    threshold = 128 if mask.dtype == np.uint8 else 0.5
    return (mask >= threshold).astype(np.float64)


def masked_psnr(a, b, mask, *, max_val: float | None = None) -> np.ndarray:
    """PSNR over the hole pixels only (all channels), float64 numpy [N]; NaN for an image
    without a hole. mask [N, H, W, 1]: uint8 with 255 = hole (the serving convention)
    or float/bool with 1 = hole (the condition's mask channel)."""
    a, b, peak = _pair(a, b, "masked_psnr")
    hole = _hole(mask, a.shape)
    count = np.sum(hole, axis=(1, 2, 3)) * a.shape[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        mse = np.sum(hole * np.square(a - b), axis=(1, 2, 3)) / count
    return _psnr_from_mse(mse, peak if max_val is None else float(max_val))


def l1(a, b, mask=None) -> np.ndarray:
    """Mean absolute error per image in [-1, 1] units (those of the training L1 loss,
    task.l1_weight), float64 numpy [N]; uint8 inputs are converted (|difference| / 127.5).
    With `mask` (as in `masked_psnr`), the mean over the hole pixels only."""
    a, b, peak = _pair(a, b, "l1")
    error = np.abs(a - b) * (2.0 / peak)
    if mask is None:
        return np.mean(error, axis=(1, 2, 3))
    hole = _hole(mask, a.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(hole * error, axis=(1, 2, 3)) / (np.sum(hole, axis=(1, 2, 3)) * a.shape[-1])
