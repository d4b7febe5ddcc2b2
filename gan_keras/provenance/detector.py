"""A detector for one model's output that needs no metadata: a small CNN, real vs generated.

Why: content credentials and the unsigned metadata (gan_keras.provenance.stamp) go with the
file; re-encoding or a screenshot strips them. What is left is the pixels, and a generator
leaves traces in them (its upsampling's periodic patterns, its colour and texture statistics)
that a classifier trained on its samples can learn. The evaluate stage trains one per model
(pipeline.evaluate.detector_eval), the export ships it as a `detect` signature
(gan_keras.export.detect_signature), and `:verify` / `gan-verify --model` ask it when an image
carries no credentials (gan_keras.provenance.detection).

What it measures is also a quality figure: the better a generator imitates the data, the
harder its samples are to tell from real images, and the lower the detector's AUC. So a high
AUC means a detector that works on this model's output, not a good model.

The functions here are pure (arrays in, arrays or numbers out; the model is an argument):

    build_detector(image_shape, seed)     the Keras classifier: uint8 values as float32
                                          [N, H, W, C] -> one logit per image (> 0: generated)
    train_detector(real, generated, ...)  trains it on real (label 0) vs generated (1) images,
                                          both seen clean and perturbed (`augment`)
    probabilities(model, images)          sigmoid(logit): the probability the model made it
    roc_auc(real_scores, fake_scores)     area under the ROC curve (scikit-learn's)
    jpeg(images, quality), resize(images, factor)
                                          what a re-shared image suffers (Pillow)
    held_out_auc(model, real, generated)  AUC on clean images, after JPEG 75, after a 0.5x
                                          resize (both classes perturbed alike)
    save_detector / load_detector         <dir>/detector.keras and <dir>/detector.json
"""

import io
import json
import pathlib

import numpy as np
from PIL import Image

# The figures metrics.json's "detector" holds, and the perturbation each one is measured after
# (None: clean). The resize goes down by the factor and back up to the model's size: the
# detector takes the model's image shape, so a shrunk copy (a thumbnail, a chat app's preview)
# has to be brought back to it to be checked; what counts is the detail the shrinking lost.
JPEG_QUALITY = 75
RESIZE_FACTOR = 0.5
AUC_KEYS = {"auc_clean": None, "auc_jpeg75": "jpeg", "auc_resize0.5": "resize"}
DETECTOR_FILE = "detector.keras"
# The evaluate stage writes the detector to <workdir>/evaluate/detector/; the export reads it.
STAGE_SUBDIR = "detector"
INFO_FILE = "detector.json"
BATCH_SIZE = 64
LEARNING_RATE = 3e-3
# The high-pass residual's gain: +-8 levels of pixel noise become about +-1, the image's scale.
HIGH_PASS_GAIN = 16.0


# --------------------------------------------------------------------------
# What a re-shared image suffers
# --------------------------------------------------------------------------


def _to_pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def _from_pil(image: Image.Image, channels: int) -> np.ndarray:
    out = np.asarray(image.convert("L" if channels == 1 else "RGB"), np.uint8)
    return out[..., None] if channels == 1 else out


def jpeg(images: np.ndarray, quality: int = JPEG_QUALITY) -> np.ndarray:
    """uint8 [N, H, W, C] images (C = 1 or 3) JPEG-encoded at `quality` with Pillow's libjpeg
    (4:2:0 chroma for colour, its default) and decoded again."""
    out = np.empty_like(images)
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        _to_pil(image).save(buffer, format="JPEG", quality=int(quality))
        out[i] = _from_pil(Image.open(buffer), images.shape[-1])
    return out


def resize(images: np.ndarray, factor: float = RESIZE_FACTOR) -> np.ndarray:
    """uint8 [N, H, W, C] images shrunk by `factor` (bilinear, which Pillow antialiases when
    shrinking) and enlarged back to H x W (bilinear)."""
    height, width = images.shape[1:3]
    small = (max(1, round(width * factor)), max(1, round(height * factor)))
    out = np.empty_like(images)
    for i, image in enumerate(images):
        shrunk = _to_pil(image).resize(small, Image.BILINEAR)
        out[i] = _from_pil(shrunk.resize((width, height), Image.BILINEAR), images.shape[-1])
    return out


