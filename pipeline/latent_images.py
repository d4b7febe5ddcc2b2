"""uint8 images of a generator's latents, made as the export's signatures make them.

One concern: sampling a Keras generator (float output in [-1, 1]) into uint8 images for given
latents, optionally truncated (the export's truncated_sample), and moving between z and the
generator's `gan_keras.controls.latent_space.ControlSpace` (z, or w for a generator with a
mapping network).
The class-direction fit (pipeline.class_directions) and the controls' measurements
(pipeline.evaluate.control_metrics) both sample through here, so both see the same images.
"""

import numpy as np
import tensorflow as tf

from gan_keras import images as gan_images
from gan_keras.controls import latent_space


def generate(
    generator,
    z: np.ndarray,
    labels: np.ndarray | None = None,
    batch_size: int = 256,
    psi: float | None = None,
) -> np.ndarray:
    """uint8 images of `generator` (float output in [-1, 1]) for latents z (and labels);
    with `psi`, truncated as the export's truncated_sample does (latent_space.truncated_images:
    in w-space for a generator with a mapping network, else in z-space)."""
    out = []
    for start in range(0, len(z), batch_size):
        zb = np.asarray(z[start : start + batch_size], np.float32)
        lb = None if labels is None else np.asarray(labels[start : start + batch_size], np.int32)
        if psi is not None:
            # Tensors both: Keras refuses a nested input mixing tensors and arrays.
            images = latent_space.truncated_images(
                generator, zb, np.float32(psi), None if lb is None else tf.constant(lb)
            )
        else:
            images = generator(zb if lb is None else [zb, lb], training=False)
        out.append(gan_images.to_uint8(np.asarray(images)))
    return np.concatenate(out)


def space_latents(space, z: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The `ControlSpace` latents of unconditional prior draws z: z itself, or their w."""
    if space.name == "z":
        return z
    return np.concatenate(
        [
            np.asarray(space.from_z(z[start : start + batch_size]))
            for start in range(0, len(z), batch_size)
        ]
    )


def space_images(generator, space, latents: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """uint8 images of latents in `space` (z: as `generate`; w: the synthesis network's)."""
    if space.name == "z":
        return generate(generator, latents, batch_size=batch_size)
    return np.concatenate(
        [
            gan_images.to_uint8(np.asarray(space.images(latents[start : start + batch_size])))
            for start in range(0, len(latents), batch_size)
        ]
    )
