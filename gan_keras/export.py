"""Exports a generator as a TF SavedModel in TensorFlow Serving's layout.

Layout: ``<base_path>/<version>/`` with integer versions, one more than the
highest existing one per export. Each version is written to a dot-prefixed
sibling (TF Serving and our own server ignore non-integer names) and renamed
into place, so a model server polling ``base_path`` never sees a half-written
version.

Signatures (all take and return plain tensors; the SavedModel loads with
``tf.saved_model.load`` without this project installed):

``serving_default``
    ``z`` float32 ``[B, latent_dim]`` (and ``label`` int32 ``[B]`` for a
    conditional generator) -> ``images`` uint8 ``[B, H, W, C]`` and
    ``images_float`` float32 in ``[-1, 1]``.
``sample``
    ``num_samples`` int32 scalar, ``seed`` int64 scalar (and ``label`` int32
    ``[L]`` for a conditional generator) -> the same outputs. The latent codes
    are ``tf.random.stateless_normal([num_samples, latent_dim],
    seed=[seed, 0])``, so a seed always gives the same images. The ``label``
    input is required by conditional models and means: ``L == 0`` (an empty
    list) -> labels drawn uniformly with ``seed=[seed, 1]``; ``L == 1`` -> that
    label for every sample; ``L == num_samples`` -> one label per sample.

Out-of-range labels, mismatched batch sizes and negative ``num_samples`` fail
with ``InvalidArgumentError`` from in-graph assertions (which matters on GPU,
where an embedding lookup out of range silently returns zeros).

``assets.extra/model_info.json`` records latent_dim, num_classes and the image
shape so a server can validate requests without tracing the graph, plus what
the caller adds (the export stage: which training checkpoint, and its step).
"""

import json
import os
import pathlib
import re
import shutil
import tempfile

import keras
import tensorflow as tf

from gan_keras.export_layout import ASSETS_DIR, MODEL_INFO_ASSET, list_versions

_ASSET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def to_uint8(images: tf.Tensor) -> tf.Tensor:
    """In-graph twin of gan_keras.images.to_uint8: round((x + 1) * 127.5), clipped."""
    images = tf.cast(images, tf.float32)
    return tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


def _image_shape(generator: keras.Model) -> tuple[int, int, int]:
    shape = generator.output_shape
    if isinstance(shape, list):
        if len(shape) != 1:
            raise ValueError(f"Generator must have a single image output, has outputs {shape}")
        shape = shape[0]
    shape = tuple(shape)
    if len(shape) != 4 or any(d is None for d in shape[1:]):
        raise ValueError(
            f"Generator output must be NHWC with static H, W, C; got output_shape={shape}")
    return tuple(int(d) for d in shape[1:])


