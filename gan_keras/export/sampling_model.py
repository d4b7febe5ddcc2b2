"""Exports a generator as a TF SavedModel in TensorFlow Serving's layout.

One concern, kept whole (over 500 lines): the sampling model's signatures (sample,
interpolate, edit, project, style mix) and their shared input checks, traced into one archive;
the detector's ``detect`` signature is built in gan_keras.export.detect_signature, only
added here.

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

``serving_default_png``, ``sample_png``
    ``serving_default``'s and ``sample``'s inputs -> ``images_png_bytes``
    string ``[B]``: each image PNG-encoded. TF Serving's REST API answers
    outputs named ``*_bytes`` as ``{"b64": ...}``, so REST clients get PNGs.

Every version's ``assets.extra/tf_serving_warmup_requests`` holds warm-up
requests for these four (gan_keras.export.warmup), which
tensorflow_model_server and gan_keras.serve replay before serving it.

``detect`` (exported with the evaluate stage's detector only)
    ``images`` uint8 ``[N, H, W, C]`` -> ``probability`` float32 ``[N]`` that this model made
    each image (gan_keras.export.detect_signature).

Controls (gan_keras.controls has the math); conditional models take the
labels named below, with the same range checks:

``truncated_sample``
    ``num_samples``, ``seed`` (and ``label``) as ``sample``, plus
    ``truncation`` float32 scalar psi in [0, 1] -> ``images``,
    ``images_float``, ``z`` (the truncated latents; and ``label``, the labels
    used). The latents are ``psi * z`` for ``sample``'s z (the prior's mean
    latent is 0): psi = 1 gives exactly ``sample``'s images, psi = 0 one image
    per class.
``interpolate``
    ``seed_a``, ``seed_b`` int64 scalars, ``steps`` int32 scalar >= 2 (and
    ``label_a``, ``label_b`` int32 scalars) -> ``steps`` images (and ``z``,
    ``label``) along the great circle (slerp) from ``sample``'s latent of
    ``seed_a`` to that of ``seed_b``; the first and last images are exactly
    ``sample(num_samples=1, seed=seed_a)`` with ``label=[label_a]`` and the
    same for b. The class changes by linear interpolation of the label
    embedding when the label reaches the network only through one Embedding
    layer (networks.build_generator's "embedding" conditioning); otherwise
    (conditional BatchNorm) from ``label_a`` to ``label_b`` half way.
    ``model_info.json``'s "label_interpolation" says which ("embedding" or
    "switch").
``project``
    ``images`` uint8 ``[N, H, W, C]`` with this generator's H, W, C (other
    shapes fail with an error naming the expected one), ``steps`` int32
    scalar >= 0 (and ``label`` int32 ``[N]``) -> ``z`` float32
    ``[N, latent_dim]`` whose images best match (Adam on pixel MSE from
    several starts, deterministic), ``reconstructions`` uint8 and ``psnr``
    float32 ``[N]`` in dB (+inf for an exact match).
``edit``
    ``z`` float32 ``[N, latent_dim]``, ``direction`` int32 scalar,
    ``strength`` float32 scalar (and ``label`` int32 ``[N]``) -> ``images``,
    ``images_float`` and ``z`` for ``z + strength * directions[direction]``.
    The directions (one standard deviation long, see gan_keras.controls) are
    constants in the graph; their names are in
    ``assets.extra/directions.json``: a list of {"index", "name", "kind"}
    with kind "sefa" (closed-form, label-free; always the first ones) or
    "class" (given to `export_generator`).

A generator with a mapping network (StyleGAN2) is controlled in w-space
(gan_keras.controls.latent_space.ControlSpace; ``model_info.json``'s "control_space"
says which): ``truncated_sample`` also returns ``w`` [N, w_dim], the truncated w
its images come from; ``project`` fits and returns ``w`` (from w_avg);
``edit`` takes and returns ``w`` and no label (w carries the class); SeFa's
directions come from the synthesis layers' style weights. It also has
``style_mix`` (gan_keras.controls.style_mixing.add_style_mix_endpoint).

Out-of-range labels, directions or truncation, too few interpolation steps,
mismatched batch sizes and negative ``num_samples`` fail with
``InvalidArgumentError`` from in-graph assertions (which matters on GPU, where
an embedding lookup out of range silently returns zeros).

``assets.extra/model_info.json`` records latent_dim, num_classes, the image
shape and the signatures so a server can validate requests without tracing
the graph, plus what the caller adds (the export stage: which training
checkpoint, and its step).
"""

