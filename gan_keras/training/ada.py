"""Adaptive discriminator augmentation (ADA; Karras et al. 2020, "Training Generative
Adversarial Networks with Limited Data").

Every image D sees, real or generated, goes through one augmentation pipeline in which each
op is applied with probability p; gradients flow through it to G. p is not a constant: it
follows D's overfitting, measured by r_t = E[sign(D(real))] over the last few steps. When
r_t is above the target (0.6 in the paper) D is too sure of the training images and p rises;
below, p falls. So augmentation only appears once D starts to memorise, and only as strongly
as it must, which is what keeps it from leaking into G's output: the paper shows the "bgc"
ops below leak nothing while p stays under ~0.8.

The ops, in the paper's order (its "bgc" set; each with probability p per image):
- blit: x-flip, rotation by a multiple of 90 degrees, integer translation (up to 1/8 of the
  size);
- geometric: isotropic scaling (log2-normal, std 0.2), rotation (twice, each with
  1 - sqrt(1 - p) so that some rotation happens with p), anisotropic scaling, fractional
  translation (normal, std 1/8);
- colour: brightness (std 0.2), contrast (log2-normal, std 0.5), luma flip, hue rotation,
  saturation (log2-normal, std 1); on 1-channel images only brightness and contrast act.
All geometric ops compose into one 3x3 matrix per image and are applied in one bilinear
resampling with reflection at the borders (as the paper pads); the colour ops compose into
one 4x4 matrix. A single resampling is one blur instead of seven, and at p = 0 the pipeline
is skipped entirely, so training without augmentation stays bit-identical.

Randomness comes from the caller's `random_fn(key, shape, dtype)`, per example and keyed,
as for gan_keras.training.diffaugment: a replica draws its slice of the global batch's
stream, so one replica and two replicas augment the same images the same way.
"""

import math

import numpy as np
import tensorflow as tf

# StyleGAN2-ADA's defaults.
DEFAULT_TARGET = 0.6
DEFAULT_INTERVAL = 4  # steps between p updates
# Images over which p can move from 0 to 1 (the paper's ada_kimg=500).
DEFAULT_SPEED_IMAGES = 500_000
# The run length, in passes over the train images, past which ADA paid off here: without it D
# memorised Noto Emoji and Oxygen icons and their FD rose 65-95% by ~440-660 passes, while ADA
# held it; below 250 passes it was no better (docs/your-own-images.md). The automatic recipe
# (pipeline.recipe) turns ADA on from it, and the training-health advice (pipeline.train.health)
# suggests ADA from it.
PAYS_OFF_PASSES = 250
TRANSLATE_STD = 0.125
SCALE_STD = 0.2
ANISO_STD = 0.2
XINT_MAX = 0.125
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5
SATURATION_STD = 1.0
HUE_MAX = 1.0  # in units of pi

# Keys of the random draws (distinct per op and value).
(
    _XFLIP,
    _ROT90,
    _XINT,
    _SCALE,
    _ROT_PRE,
    _ANISO,
    _ROT_POST,
    _XFRAC,
    _BRIGHT,
    _CONTRAST,
    _LUMAFLIP,
    _HUE,
    _SAT,
) = range(13)
_GATE = 100  # gate draws use key + _GATE


def check_settings(target: float, interval: int, speed_images: float) -> None:
    """The one validation of train.ada_* (ValueError naming the field)."""
    if not 0 < target < 1:
        raise ValueError(f"train.ada_target must be in (0, 1), got {target}")
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise ValueError(f"train.ada_interval must be an integer >= 1, got {interval!r}")
    if not speed_images > 0:
        raise ValueError(f"train.ada_speed_images must be > 0, got {speed_images}")


def p_adjustment(signs_mean, target: float, batch_images, speed_images: float):
    """How far p moves after `batch_images` images whose mean sign(D(real)) was `signs_mean`:
    sign(r_t - target) x images / speed_images (so p crosses [0, 1] in `speed_images`)."""
    return tf.sign(signs_mean - target) * tf.cast(batch_images, tf.float32) / speed_images


# --------------------------------------------------------------------- matrices
def _matrix(rows):
    """A batch of matrices from nested lists of [B] tensors (or scalars)."""
    return tf.stack([tf.stack(row, axis=-1) for row in rows], axis=-2)


def _translate2d(tx, ty):
    one, zero = tf.ones_like(tx), tf.zeros_like(tx)
    return _matrix([[one, zero, tx], [zero, one, ty], [zero, zero, one]])


def _scale2d(sx, sy):
    one, zero = tf.ones_like(sx), tf.zeros_like(sx)
    return _matrix([[sx, zero, zero], [zero, sy, zero], [zero, zero, one]])