def _build_archive(generator: keras.Model, latent_dim: int, num_classes: int):
    conditional = num_classes > 0
    archive = keras.export.ExportArchive()
    archive.track(generator)

    def check_labels(label):
        return [
            tf.debugging.assert_greater_equal(
                label, tf.constant(0, tf.int32), message="label must be >= 0"),
            tf.debugging.assert_less(
                label, tf.constant(num_classes, tf.int32),
                message=f"label must be < num_classes={num_classes}"),
        ]

    def generate(z, label=None):
        if conditional:
            checks = check_labels(label) + [
                tf.debugging.assert_equal(
                    tf.shape(z)[0], tf.shape(label)[0],
                    message="z and label must have the same batch size"),
            ]
            with tf.control_dependencies(checks):
                images = generator([z, label], training=False)
        else:
            images = generator(z, training=False)
        images = tf.cast(images, tf.float32)  # mixed-precision generators emit float16
        return {"images": to_uint8(images), "images_float": images}

    def latents(num_samples, seed):
        check = tf.debugging.assert_non_negative(num_samples, message="num_samples must be >= 0")
        with tf.control_dependencies([check]):
            shape = tf.stack([num_samples, tf.constant(latent_dim, tf.int32)])
        return tf.random.stateless_normal(shape, seed=tf.stack([seed, tf.constant(0, tf.int64)]))

    z_spec = tf.TensorSpec([None, latent_dim], tf.float32, name="z")
    label_spec = tf.TensorSpec([None], tf.int32, name="label")
    num_spec = tf.TensorSpec([], tf.int32, name="num_samples")
    seed_spec = tf.TensorSpec([], tf.int64, name="seed")

    if conditional:
        def serving_default(z, label):
            return generate(z, label)

        def sample(num_samples, seed, label):
            z = latents(num_samples, seed)
            size = tf.size(label)
            check = tf.debugging.Assert(
                tf.logical_or(tf.logical_or(size == 0, size == 1), size == num_samples),
                ["label must be empty (random labels), hold one label, or one per sample; got",
                 size, "labels for num_samples =", num_samples])
            with tf.control_dependencies([check]):
                labels = tf.cond(
                    size > 0,
                    lambda: tf.broadcast_to(label, tf.reshape(num_samples, [1])),
                    lambda: tf.random.stateless_uniform(
                        tf.reshape(num_samples, [1]),
                        seed=tf.stack([seed, tf.constant(1, tf.int64)]),
                        minval=0, maxval=num_classes, dtype=tf.int32))
            return generate(z, labels)

        archive.add_endpoint("serving_default", serving_default, input_signature=[z_spec, label_spec])
        archive.add_endpoint("sample", sample, input_signature=[num_spec, seed_spec, label_spec])
    else:
        def serving_default(z):
            return generate(z)

        def sample(num_samples, seed):
            return generate(latents(num_samples, seed))

        archive.add_endpoint("serving_default", serving_default, input_signature=[z_spec])
        archive.add_endpoint("sample", sample, input_signature=[num_spec, seed_spec])
    return archive


def export_generator(
    generator: keras.Model,
    base_path,
    *,
    latent_dim: int,
    num_classes: int = 0,
    extra_assets: dict[str, bytes | str] | None = None,
    model_info: dict | None = None,
) -> tuple[int, pathlib.Path]:
    """Writes `generator` as the next version under `base_path`.

    Returns (version, path of the version directory). `extra_assets` maps file
    names to contents written to ``<version>/assets.extra/<name>``; `model_info`
    adds JSON fields to ``model_info.json`` (not replacing the ones it derives).
    """
    if not isinstance(latent_dim, int) or isinstance(latent_dim, bool) or latent_dim <= 0:
        raise ValueError(f"latent_dim must be a positive int, got {latent_dim!r}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
        raise ValueError(f"num_classes must be an int >= 0, got {num_classes!r}")
    extra_assets = dict(extra_assets or {})
    for name in extra_assets:
        if not _ASSET_NAME.match(name) or name == MODEL_INFO_ASSET:
            raise ValueError(
                f"extra_assets name {name!r} must be a plain file name (not {MODEL_INFO_ASSET!r})")
    height, width, channels = _image_shape(generator)
    info = {
        "latent_dim": latent_dim,
        "num_classes": num_classes,
        "conditional": num_classes > 0,
        "image_shape": [height, width, channels],
        "signatures": ["serving_default", "sample"],
    }
    clashes = sorted(set(model_info or {}) & set(info))
    if clashes:
        raise ValueError(f"model_info must not set {', '.join(clashes)}: the exporter derives them")
    info.update(model_info or {})

    base_path = pathlib.Path(base_path)
    base_path.mkdir(parents=True, exist_ok=True)
    archive = _build_archive(generator, latent_dim, num_classes)
    tmp = pathlib.Path(tempfile.mkdtemp(dir=base_path, prefix=".export-tmp-"))
    try:
        model_dir = tmp / "model"
        archive.write_out(str(model_dir), verbose=False)
        assets = model_dir / ASSETS_DIR
        assets.mkdir(exist_ok=True)
        (assets / MODEL_INFO_ASSET).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        for name, data in extra_assets.items():
            if isinstance(data, str):
                data = data.encode("utf-8")
            (assets / name).write_bytes(data)
        # Another exporter may take a number between our listing and our
        # rename: renaming onto its (non-empty) directory fails, so try the next.
        for _ in range(100):
            version = max(list_versions(base_path), default=0) + 1
            final = base_path / str(version)
            try:
                os.rename(model_dir, final)
            except OSError:
                if final.exists():
                    continue
                raise
            return version, final
        raise RuntimeError(f"Could not claim a version directory under {base_path}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