import json
import pathlib
import re

import keras
import numpy as np
import tensorflow as tf

from gan_keras.controls import edits, interpolation, latent_space, projection, style_mixing
from gan_keras.export import detect_signature, warmup
from gan_keras.export.layout import (
    DIRECTIONS_ASSET,
    MODEL_INFO_ASSET,
    WARMUP_ASSET,
    write_version,
)
from gan_keras.images import to_float_tensor, to_uint8_tensor

_ASSET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
# Written by the exporter, so not accepted as extra assets.
RESERVED_ASSETS = (MODEL_INFO_ASSET, DIRECTIONS_ASSET, WARMUP_ASSET)
CONTROL_SIGNATURES = ("truncated_sample", "interpolate", "project", "edit")
# serving_default's and sample's images as PNGs, in one output named per TF Serving's
# `_bytes` convention (its REST API answers such outputs as {"b64": ...}).
PNG_SIGNATURES = ("serving_default_png", "sample_png")
PNG_OUTPUT = "images_png_bytes"


def _image_shape(generator: keras.Model) -> tuple[int, int, int]:
    shape = generator.output_shape
    if isinstance(shape, list):
        if len(shape) != 1:
            raise ValueError(f"Generator must have a single image output, has outputs {shape}")
        shape = shape[0]
    shape = tuple(shape)
    if len(shape) != 4 or any(d is None for d in shape[1:]):
        raise ValueError(
            f"Generator output must be NHWC with static H, W, C; got output_shape={shape}"
        )
    return tuple(int(d) for d in shape[1:])


def _embedding_generator(generator: keras.Model):
    """(label Embedding layer, model (z, embedding) -> images) if the label is used only there.

    Then the class can be interpolated through the embedding. None otherwise,
    e.g. for conditional BatchNorm, which looks the label up in every layer.
    """
    if len(generator.inputs) != 2:
        return None
    z_input, label_input = generator.inputs
    embeddings = []
    for layer in generator.layers:
        if isinstance(layer, keras.layers.Embedding):
            try:
                if layer.input is label_input:
                    embeddings.append(layer)
            except (AttributeError, ValueError):  # called more than once: no single input
                return None
    if len(embeddings) != 1:
        return None
    try:
        # Fails ("not connected") if the images need the label by another path.
        from_embedding = keras.Model([z_input, embeddings[0].output], generator.outputs)
    except ValueError:
        return None
    return embeddings[0], from_embedding