def perturb(images: np.ndarray, kind: str | None) -> np.ndarray:
    """`images` after the perturbation named in AUC_KEYS (None: unchanged)."""
    if kind is None:
        return images
    if kind == "jpeg":
        return jpeg(images)
    if kind == "resize":
        return resize(images)
    raise ValueError(f"unknown perturbation {kind!r}")


def augment(images: np.ndarray, seed: int) -> np.ndarray:
    """A training copy of `images` in which a third stay clean, a third are JPEG-encoded at a
    random quality in [50, 95] and a third are resized by a random factor in [0.4, 0.8]: the
    detector then keys on traces that survive re-sharing, not on the finest pixel noise."""
    rng = np.random.default_rng([seed, 7])
    kinds = rng.integers(0, 3, len(images))
    out = images.copy()
    for i in np.flatnonzero(kinds == 1):
        out[i] = jpeg(images[i : i + 1], int(rng.integers(50, 96)))[0]
    for i in np.flatnonzero(kinds == 2):
        out[i] = resize(images[i : i + 1], float(rng.uniform(0.4, 0.8)))[0]
    return out


# --------------------------------------------------------------------------
# The classifier
# --------------------------------------------------------------------------


def build_detector(image_shape, seed: int = 0):
    """The classifier: float32 [N, H, W, C] holding uint8 values (0..255) -> logits [N, 1].

    The image in [-1, 1] beside its high-pass residual (each pixel minus the mean of its 8
    neighbours, x HIGH_PASS_GAIN; a fixed, non-trainable filter), then three 3x3 convolutions
    (16, 32, 64 filters; the first at full resolution, where upsampling artefacts live, then
    two stride-2 ones), global average and max pooling, one dense logit. The residual is the
    image forensics' trick (e.g. SRM filters): a CNN left to itself keys on content and learns
    pixel-level traces slowly (digits plus +-8 noise: no progress in 15 passes without it,
    separated after 8 with it). No batch normalisation, so a batch's prediction does not depend
    on what else is in it. ~24k weights: it trains in seconds on the CPU."""
    import keras

    layers, init = keras.layers, keras.initializers

    def conv(x, filters, strides, index):
        # LeakyReLU (slope 0.2) inside the convolution: as a layer of its own, TensorFlow's
        # graph optimiser fails to fuse it with the bias add and logs a "remapper failed" error.
        return layers.Conv2D(
            filters,
            3,
            strides=strides,
            padding="same",
            activation="leaky_relu",
            kernel_initializer=init.GlorotUniform(seed=seed * 16 + index),
            dtype="float32",
        )(x)

    inputs = keras.Input(tuple(int(d) for d in image_shape), dtype="float32", name="images")
    # float32 throughout, whatever mixed-precision policy the process has.
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, dtype="float32")(inputs)
    channels = int(image_shape[-1])
    high_pass = layers.DepthwiseConv2D(
        3, padding="same", use_bias=False, trainable=False, name="high_pass", dtype="float32"
    )
    x = layers.Concatenate(dtype="float32")([x, high_pass(x)])
    kernel = np.full((3, 3, channels, 1), -1.0 / 8.0, np.float32)
    kernel[1, 1] = 1.0
    high_pass.set_weights([kernel * HIGH_PASS_GAIN])
    x = conv(x, 16, 1, 0)
    x = conv(x, 32, 2, 1)
    x = conv(x, 64, 2, 2)
    pooled = [layers.GlobalAveragePooling2D(dtype="float32")(x)]
    pooled.append(layers.GlobalMaxPooling2D(dtype="float32")(x))
    x = layers.Concatenate(dtype="float32")(pooled)
    logits = layers.Dense(
        1, kernel_initializer=init.GlorotUniform(seed=seed * 16 + 3), dtype="float32"
    )(x)
    return keras.Model(inputs, logits, name="detector")


