"""Latent interpolation: `interpolation_weights` and `slerp` (in-graph, TensorFlow ops only)."""

import tensorflow as tf


def interpolation_weights(steps) -> tf.Tensor:
    """[steps] float32 from exactly 0 to exactly 1; steps >= 2."""
    steps = tf.convert_to_tensor(steps, tf.int32)
    check = tf.debugging.assert_greater_equal(
        steps, 2, message="interpolation steps must be >= 2 (the two end points)"
    )
    with tf.control_dependencies([check]):
        # i / (steps - 1) is exact at both ends, unlike an accumulated linspace.
        return tf.cast(tf.range(steps), tf.float32) / tf.cast(steps - 1, tf.float32)


def slerp(z_a: tf.Tensor, z_b: tf.Tensor, steps) -> tf.Tensor:
    """Spherical interpolation of two latents [latent_dim] -> [steps, latent_dim].

    Gaussian latents concentrate near a sphere; a straight line between two of
    them passes through the low-norm interior, which the generator rarely saw
    in training. Row 0 is `z_a` and the last row `z_b`, exactly. Nearly
    parallel (or anti-parallel, or zero) latents have no well-defined great
    circle, so those fall back to linear interpolation.
    """
    z_a = tf.convert_to_tensor(z_a, tf.float32)
    z_b = tf.convert_to_tensor(z_b, tf.float32)
    t = interpolation_weights(steps)[:, None]
    norm_a = tf.norm(z_a)
    norm_b = tf.norm(z_b)
    unit_a = z_a / tf.maximum(norm_a, 1e-12)
    unit_b = z_b / tf.maximum(norm_b, 1e-12)
    # 2 * atan2(|a - b|, |a + b|) is accurate at small angles, where acos(a . b) is not.
    omega = 2.0 * tf.atan2(tf.norm(unit_a - unit_b), tf.norm(unit_a + unit_b))
    sin_omega = tf.sin(omega)
    degenerate = tf.logical_or(sin_omega < 1e-4, tf.minimum(norm_a, norm_b) < 1e-12)

    def linear():
        return (1.0 - t) * z_a + t * z_b

    def spherical():
        return (tf.sin((1.0 - t) * omega) / sin_omega) * z_a + (tf.sin(t * omega) / sin_omega) * z_b

    path = tf.cond(degenerate, linear, spherical)
    # The formulas are exact at t = 0 and 1 only up to rounding of sin(omega)/sin(omega);
    # the end points are meant to be the given latents, so set them.
    return tf.concat([z_a[None], path[1:-1], z_b[None]], axis=0)