def _build_archive(
    generator: keras.Model, latent_dim: int, num_classes: int, directions: np.ndarray
):
    conditional = num_classes > 0
    height, width, channels = _image_shape(generator)
    archive = keras.export.ExportArchive()
    archive.track(generator)

    def check_labels(label):
        return [
            tf.debugging.assert_greater_equal(
                label, tf.constant(0, tf.int32), message="label must be >= 0"
            ),
            tf.debugging.assert_less(
                label,
                tf.constant(num_classes, tf.int32),
                message=f"label must be < num_classes={num_classes}",
            ),
        ]

    def check_batch(z, label):
        return tf.debugging.assert_equal(
            tf.shape(z)[0], tf.shape(label)[0], message="z and label must have the same batch size"
        )

    def outputs(images):
        images = tf.cast(images, tf.float32)  # mixed-precision generators emit float16
        return {"images": to_uint8_tensor(images), "images_float": images}

    def generate(z, label=None):
        if conditional:
            checks = check_labels(label) + [check_batch(z, label)]
            with tf.control_dependencies(checks):
                images = generator([z, label], training=False)
        else:
            images = generator(z, training=False)
        return outputs(images)

    def latents(num_samples, seed):
        check = tf.debugging.assert_non_negative(num_samples, message="num_samples must be >= 0")
        with tf.control_dependencies([check]):
            shape = tf.stack([num_samples, tf.constant(latent_dim, tf.int32)])
        return tf.random.stateless_normal(shape, seed=tf.stack([seed, tf.constant(0, tf.int64)]))

    def sample_labels(num_samples, seed, label):
        size = tf.size(label)
        check = tf.debugging.Assert(
            tf.logical_or(tf.logical_or(size == 0, size == 1), size == num_samples),
            [
                "label must be empty (random labels), hold one label, or one per sample; got",
                size,
                "labels for num_samples =",
                num_samples,
            ],
        )
        with tf.control_dependencies([check]):
            return tf.cond(
                size > 0,
                lambda: tf.broadcast_to(label, tf.reshape(num_samples, [1])),
                lambda: tf.random.stateless_uniform(
                    tf.reshape(num_samples, [1]),
                    seed=tf.stack([seed, tf.constant(1, tf.int64)]),
                    minval=0,
                    maxval=num_classes,
                    dtype=tf.int32,
                ),
            )

    # Projection and edits act in this space: z, or w for a generator with a mapping network.
    space = latent_space.ControlSpace(generator, latent_dim)

    def space_images(latents, label=None):
        return space.images(latents, label if space.labelled_images else None)

    def check_image_shape(images):
        # A loaded signature does not enforce its input shapes, and a wrong size
        # would otherwise fail deep inside the optimisation loop.
        shape = tf.shape(images)
        padded = tf.pad(shape, [[0, 4]])[:4]
        ok = tf.logical_and(
            tf.equal(tf.size(shape), 4),
            tf.reduce_all(tf.equal(padded[1:], [height, width, channels])),
        )
        return tf.debugging.Assert(
            ok,
            [
                f"images must have shape [N, {height}, {width}, {channels}] (N, height, width, "
                "channels); got shape",
                shape,
            ],
            summarize=8,
        )

    def project_images(images, steps, label=None):
        checks = [check_image_shape(images)]
        if label is not None:
            checks += check_labels(label) + [check_batch(images, label)]
        with tf.control_dependencies(checks):
            # Through identities, so nothing downstream (a label lookup) runs unchecked.
            images = tf.identity(images)
            label = None if label is None else tf.identity(label)
        fitted = projection.project(
            space_images,
            to_float_tensor(images),
            steps,
            latent_dim=latent_dim,
            label=label,
            start_fn=space.projection_starts,
        )
        return {
            space.name: fitted["z"],
            "reconstructions": to_uint8_tensor(fitted["images_float"]),
            "psnr": fitted["psnr"],
        }

    def edit_outputs(latents, direction, strength, label=None):
        edited = edits.edit(latents, tf.constant(directions), direction, strength)
        if space.name == "z":
            return {**generate(edited, label), "z": edited}
        return {**outputs(space_images(edited)), space.name: edited}

    def truncated_outputs(num_samples, seed, truncation, labels=None):
        """sample's latents truncated by psi; z-space outputs the truncated z, w-space the
        prior's z and the truncated w (the `edit` signature's input)."""
        z = latents(num_samples, seed)
        if space.name == "z":
            z = latent_space.truncate(z, truncation)
            return {**generate(z, labels), "z": z}
        checks = [] if labels is None else check_labels(labels)
        with tf.control_dependencies(checks):
            w = space.truncate(space.from_z(z, labels), truncation)
        return {**outputs(space.images(w)), "z": z, "w": w}

    def endpoint_latents(seed_a, seed_b, steps):
        z_a = latents(tf.constant(1, tf.int32), seed_a)[0]
        z_b = latents(tf.constant(1, tf.int32), seed_b)[0]
        return interpolation.slerp(z_a, z_b, steps)

    z_spec = tf.TensorSpec([None, latent_dim], tf.float32, name="z")
    edit_latent_spec = tf.TensorSpec([None, space.dim], tf.float32, name=space.name)
    label_spec = tf.TensorSpec([None], tf.int32, name="label")
    num_spec = tf.TensorSpec([], tf.int32, name="num_samples")
    seed_spec = tf.TensorSpec([], tf.int64, name="seed")
    truncation_spec = tf.TensorSpec([], tf.float32, name="truncation")
    seed_a_spec = tf.TensorSpec([], tf.int64, name="seed_a")
    seed_b_spec = tf.TensorSpec([], tf.int64, name="seed_b")
    steps_spec = tf.TensorSpec([], tf.int32, name="steps")
    # Not [None, H, W, C]: loaded signatures ignore static sizes, and a
    # partially known shape could let graph optimisation fold the size check away.
    images_spec = tf.TensorSpec([None, None, None, None], tf.uint8, name="images")
    direction_spec = tf.TensorSpec([], tf.int32, name="direction")
    strength_spec = tf.TensorSpec([], tf.float32, name="strength")

    if conditional:
        by_embedding = _embedding_generator(generator)

        def serving_default(z, label):
            return generate(z, label)

        def sample(num_samples, seed, label):
            z = latents(num_samples, seed)
            return generate(z, sample_labels(num_samples, seed, label))

        def truncated_sample(num_samples, seed, truncation, label):
            labels = sample_labels(num_samples, seed, label)
            return {**truncated_outputs(num_samples, seed, truncation, labels), "label": labels}

        def interpolate(seed_a, seed_b, steps, label_a, label_b):
            z = endpoint_latents(seed_a, seed_b, steps)
            ends = tf.stack([label_a, label_b])
            t = interpolation.interpolation_weights(steps)
            # Half way, the label that generates the image switches from a to b.
            labels = tf.where(t < 0.5, label_a, label_b)
            if by_embedding is None:
                return {**generate(z, labels), "z": z, "label": labels}
            embedding, from_embedding = by_embedding
            with tf.control_dependencies(check_labels(ends)):
                vectors = tf.cast(embedding(ends), tf.float32)
            mixed = (1.0 - t[:, None]) * vectors[0] + t[:, None] * vectors[1]
            images = from_embedding([z, tf.cast(mixed, embedding.compute_dtype)], training=False)
            # "label" is then the nearer class, as the switch would have chosen.
            return {**outputs(images), "z": z, "label": labels}

        def project(images, steps, label):
            return project_images(images, steps, label)

        archive.add_endpoint(
            "serving_default", serving_default, input_signature=[z_spec, label_spec]
        )
        archive.add_endpoint("sample", sample, input_signature=[num_spec, seed_spec, label_spec])
        archive.add_endpoint(
            "truncated_sample",
            truncated_sample,
            input_signature=[num_spec, seed_spec, truncation_spec, label_spec],
        )
        archive.add_endpoint(
            "interpolate",
            interpolate,
            input_signature=[
                seed_a_spec,
                seed_b_spec,
                steps_spec,
                tf.TensorSpec([], tf.int32, name="label_a"),
                tf.TensorSpec([], tf.int32, name="label_b"),
            ],
        )
        archive.add_endpoint(
            "project", project, input_signature=[images_spec, steps_spec, label_spec]
        )
    else:

        def serving_default(z):
            return generate(z)

        def sample(num_samples, seed):
            return generate(latents(num_samples, seed))

        def truncated_sample(num_samples, seed, truncation):
            return truncated_outputs(num_samples, seed, truncation)

        def interpolate(seed_a, seed_b, steps):
            z = endpoint_latents(seed_a, seed_b, steps)
            return {**generate(z), "z": z}

        def project(images, steps):
            return project_images(images, steps)

        archive.add_endpoint("serving_default", serving_default, input_signature=[z_spec])
        archive.add_endpoint("sample", sample, input_signature=[num_spec, seed_spec])
        archive.add_endpoint(
            "truncated_sample",
            truncated_sample,
            input_signature=[num_spec, seed_spec, truncation_spec],
        )
        archive.add_endpoint(
            "interpolate", interpolate, input_signature=[seed_a_spec, seed_b_spec, steps_spec]
        )
        archive.add_endpoint("project", project, input_signature=[images_spec, steps_spec])

    # A conditional generator's w already carries its class: only z-space edits take labels.
    if conditional and space.name == "z":

        def edit(z, direction, strength, label):
            return edit_outputs(z, direction, strength, label)

        edit_specs = [edit_latent_spec, direction_spec, strength_spec, label_spec]
    else:

        def edit(latents, direction, strength):
            return edit_outputs(latents, direction, strength)

        edit_specs = [edit_latent_spec, direction_spec, strength_spec]
    archive.add_endpoint("edit", edit, input_signature=edit_specs)

    # Separate signatures rather than a third output of serving_default/sample: TF Serving's
    # REST API has no output filter, so every existing client would receive (and the server
    # encode) the PNGs too.
    def png_outputs(images):
        return {PNG_OUTPUT: tf.map_fn(tf.io.encode_png, images, fn_output_signature=tf.string)}

    if conditional:

        def serving_default_png(z, label):
            return png_outputs(serving_default(z, label)["images"])

        def sample_png(num_samples, seed, label):
            return png_outputs(sample(num_samples, seed, label)["images"])

        png_specs = ([z_spec, label_spec], [num_spec, seed_spec, label_spec])
    else:

        def serving_default_png(z):
            return png_outputs(serving_default(z)["images"])

        def sample_png(num_samples, seed):
            return png_outputs(sample(num_samples, seed)["images"])

        png_specs = ([z_spec], [num_spec, seed_spec])
    png_fns = (serving_default_png, sample_png)
    for name, fn, spec in zip(PNG_SIGNATURES, png_fns, png_specs, strict=True):
        archive.add_endpoint(name, fn, input_signature=spec)
    # StyleGAN2 only:
    style_mixing.add_style_mix_endpoint(archive, generator, latent_dim, num_classes)
    label_interpolation = None
    if conditional:
        label_interpolation = "switch" if by_embedding is None else "embedding"
    return archive, label_interpolation


