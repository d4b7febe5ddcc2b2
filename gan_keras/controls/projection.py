"""Projection: `project` fits latents whose generated images match given images (in-graph:
Adam written out with TensorFlow ops, so it runs in the exported ``project`` signature)."""

import math

import tensorflow as tf

from gan_keras import images as gan_images
from gan_keras.evaluation import image_scores

# Projection defaults (Adam on z with a cosine-decayed learning rate).
PROJECT_RESTARTS = 4
PROJECT_LEARNING_RATE = 0.1
_ADAM_BETA_1 = 0.9
_ADAM_BETA_2 = 0.999
_ADAM_EPSILON = 1e-8


def project(
    generator_fn,
    images_float: tf.Tensor,
    steps,
    *,
    latent_dim: int,
    label=None,
    num_restarts: int = PROJECT_RESTARTS,
    learning_rate: float = PROJECT_LEARNING_RATE,
    seed: int = 0,
    feature_fn=None,
    feature_weight: float = 1.0,
    start_fn=None,
) -> dict:
    """Finds latents whose generated images match `images_float` ([N, H, W, C] in [-1, 1]).

    `generator_fn(z, label)` (label None when unconditional) returns float
    images. Each image is fitted from `num_restarts` starting points, the mean
    latent 0 and random normal draws (fixed by `seed` and the same for every
    image, so an image's result does not depend on the batch it came in), by
    `steps` steps of Adam on z with a cosine-decayed learning rate, minimising
    the per-image pixel MSE plus `feature_weight` times the MSE of
    `feature_fn(images)` when given. The Adam update is written out with
    tensors, since a Keras optimizer cannot live in a SavedModel signature.
    `start_fn(draws, labels)` maps the starting draws [R * N, latent_dim] to the
    latents fitted (default: the draws, fitting z); `ControlSpace.projection_starts`
    fits w from w_avg and the draws' w.

    Returns {"z": [N, latent_dim], "images_float": reconstructions, "psnr":
    [N] dB of the uint8 reconstruction against the uint8 target}; the best
    restart (lowest final loss) per image.
    """
    if num_restarts < 1:
        raise ValueError(f"num_restarts must be >= 1, got {num_restarts}")
    target = tf.convert_to_tensor(images_float, tf.float32)
    steps = tf.convert_to_tensor(steps, tf.int32)
    steps_check = tf.debugging.assert_non_negative(steps, message="projection steps must be >= 0")
    num_images = tf.shape(target)[0]

    # Restart r of image i is row r * N + i.
    starts = tf.concat(
        [
            tf.zeros([1, latent_dim], tf.float32),
            tf.random.stateless_normal([num_restarts - 1, latent_dim], seed=[seed, 2]),
        ],
        axis=0,
    )
    z0 = tf.repeat(starts, num_images, axis=0)
    labels = (
        None if label is None else tf.tile(tf.convert_to_tensor(label, tf.int32), [num_restarts])
    )
    if start_fn is not None:
        z0 = tf.convert_to_tensor(start_fn(z0, labels), tf.float32)
    targets = tf.tile(target, [num_restarts, 1, 1, 1])
    target_features = None if feature_fn is None else feature_fn(targets)

    def losses(z):
        images = tf.cast(generator_fn(z, labels), tf.float32)
        per_image = tf.reduce_mean(tf.square(images - targets), axis=[1, 2, 3])
        if feature_fn is not None:
            features = tf.reshape(feature_fn(images) - target_features, [tf.shape(z)[0], -1])
            per_image += feature_weight * tf.reduce_mean(tf.square(features), axis=1)
        return per_image, images

    total_steps = tf.cast(tf.maximum(steps, 1), tf.float32)

    def body(i, z, m, v):
        with tf.GradientTape() as tape:
            tape.watch(z)
            per_image, _ = losses(z)
            # Summed, so each candidate's gradient is its own loss's.
            loss = tf.reduce_sum(per_image)
        grad = tape.gradient(loss, z)
        step = tf.cast(i + 1, tf.float32)
        m = _ADAM_BETA_1 * m + (1.0 - _ADAM_BETA_1) * grad
        v = _ADAM_BETA_2 * v + (1.0 - _ADAM_BETA_2) * tf.square(grad)
        m_hat = m / (1.0 - tf.pow(_ADAM_BETA_1, step))
        v_hat = v / (1.0 - tf.pow(_ADAM_BETA_2, step))
        # Cosine decay: large early steps to find the basin, small late ones to settle in it.
        rate = learning_rate * 0.5 * (1.0 + tf.cos(math.pi * tf.cast(i, tf.float32) / total_steps))
        z = z - rate * m_hat / (tf.sqrt(v_hat) + _ADAM_EPSILON)
        return i + 1, z, m, v

    with tf.control_dependencies([steps_check]):
        zeros = tf.zeros_like(z0)
        _, z, _, _ = tf.while_loop(
            lambda i, *_: i < steps, body, [tf.constant(0, tf.int32), z0, zeros, zeros]
        )
    per_image, images = losses(z)
    best = tf.argmin(
        tf.reshape(per_image, [num_restarts, num_images]), axis=0, output_type=tf.int32
    )
    rows = best * num_images + tf.range(num_images)
    reconstructions = tf.gather(images, rows)
    return {
        "z": tf.gather(z, rows),
        "images_float": reconstructions,
        "psnr": image_scores.psnr_uint8_tensor(
            gan_images.to_uint8_tensor(reconstructions), gan_images.to_uint8_tensor(target)
        ),
    }