def _rotate2d(theta):
    c, s = tf.cos(theta), tf.sin(theta)
    one, zero = tf.ones_like(theta), tf.zeros_like(theta)
    return _matrix([[c, -s, zero], [s, c, zero], [zero, zero, one]])


def _translate3d(t):
    one, zero = tf.ones_like(t), tf.zeros_like(t)
    return _matrix(
        [[one, zero, zero, t], [zero, one, zero, t], [zero, zero, one, t], [zero, zero, zero, one]]
    )


def _scale3d(s):
    one, zero = tf.ones_like(s), tf.zeros_like(s)
    return _matrix(
        [[s, zero, zero, zero], [zero, s, zero, zero], [zero, zero, s, zero], [zero] * 3 + [one]]
    )


def _rotate3d(axis, theta):
    """Rotation by theta [B] about the unit 3-vector `axis` (Rodrigues), as 4x4 matrices."""
    vx, vy, vz = axis
    s, c = tf.sin(theta), tf.cos(theta)
    cc = 1 - c
    one, zero = tf.ones_like(theta), tf.zeros_like(theta)
    return _matrix(
        [
            [vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, zero],
            [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, zero],
            [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, zero],
            [zero, zero, zero, one],
        ]
    )


_LUMA = (1 / math.sqrt(3.0),) * 3
# v v^T for the luma axis, in homogeneous 4x4 form. A numpy array, not a tf.constant: a
# tensor made at import would start TF's context before MultiWorkerMirroredStrategy can
# configure its collectives (tests/pipeline/train/test_multi_worker.py fails then).
_LUMA_OUTER = np.array(
    [[1 / 3, 1 / 3, 1 / 3, 0], [1 / 3, 1 / 3, 1 / 3, 0], [1 / 3, 1 / 3, 1 / 3, 0], [0, 0, 0, 0]],
    np.float32,
)


# ------------------------------------------------------------------- resampling
def _reflect(coord, size: int):
    """Mirrors a continuous pixel coordinate into [0, size - 1] (reflection about the edge
    pixels' centres, so the border pixel is not repeated)."""
    if size == 1:
        return tf.zeros_like(coord)
    period = 2.0 * (size - 1)
    coord = tf.math.floormod(coord, period)
    return (size - 1) - tf.abs(coord - (size - 1))


def _bilinear(images, x, y):
    """Samples images [B, H, W, C] at pixel coordinates x, y [B, H, W] (already in range)."""
    height, width = images.shape[1], images.shape[2]
    x0 = tf.floor(x)
    y0 = tf.floor(y)
    wx = (x - x0)[..., None]
    wy = (y - y0)[..., None]
    x0i = tf.cast(x0, tf.int32)
    y0i = tf.cast(y0, tf.int32)
    x1i = tf.minimum(x0i + 1, width - 1)
    y1i = tf.minimum(y0i + 1, height - 1)

    def gather(yy, xx):
        return tf.gather_nd(images, tf.stack([yy, xx], axis=-1), batch_dims=1)

    top = gather(y0i, x0i) * (1 - wx) + gather(y0i, x1i) * wx
    bottom = gather(y1i, x0i) * (1 - wx) + gather(y1i, x1i) * wx
    return top * (1 - wy) + bottom * wy


def _warp(images, g_inv):
    """images resampled through g_inv [B, 3, 3], which maps output pixel positions (centred,
    in pixels) to input positions."""
    height, width = images.shape[1], images.shape[2]
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    gy, gx = tf.meshgrid(
        tf.range(height, dtype=tf.float32) - cy,
        tf.range(width, dtype=tf.float32) - cx,
        indexing="ij",
    )
    grid = tf.stack([gx, gy, tf.ones_like(gx)], axis=0)  # [3, H, W]
    src = tf.einsum("bij,jhw->bihw", g_inv, grid)
    x = _reflect(src[:, 0] + cx, width)
    y = _reflect(src[:, 1] + cy, height)
    return _bilinear(images, x, y)


