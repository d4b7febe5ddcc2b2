"""The exported generator's `detect` signature: the evaluate stage's detector, in the archive.

    detect   ``images`` uint8 ``[N, H, W, C]`` with the generator's H, W, C -> ``probability``
             float32 ``[N]``: per image, the probability that this model made it
             (gan_keras.provenance.detector; sigmoid of the classifier's logit).

Other shapes fail with an ``InvalidArgumentError`` naming the expected one (a loaded signature
does not enforce its input shapes, and a convolution would otherwise run on any size and
answer a number that means nothing). Like every signature of the export it takes and returns
plain tensors, so the SavedModel still loads and detects with ``tf.saved_model.load`` in a
process that does not import this project.

Why in the sampling model's archive rather than a SavedModel of its own: it is this version's
detector (trained on this version's samples), and one model name and version in a URL or a
model server then answers both "make an image" and "did you make it"; the versions cannot
drift apart. `sampling_model.export_generator(..., detector=model)` calls `add_detect_endpoint`;
without a detector the export has no `detect` signature, as before.
"""

DETECT_SIGNATURE = "detect"
DETECT_INPUT = "images"
DETECT_OUTPUT = "probability"


def add_detect_endpoint(archive, detector, image_shape) -> None:
    """Adds `detect` to a keras.export.ExportArchive: uint8 images of `image_shape` (H, W, C)
    -> {"probability": float32 [N]} from `detector` (float32 images holding 0..255 -> logits
    [N, 1], as gan_keras.provenance.detector.build_detector makes it)."""
    import tensorflow as tf  # here: the names above are read where TensorFlow is not loaded

    height, width, channels = (int(d) for d in image_shape)
    detector_shape = tuple(int(d) for d in detector.input_shape[1:])
    if detector_shape != (height, width, channels):
        raise ValueError(
            f"the detector takes images of shape {detector_shape}, the generator makes "
            f"{(height, width, channels)}: it was trained for another model"
        )
    archive.track(detector)

    def detect(images):
        shape = tf.shape(images)
        padded = tf.pad(shape, [[0, 4]])[:4]
        ok = tf.logical_and(
            tf.equal(tf.size(shape), 4),
            tf.reduce_all(tf.equal(padded[1:], [height, width, channels])),
        )
        check = tf.debugging.Assert(
            ok,
            [
                f"images must have shape [N, {height}, {width}, {channels}] (N, height, width, "
                "channels), the images this model makes; got shape",
                shape,
            ],
            summarize=8,
        )
        with tf.control_dependencies([check]):
            # After the check the reshape changes nothing but the static shape the network sees.
            images = tf.reshape(tf.cast(images, tf.float32), [-1, height, width, channels])
        logits = tf.cast(detector(images, training=False), tf.float32)
        return {DETECT_OUTPUT: tf.sigmoid(logits[:, 0])}

    # Not [None, H, W, C]: loaded signatures ignore static sizes, and a partially known shape
    # could let graph optimisation fold the size check away (as `project`'s images).
    spec = tf.TensorSpec([None, None, None, None], tf.uint8, name=DETECT_INPUT)
    archive.add_endpoint(DETECT_SIGNATURE, detect, input_signature=[spec])
