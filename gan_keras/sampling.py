"""Images from an exported generator's ``sample`` signature.

Only TensorFlow and the SavedModel are needed: the training code is not
imported. The same seed (and version) always gives the same images.
"""

import logging
import pathlib

import numpy as np
import tensorflow as tf

from gan_keras import export_layout
from gan_keras import images as gan_images


def generate(model_base_path, *, num: int, seed: int = 0, label: int | None = None,
             version: int | None = None) -> np.ndarray:
    """Returns `num` uint8 images [num, H, W, C] from the sample signature."""
    if num < 1:
        raise ValueError(f"--num must be >= 1, got {num}")
    path = export_layout.version_dir(model_base_path, version)
    model = tf.saved_model.load(str(path))
    if "sample" not in model.signatures:
        raise ValueError(f"{path} has no 'sample' signature (has {sorted(model.signatures)})")
    sample = model.signatures["sample"]
    kwargs = {"num_samples": tf.constant(num, tf.int32), "seed": tf.constant(seed, tf.int64)}
    takes_label = "label" in sample.structured_input_signature[1]
    if takes_label:
        kwargs["label"] = tf.constant([] if label is None else [label], tf.int32)
    elif label is not None:
        raise ValueError(f"--label={label} given but the model at {path} is unconditional")
    logging.info("Sampling %d images from %s (seed %d)", num, path, seed)
    try:
        return sample(**kwargs)["images"].numpy()
    except tf.errors.InvalidArgumentError as e:
        # In-graph checks (e.g. a label out of range) report "assertion failed: [...]".
        lines = [x for x in e.message.splitlines() if x.startswith("assertion failed")]
        raise ValueError(f"{path} rejected the request: {(lines or [e.message])[0]}") from None


def write_images(images: np.ndarray, out=None, out_dir=None) -> None:
    if out is not None:
        gan_images.save_png(out, gan_images.make_grid(images))
    if out_dir is not None:
        out_dir = pathlib.Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            gan_images.save_png(out_dir / f"sample_{i:05d}.png", image)


def generate_to_files(model_base_path, *, num: int, seed: int = 0, label: int | None = None,
                      version: int | None = None, out=None, out_dir=None) -> np.ndarray:
    """`generate`, then `write_images`; returns the images."""
    images = generate(model_base_path, num=num, seed=seed, label=label, version=version)
    write_images(images, out=out, out_dir=out_dir)
    for target in (out, out_dir):
        if target:
            logging.info("Wrote %s", target)
    return images
