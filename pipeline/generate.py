r"""Writes images from an exported generator, using its ``sample`` signature.

    python -m pipeline.generate --model_base_path=<workdir>/export/generator \
        --num=64 --seed=0 --out=grid.png [--label=3] [--out_dir=DIR] [--version=N]

The same seed (and version) always gives the same images. ``--out_dir`` also
writes one PNG per image (``sample_00000.png``, ...). Only TensorFlow and the
SavedModel are needed: the training code is not imported.
"""

import functools
import logging
import pathlib

import numpy as np
import tensorflow as tf
from absl import app, flags

from gan_keras import export as gan_export
from gan_keras import images as gan_images


def resolve_version(model_base_path, version: int | None = None) -> pathlib.Path:
    """The directory of `version`, or of the highest version under the base path."""
    base = pathlib.Path(model_base_path)
    versions = gan_export.list_versions(base)
    if not versions:
        raise FileNotFoundError(f"No integer version directories under {base}")
    if version is None:
        return base / str(versions[-1])
    if version not in versions:
        raise FileNotFoundError(f"Version {version} not found under {base} (have {versions})")
    return base / str(version)


def generate(model_base_path, *, num: int, seed: int = 0, label: int | None = None,
             version: int | None = None) -> np.ndarray:
    """Returns `num` uint8 images [num, H, W, C] from the sample signature."""
    if num < 1:
        raise ValueError(f"--num must be >= 1, got {num}")
    path = resolve_version(model_base_path, version)
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


FLAGS = flags.FLAGS


@functools.cache
def define_flags() -> None:
    """Defines this entry point's flags once, on demand (see gan_keras.serve.define_flags)."""
    flags.DEFINE_string("model_base_path", None, "Directory with integer SavedModel versions.")
    flags.DEFINE_integer("version", None, "Version to use (default: the highest).")
    flags.DEFINE_integer("num", 64, "Number of images.")
    flags.DEFINE_integer("seed", 0, "Sampling seed; the same seed gives the same images.")
    flags.DEFINE_integer("label", None,
                         "Class for conditional models (default: random labels).")
    flags.DEFINE_string("out", "grid.png", "Grid PNG to write ('' for none).")
    flags.DEFINE_string("out_dir", None, "Also write one PNG per image into this directory.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS.model_base_path:
        raise app.UsageError("--model_base_path is required")
    if not FLAGS.out and not FLAGS.out_dir:
        raise app.UsageError("Nothing to write: give --out and/or --out_dir")
    images = generate(FLAGS.model_base_path, num=FLAGS.num, seed=FLAGS.seed, label=FLAGS.label,
                      version=FLAGS.version)
    write_images(images, out=FLAGS.out or None, out_dir=FLAGS.out_dir)
    for target in (FLAGS.out, FLAGS.out_dir):
        if target:
            logging.info("Wrote %s", target)


def console_main():
    define_flags()
    app.run(main)


if __name__ == "__main__":
    console_main()
