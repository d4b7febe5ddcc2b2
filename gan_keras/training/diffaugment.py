"""Differentiable Augmentation (Zhao et al., 2020) for data-efficient GANs.

The same random transform family is applied to real and generated images
before D sees them, and gradients flow through it to G. Randomness comes
from stateless ops keyed by an explicit seed so that training is
reproducible and identical across replica layouts.
"""

import tensorflow as tf

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    for name in names:
        if name not in POLICIES:
            raise ValueError(f"train.diffaugment: unknown policy {name!r}; choose from {POLICIES}")
    return names


def diff_augment(images, policy: tuple[str, ...], random_fn):
    """Augments float images [B, H, W, C] in [-1, 1].

    `random_fn(key, shape, minval, maxval, dtype)` returns per-example random
    values of shape [B, *shape]; keys are distinct per draw. Taking randomness
    from the caller lets a replica draw its slice of a global-batch stream.
    """
    for i, name in enumerate(policy):
        images = _AUGMENTATIONS[name](images, lambda key, *args, i=i: random_fn(i * 8 + key, *args))
    return images


def _color(x, rand):
    x = x + (rand(0, [1, 1, 1], 0.0, 1.0, x.dtype) - 0.5)
    mean = tf.reduce_mean(x, axis=3, keepdims=True)
    x = (x - mean) * (rand(1, [1, 1, 1], 0.0, 1.0, x.dtype) * 2.0) + mean
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = (x - mean) * (rand(2, [1, 1, 1], 0.0, 1.0, x.dtype) + 0.5) + mean
    return x


def _translation(x, rand, ratio=0.125):
    h, w = x.shape[1], x.shape[2]
    shift_h, shift_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = rand(0, [1, 1], -shift_h, shift_h + 1, tf.int32)
    tx = rand(1, [1, 1], -shift_w, shift_w + 1, tf.int32)
    grid_y, grid_x = tf.meshgrid(tf.range(h), tf.range(w), indexing="ij")
    y = tf.clip_by_value(grid_y[None] + ty + 1, 0, h + 1)
    xx = tf.clip_by_value(grid_x[None] + tx + 1, 0, w + 1)
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    return tf.gather_nd(padded, tf.stack([y, xx], axis=-1), batch_dims=1)


def _cutout(x, rand, ratio=0.5):
    h, w = x.shape[1], x.shape[2]
    cut_h, cut_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = rand(0, [1, 1], 0, h + (1 - cut_h % 2), tf.int32)
    cx = rand(1, [1, 1], 0, w + (1 - cut_w % 2), tf.int32)
    grid_y, grid_x = tf.meshgrid(tf.range(h), tf.range(w), indexing="ij")
    # Rows cy - cut_h // 2 ... cy - cut_h // 2 + cut_h - 1 (the reference's square of side
    # cut_h, clipped at the border), and the same for columns.
    top, left = cy - cut_h // 2, cx - cut_w // 2
    inside = (
        (grid_y[None] >= top)
        & (grid_y[None] < top + cut_h)
        & (grid_x[None] >= left)
        & (grid_x[None] < left + cut_w)
    )
    return x * tf.cast(~inside, x.dtype)[..., None]


_AUGMENTATIONS = {"color": _color, "translation": _translation, "cutout": _cutout}