def export_generator(
    generator: keras.Model,
    base_path,
    *,
    latent_dim: int,
    num_classes: int = 0,
    extra_assets: dict[str, bytes | str] | None = None,
    model_info: dict | None = None,
    directions: dict[str, np.ndarray] | None = None,
    detector: keras.Model | None = None,
) -> tuple[int, pathlib.Path]:
    """Writes `generator` as the next version under `base_path`.

    Returns (version, path of the version directory). `extra_assets` maps file
    names to contents written to ``<version>/assets.extra/<name>``; `model_info`
    adds JSON fields to ``model_info.json`` (not replacing the ones it derives).
    `directions` maps names to latent vectors [latent_dim] (e.g. "towards class
    X") offered by the ``edit`` signature after the SeFa directions, which are
    always computed (min(8, latent_dim) of them). `detector` (the evaluate stage's classifier,
    gan_keras.provenance.detector) adds the ``detect`` signature (export.detect_signature).
    """
    if not isinstance(latent_dim, int) or isinstance(latent_dim, bool) or latent_dim <= 0:
        raise ValueError(f"latent_dim must be a positive int, got {latent_dim!r}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
        raise ValueError(f"num_classes must be an int >= 0, got {num_classes!r}")
    extra_assets = dict(extra_assets or {})
    for name in extra_assets:
        if not _ASSET_NAME.match(name) or name in RESERVED_ASSETS:
            raise ValueError(
                f"extra_assets name {name!r} must be a plain file name (not one of "
                f"{', '.join(RESERVED_ASSETS)})"
            )
    height, width, channels = _image_shape(generator)
    info = {
        "latent_dim": latent_dim,
        "num_classes": num_classes,
        "conditional": num_classes > 0,
        "image_shape": [height, width, channels],
        "signatures": ["serving_default", "sample", *CONTROL_SIGNATURES, *PNG_SIGNATURES],
        "label_interpolation": None,
    }
    if detector is not None:
        info["signatures"].append(detect_signature.DETECT_SIGNATURE)
    space = latent_space.ControlSpace(generator, latent_dim)
    # Which latents project returns and edit takes ("z" [latent_dim] or "w" [w_dim]).
    info["control_space"] = {"name": space.name, "dim": space.dim}
    clashes = sorted(set(model_info or {}) & set(info))
    if clashes:
        raise ValueError(f"model_info must not set {', '.join(clashes)}: the exporter derives them")
    info.update(style_mixing.style_model_info(generator, info["signatures"]))  # StyleGAN2 only
    info.update(model_info or {})

    # Before anything is written: bad extra directions fail here.
    direction_vectors, direction_entries = edits.build_directions(
        generator, latent_dim, extra=directions
    )
    base_path = pathlib.Path(base_path)
    base_path.mkdir(parents=True, exist_ok=True)
    archive, info["label_interpolation"] = _build_archive(
        generator, latent_dim, num_classes, direction_vectors
    )
    if detector is not None:
        detect_signature.add_detect_endpoint(archive, detector, (height, width, channels))
    assets = {
        MODEL_INFO_ASSET: json.dumps(info, indent=2) + "\n",
        DIRECTIONS_ASSET: json.dumps(direction_entries, indent=2) + "\n",
        # Replayed by tensorflow_model_server and our server before the version is served.
        WARMUP_ASSET: warmup.warmup_file_bytes(
            warmup.generator_warmup_requests(latent_dim, num_classes, info["signatures"])
        ),
        **extra_assets,
    }
    return write_version(
        lambda path: archive.write_out(str(path), verbose=False), base_path, assets
    )
