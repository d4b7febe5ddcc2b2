"""The latent space a generator's controls act in (z, or w with a mapping network), and
truncation in it: `truncate`, `checked_truncation`, `ControlSpace`, `truncated_images`.

In-graph (TensorFlow ops only): they run in the exported SavedModel's signatures.
"""

import keras
import tensorflow as tf

from gan_keras.models import stylegan2

# The DCGAN's prior is N(0, I): its mean latent, the truncation centre, is 0.
GAUSSIAN_MEAN_LATENT = 0.0


def truncate(z: tf.Tensor, psi, mean_latent=GAUSSIAN_MEAN_LATENT) -> tf.Tensor:
    """The truncation trick: mean + psi * (z - mean), psi in [0, 1].

    psi = 1 returns z unchanged (bit for bit with mean 0); psi = 0 returns the
    mean latent for every sample.
    """
    z = tf.convert_to_tensor(z, tf.float32)
    psi = checked_truncation(psi)
    mean_latent = tf.cast(mean_latent, tf.float32)
    return mean_latent + psi * (z - mean_latent)


def checked_truncation(psi) -> tf.Tensor:
    """psi as float32, once an in-graph check has found it in [0, 1]."""
    psi = tf.convert_to_tensor(psi, tf.float32)
    checks = [
        tf.debugging.assert_greater_equal(psi, 0.0, message="truncation must be in [0, 1]"),
        tf.debugging.assert_less_equal(psi, 1.0, message="truncation must be in [0, 1]"),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(psi)


class ControlSpace:
    """The latent space a generator's controls act in: truncation, projection and edits.

    ``name`` "z" (the DCGAN: the prior's latents, mean 0) or "w" (a generator with a
    mapping network: one w for every synthesis layer, mean the tracked `w_avg`); ``dim``
    its size. Conditional generators take their label in `from_z` (w carries the class)
    and, in z-space, again in `images`.
    """

    def __init__(self, generator: keras.Model, latent_dim: int):
        self.generator = generator
        self.style = stylegan2.StyleParts.of(generator)
        self.name = "z" if self.style is None else "w"
        self.dim = int(latent_dim) if self.style is None else self.style.mapping.w_dim

    @property
    def labelled_images(self) -> bool:
        """Whether `images` needs the label (z-space of a conditional generator)."""
        return self.style is None and len(self.generator.inputs) > 1

    def from_z(self, z, label=None) -> tf.Tensor:
        """The latents of prior draws `z` in this space: z itself, or w = mapping(z, label)."""
        z = tf.convert_to_tensor(z, tf.float32)
        if self.style is None:
            return z
        return tf.cast(self.style.map(z, label), tf.float32)

    def truncate(self, latents, psi) -> tf.Tensor:
        """mean + psi * (latents - mean), psi in [0, 1] (checked): towards 0 in z, w_avg in w."""
        if self.style is None:
            return truncate(latents, psi)
        return self.style.truncate(
            tf.convert_to_tensor(latents, tf.float32), checked_truncation(psi)
        )

    def projection_starts(self, draws, label=None) -> tf.Tensor:
        """`project`'s starting latents for prior draws [B, latent_dim]: an all-zero draw
        starts at the space's mean (0, or w_avg as in StyleGAN2's projector), others at
        their latents in this space."""
        draws = tf.convert_to_tensor(draws, tf.float32)
        if self.style is None:
            return draws
        at_mean = tf.reduce_all(tf.equal(draws, 0.0), axis=1, keepdims=True)
        w_avg = tf.cast(self.style.mapping.w_avg, tf.float32)[None]
        return tf.where(at_mean, w_avg, self.from_z(draws, label))

    def images(self, latents, label=None) -> tf.Tensor:
        """Float32 images in [-1, 1] of latents in this space, inference mode."""
        if self.style is None:
            inputs = latents if label is None else [latents, label]
            return tf.cast(self.generator(inputs, training=False), tf.float32)
        return self.style.synthesize(self.style.broadcast(latents))


def truncated_images(generator: keras.Model, z, psi, label=None) -> tf.Tensor:
    """Float images of latents `z` (and labels) truncated by psi in [0, 1], inference mode.

    With a mapping network (StyleGAN2) the truncation is in w-space, towards the tracked
    `w_avg` (StyleGAN's truncation trick: w-space is where the average is meaningful);
    otherwise in z-space towards the prior's mean, i.e. G(truncate(z, psi)).
    """
    space = ControlSpace(generator, int(tf.convert_to_tensor(z).shape[-1]))
    return space.images(space.truncate(space.from_z(z, label), psi), label)
