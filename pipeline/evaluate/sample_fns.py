"""sample_fn for the evaluate stage: what it scores, as a function from seed to uint8 images.

One concern: turning a generator into a `SampleFn` (num, seed, labels or None) -> uint8
[num, H, W, C], with the judge's latents for that seed (pipeline.judge.sample_latents) -- a
Keras generator (`keras_sample_fn`) or an exported SavedModel's serving_default
(`saved_model_sample_fn`) -- and `weights_fingerprint`, the hash that names the weights scored.
"""

import hashlib
from collections.abc import Callable

import numpy as np

from gan_keras import images as gan_images
from gan_keras import progress
from pipeline import judge

# sample_fn(num, seed, labels or None) -> uint8 [num, H, W, C]
SampleFn = Callable[[int, int, "np.ndarray | None"], np.ndarray]


def keras_sample_fn(
    generator, latent_dim: int, conditional: bool, batch_size: int = 256
) -> SampleFn:
    """sample_fn for a Keras generator returning float images in [-1, 1]."""

    def sample_fn(num, seed, labels=None):
        if conditional and labels is None:
            raise ValueError("a conditional generator needs labels")
        z = judge.sample_latents(num, latent_dim, seed)
        out = []
        log = progress.ProgressLog("evaluate: sampling", num)
        for start in range(0, num, batch_size):
            zb = z[start : start + batch_size]
            inputs = (
                [zb, np.asarray(labels[start : start + batch_size], np.int32)]
                if conditional
                else zb
            )
            out.append(gan_images.to_uint8(np.asarray(generator(inputs, training=False))))
            log.add(len(zb))
        return np.concatenate(out)

    return sample_fn


def saved_model_sample_fn(model_dir, batch_size: int = 256) -> tuple[SampleFn, dict]:
    """sample_fn for an exported SavedModel's `serving_default` signature, and its description."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(model_dir))
    if "serving_default" not in loaded.signatures:
        raise ValueError(
            f"{model_dir} has no serving_default signature (has {list(loaded.signatures)})"
        )
    signature = loaded.signatures["serving_default"]
    _, input_specs = signature.structured_input_signature
    if "z" not in input_specs:
        raise ValueError(
            f"{model_dir}: serving_default has no 'z' input (inputs: {sorted(input_specs)})"
        )
    latent_dim = input_specs["z"].shape[-1]
    if latent_dim is None:
        raise ValueError(f"{model_dir}: serving_default's z input has an unknown latent size")
    conditional = "label" in input_specs

    def sample_fn(num, seed, labels=None):
        if conditional and labels is None:
            raise ValueError("this exported generator is conditional and needs labels")
        z = judge.sample_latents(num, int(latent_dim), seed)
        out = []
        log = progress.ProgressLog("evaluate: sampling", num)
        for start in range(0, num, batch_size):
            kwargs = {"z": tf.constant(z[start : start + batch_size])}
            if conditional:
                kwargs["label"] = tf.constant(
                    labels[start : start + batch_size], input_specs["label"].dtype
                )
            result = signature(**kwargs)
            if "images" in result:
                out.append(result["images"].numpy().astype(np.uint8))
            elif "images_float" in result:
                out.append(gan_images.to_uint8(result["images_float"].numpy()))
            else:
                raise ValueError(
                    f"{model_dir}: serving_default returns {sorted(result)}, not 'images'"
                )
            log.add(len(out[-1]))
        return np.concatenate(out)

    # Keep the loaded object alive as long as the function.
    sample_fn.loaded = loaded
    return sample_fn, {
        "latent_dim": int(latent_dim),
        "conditional": conditional,
        "path": str(model_dir),
    }


def weights_fingerprint(model) -> str:
    digest = hashlib.sha256()
    for w in model.weights:
        digest.update(np.asarray(w).tobytes())
    return digest.hexdigest()