# --------------------------------------------------------------------- pipeline
def augment(images, p, random_fn):
    """ADA's bgc pipeline on float images [B, H, W, C] in [-1, 1], each op with probability p.

    `random_fn(key, shape, dtype, distribution)` returns per-example draws of shape [B, *shape]
    ('uniform' in [0, 1) or 'normal'); keys are distinct per draw. Differentiable in `images`.
    """
    images = tf.convert_to_tensor(images)
    dtype = images.dtype
    x = tf.cast(images, tf.float32)
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    p = tf.cast(p, tf.float32)

    def uniform(key):
        return random_fn(key, [], tf.float32, "uniform")

    def normal(key):
        return random_fn(key, [], tf.float32, "normal")

    def gate(key, prob=None):
        return uniform(key + _GATE) < (p if prob is None else prob)

    # ---- geometric: the inverse transform, composed op by op (output -> input)
    size = tf.constant([width, height], tf.float32)
    i = tf.floor(uniform(_XFLIP) * 2)
    i = tf.where(gate(_XFLIP), i, 0.0)
    g_inv = _scale2d(1 - 2 * i, tf.ones_like(i))
    i = tf.floor(uniform(_ROT90) * 4)
    i = tf.where(gate(_ROT90), i, 0.0)
    g_inv = g_inv @ _rotate2d(-math.pi / 2 * i)
    t = (random_fn(_XINT, [2], tf.float32, "uniform") * 2 - 1) * XINT_MAX
    t = tf.where(gate(_XINT)[:, None], tf.round(t * size), 0.0)
    g_inv = g_inv @ _translate2d(-t[:, 0], -t[:, 1])
    s = tf.pow(2.0, normal(_SCALE) * SCALE_STD)
    s = tf.where(gate(_SCALE), s, 1.0)
    g_inv = g_inv @ _scale2d(1 / s, 1 / s)
    p_rot = 1 - tf.sqrt(tf.maximum(1 - p, 0.0))
    theta = (uniform(_ROT_PRE) * 2 - 1) * math.pi
    theta = tf.where(gate(_ROT_PRE, p_rot), theta, 0.0)
    g_inv = g_inv @ _rotate2d(-theta)
    s = tf.pow(2.0, normal(_ANISO) * ANISO_STD)
    s = tf.where(gate(_ANISO), s, 1.0)
    g_inv = g_inv @ _scale2d(1 / s, s)
    theta = (uniform(_ROT_POST) * 2 - 1) * math.pi
    theta = tf.where(gate(_ROT_POST, p_rot), theta, 0.0)
    g_inv = g_inv @ _rotate2d(-theta)
    t = random_fn(_XFRAC, [2], tf.float32, "normal") * TRANSLATE_STD
    t = tf.where(gate(_XFRAC)[:, None], t * size, 0.0)
    g_inv = g_inv @ _translate2d(-t[:, 0], -t[:, 1])
    x = _warp(x, g_inv)

    # ---- colour: one 4x4 matrix per image
    b = tf.where(gate(_BRIGHT), normal(_BRIGHT) * BRIGHTNESS_STD, 0.0)
    c_mat = _translate3d(b)
    c = tf.where(gate(_CONTRAST), tf.pow(2.0, normal(_CONTRAST) * CONTRAST_STD), 1.0)
    c_mat = _scale3d(c) @ c_mat
    if channels == 3:
        identity = tf.eye(4, dtype=tf.float32)
        i = tf.floor(uniform(_LUMAFLIP) * 2)
        i = tf.where(gate(_LUMAFLIP), i, 0.0)
        c_mat = (identity - 2 * _LUMA_OUTER * i[:, None, None]) @ c_mat
        theta = (uniform(_HUE) * 2 - 1) * math.pi * HUE_MAX
        theta = tf.where(gate(_HUE), theta, 0.0)
        c_mat = _rotate3d(_LUMA, theta) @ c_mat
        s = tf.where(gate(_SAT), tf.pow(2.0, normal(_SAT) * SATURATION_STD), 1.0)
        c_mat = (_LUMA_OUTER + (identity - _LUMA_OUTER) * s[:, None, None]) @ c_mat
        x = tf.einsum("bij,bhwj->bhwi", c_mat[:, :3, :3], x) + c_mat[:, None, None, :3, 3]
    elif channels == 1:
        # As StyleGAN2-ADA does for one channel: the RGB matrix's rows averaged, applied to a
        # grey pixel (r = g = b), i.e. the row sums' mean times the value plus the mean offset.
        scale = tf.reduce_sum(c_mat[:, :3, :3], axis=[1, 2]) / 3.0
        offset = tf.reduce_mean(c_mat[:, :3, 3], axis=1)
        x = x * scale[:, None, None, None] + offset[:, None, None, None]
    else:
        raise ValueError(f"ADA augments 1- or 3-channel images, got {channels} channels")
    return tf.cast(x, dtype)


def options(train_config) -> dict:
    """GAN.compile's ADA options from the `train` config section (configs written before ADA
    existed mean off)."""
    return {
        "ada_target": float(train_config.get("ada_target", 0.0)),
        "ada_interval": train_config.get("ada_interval", DEFAULT_INTERVAL),
        "ada_speed_images": float(train_config.get("ada_speed_images", DEFAULT_SPEED_IMAGES)),
    }