def train_detector(
    real: np.ndarray,
    generated: np.ndarray,
    *,
    steps: int,
    seed: int = 0,
    batch_size: int = BATCH_SIZE,
    augment_images: bool = True,
    max_epochs: float = 5.0,
):
    """(detector, info) trained on uint8 `real` (label 0) vs `generated` (label 1) images.

    Adam, binary cross-entropy, balanced classes (equal counts are used: the larger set is cut
    to the smaller's size). `steps` is an upper bound: a small training set stops after
    `max_epochs` passes over the 2 x count images, where more steps would only fit it harder.
    With `augment_images` every image is also seen in a perturbed copy (`augment`), which
    does not raise that bound."""
    import keras
    import tensorflow as tf

    if real.shape[1:] != generated.shape[1:]:
        raise ValueError(f"real {real.shape[1:]} and generated {generated.shape[1:]} differ")
    count = min(len(real), len(generated))
    if count < 2:
        raise ValueError("the detector needs at least 2 real and 2 generated images")
    images = [real[:count], generated[:count]]
    if augment_images:
        images += [augment(real[:count], seed), augment(generated[:count], seed + 1)]
    x = np.concatenate(images)
    y = np.tile(np.repeat(np.float32([0.0, 1.0]), count), len(images) // 2)[:, None]
    batch_size = int(min(batch_size, len(x)))
    steps = int(max(1, min(steps, np.ceil(max_epochs * 2 * count / batch_size))))
    model = build_detector(real.shape[1:], seed)
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    data = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size)
        .map(lambda a, b: (tf.cast(a, tf.float32), b))
        .prefetch(2)
    )
    history = model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    info = {
        "train_real": int(count),
        "train_generated": int(count),
        "augmented": bool(augment_images),
        "steps": steps,
        "batch_size": batch_size,
        "final_loss": float(history.history["loss"][-1]),
    }
    return model, info


def probabilities(model, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """float64 [N]: per uint8 image, the detector's probability that the model made it."""
    logits = [
        np.asarray(model(np.asarray(images[i : i + batch_size], np.float32), training=False))
        for i in range(0, len(images), batch_size)
    ]
    logits = np.concatenate(logits)[:, 0].astype(np.float64) if logits else np.zeros([0])
    return 1.0 / (1.0 + np.exp(-logits))


def roc_auc(real_scores, fake_scores) -> float:
    """The area under the ROC curve for telling generated (positive) from real images by score:
    the probability that a random generated image scores above a random real one (ties count
    half). 0.5 is chance, 1.0 a perfect separation."""
    from sklearn.metrics import roc_auc_score

    real_scores, fake_scores = np.ravel(real_scores), np.ravel(fake_scores)
    if not len(real_scores) or not len(fake_scores):
        raise ValueError("the AUC needs at least one real and one generated score")
    labels = np.concatenate([np.zeros(len(real_scores)), np.ones(len(fake_scores))])
    return float(roc_auc_score(labels, np.concatenate([real_scores, fake_scores])))


def held_out_auc(model, real: np.ndarray, generated: np.ndarray) -> dict:
    """{"auc_clean", "auc_jpeg75", "auc_resize0.5"} on held-out images: each perturbation is
    applied to the real and the generated images alike, as re-sharing would."""
    return {
        key: roc_auc(
            probabilities(model, perturb(real, kind)),
            probabilities(model, perturb(generated, kind)),
        )
        for key, kind in AUC_KEYS.items()
    }


# --------------------------------------------------------------------------
# On disk: how the evaluate stage hands it to the export
# --------------------------------------------------------------------------


def save_detector(model, directory, info: dict) -> dict:
    """Writes <directory>/detector.keras (architecture and weights, Keras's format) and
    <directory>/detector.json (`info` plus the image shape and the weights' sha256, which names
    this detector in metrics.json); returns what detector.json holds."""
    import hashlib

    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / DETECTOR_FILE)
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(weight.numpy().tobytes())
    info = {
        **info,
        "image_shape": [int(d) for d in model.input_shape[1:]],
        "weights_sha256": digest.hexdigest(),
        "file": DETECTOR_FILE,
    }
    (directory / INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info


def load_detector(directory):
    """(model, info) from `save_detector`'s directory, or None when it holds no detector (an
    evaluation with evaluate.detector=False, or from before the detector existed)."""
    directory = pathlib.Path(directory)
    if not (directory / DETECTOR_FILE).is_file() or not (directory / INFO_FILE).is_file():
        return None
    import keras

    model = keras.models.load_model(directory / DETECTOR_FILE, compile=False)
    return model, json.loads((directory / INFO_FILE).read_text())
