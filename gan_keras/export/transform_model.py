"""Exports an image-to-image generator (gan_keras.training.image_to_image) in TF Serving's layout.

Signature ``serving_default``:
    ``image`` uint8 ``[N, h, w, c]``: the condition as a picture, i.e. the
    low-resolution image (super_resolution), the image with its hole
    (inpainting; any pixel values inside the hole), the edge map or grayscale
    image (translation); plus ``mask`` uint8 ``[N, H, W, 1]`` for inpainting
    (255 = hole, 0 = keep) -> ``images`` uint8 ``[N, H, W, C]`` and
    ``images_float`` float32 in [-1, 1].

A wrong size or channel count fails with InvalidArgumentError naming the
expected shape (the server answers 400 with it); ``model_info.json`` records
the task and both shapes so clients can check first. The layout and the
atomic version writer are gan_keras.export.layout's.
"""

import json

import keras
import tensorflow as tf

from gan_keras import tasks
from gan_keras.export.layout import MODEL_INFO_ASSET, write_version
from gan_keras.images import to_uint8_tensor
from gan_keras.tasks import conditions


def _check_shape(tensor, expected, name):
    shape = tf.shape(tensor)
    ok = tf.reduce_all(tf.equal(shape[1:], tf.constant(expected, tf.int32)))
    return tf.debugging.Assert(
        ok,
        [
            f"{name} must have shape [N, {', '.join(map(str, expected))}] (N, height, width, "
            "channels); got shape",
            shape,
        ],
    )


def input_shapes(task_config, image_shape) -> dict:
    """{'image': [h, w, c], and 'mask': [H, W, 1] for inpainting} the signature takes."""
    height, width, channels = image_shape
    condition = list(tasks.condition_shape(task_config, height, channels))
    if task_config.name == "inpainting":
        return {"image": [height, width, channels], "mask": [height, width, 1]}
    return {"image": condition}


def _build_archive(generator: keras.Model, task_config, image_shape):
    shapes = input_shapes(task_config, image_shape)
    archive = keras.export.ExportArchive()
    archive.track(generator)

    def translate(condition):
        images = tf.cast(generator(condition, training=False), tf.float32)
        return {"images": to_uint8_tensor(images), "images_float": images}

    def to_float(image):
        return tf.cast(image, tf.float32) / 127.5 - 1.0

    image_spec = tf.TensorSpec([None, None, None, None], tf.uint8, name="image")
    if task_config.name == "inpainting":
        mask_spec = tf.TensorSpec([None, None, None, None], tf.uint8, name="mask")

        def serving_default(image, mask):
            checks = [
                _check_shape(image, shapes["image"], "image"),
                _check_shape(mask, shapes["mask"], "mask"),
                tf.debugging.assert_equal(
                    tf.shape(image)[0],
                    tf.shape(mask)[0],
                    message="image and mask must have the same N",
                ),
            ]
            with tf.control_dependencies(checks):
                condition = conditions.inpainting_condition_from_uint8(image, mask)
            return translate(
                tf.ensure_shape(condition, [None, *image_shape[:2], image_shape[2] + 1])
            )

        archive.add_endpoint(
            "serving_default", serving_default, input_signature=[image_spec, mask_spec]
        )
    else:

        def serving_default(image):
            with tf.control_dependencies([_check_shape(image, shapes["image"], "image")]):
                condition = tf.ensure_shape(to_float(image), [None, *shapes["image"]])
            return translate(condition)

        archive.add_endpoint("serving_default", serving_default, input_signature=[image_spec])
    return archive, shapes


def export_image_to_image(
    generator: keras.Model,
    base_path,
    *,
    task_config,
    extra_assets: dict[str, bytes | str] | None = None,
    model_info: dict | None = None,
):
    """Writes `generator` as the next version under `base_path`; returns (version, path)."""
    image_shape = tuple(int(d) for d in generator.output_shape[1:])
    archive, shapes = _build_archive(generator, task_config, image_shape)
    info = {
        "task": task_config.to_dict(),
        "image_shape": list(image_shape),
        "inputs": shapes,
        "signatures": ["serving_default"],
        "conditional": False,
        "num_classes": 0,
        **(model_info or {}),
    }
    assets = {MODEL_INFO_ASSET: json.dumps(info, indent=2) + "\n", **(extra_assets or {})}
    return write_version(
        lambda path: archive.write_out(str(path), verbose=False), base_path, assets
    )
