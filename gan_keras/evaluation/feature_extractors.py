"""Feature extractors for the sample-quality metrics, working fully offline.

One concern, kept whole (over 500 lines): the registry of extractors and the cached
weights each needs (the domain classifier it trains, the InceptionV3 files it reads).

- `DomainClassifier`: a small CNN trained on the real training split (TF-GAN's
  "Frechet classifier distance"): its penultimate layer gives the features, its
  softmax the classifier score. Labelled data trains a class classifier;
  unlabelled data (labels -1) trains a rotation-prediction classifier
  (0/90/180/270 degrees, Gidaris et al. 2018), a label-free task whose
  penultimate features still have to encode the shape and orientation of
  the content. Its softmax predicts rotations, not classes, so no
  classifier score is reported in that mode.
- `KerasInceptionV3Extractor` (`keras_inception_v3`): pool features (2048-d) of
  Keras's ImageNet InceptionV3 from a local weights file. Not the network FID is
  defined with, and its bilinear resize to 299x299 has no antialiasing: its
  distances are not comparable with published FID.
- `FidInceptionExtractor` (`fid_inception`): the network FID is defined with,
  the 2015-12-05 Inception graph that TTUR, TF-GAN and clean-fid use, from the
  file its authors publish (`classify_image_graph_def.pb` in
  inception-2015-12-05.tgz): images as float 0..255 into `ExpandDims:0`
  (imported under `FID_Inception_Net/`, as TTUR's fid.py does), 2048-d features
  from `pool_3:0`; the graph resizes to 299x299 itself. Its distances are FID.

None of them downloads anything. Every extractor takes uint8 images
[N, H, W, C] and returns float64 features; `distance_name` ("FID" or "FD") and
`description` say what its Fréchet distance is, for metrics.json and reports.
"""

import hashlib
import json
import os
import pathlib

import numpy as np

from gan_keras import progress
from gan_keras.storage import atomic

# Bump when the classifier architecture or training recipe changes, so cached
# classifiers (and metrics compared across exports) are not mixed up.
CLASSIFIER_VERSION = 1
CLASSIFIER_MODEL_FILE = "classifier.keras"
CLASSIFIER_INFO_FILE = "classifier.json"

INCEPTION_SIZE = 299


class ExtractorUnavailable(RuntimeError):
    """The extractor cannot run here (e.g. no local weights); callers may skip it."""


def _check_images(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"expected uint8 images [N, H, W, 1|3], got shape {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {images.dtype}")
    return images


def _fixed_batches(images, batch_size):
    """Yields (float32 batch, real size); the last batch is zero-padded so every
    call has the same shape and the predict function is traced once."""
    batch_size = min(batch_size, len(images))
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].astype(np.float32)
        n = len(batch)
        if n < batch_size:
            batch = np.concatenate(
                [batch, np.zeros((batch_size - n, *batch.shape[1:]), np.float32)]
            )
        yield batch, n


def sha256_file(path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


class FeatureExtractor:
    """Interface: `name`, `fingerprint` (identifies the feature space: metrics
    are comparable only between equal fingerprints), `info` (for metrics.json)."""

    name = "base"
    fingerprint = ""
    has_class_probs = False
    # What its Fréchet distance is called and is: only the FID network's is "FID".
    distance_name = "FD"
    description = ""

    @property
    def info(self) -> dict:
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "distance_name": self.distance_name,
            "description": self.description,
        }

    def predict(self, images) -> tuple[np.ndarray, np.ndarray | None]:
        """(features [N, D] float64, class probabilities [N, K] or None)."""
        raise NotImplementedError

    def features(self, images) -> np.ndarray:
        return self.predict(images)[0]


# --------------------------------------------------------------------------
# Domain classifier
# --------------------------------------------------------------------------


def build_classifier(image_shape, num_classes: int, feature_dim: int = 128):
    """Small CNN on uint8-valued float input [H, W, C]; the 'features' layer is the embedding."""
    import keras

    height, width, _ = image_shape
    inputs = keras.Input(shape=tuple(image_shape), name="images")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    filters, size = 64, min(height, width)
    # Halve the resolution until it is at most 4 (>= 2 times), so the same
    # recipe fits 16x16 digits and 64x64 photos.
    for i in range(8):
        if i >= 2 and size <= 4:
            break
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
        size = (size + 1) // 2
        filters = min(filters * 2, 256)
    x = keras.layers.GlobalAveragePooling2D()(x)
    features = keras.layers.Dense(feature_dim, activation="relu", name="features")(x)
    x = keras.layers.Dropout(0.3)(features)
    probs = keras.layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, probs, name="domain_classifier")


def _rotations(image_shape) -> int:
    # 90-degree rotations of non-square images change their shape.
    return 4 if image_shape[0] == image_shape[1] else 2


def _rotate(images: np.ndarray, k: int, num_rotations: int) -> np.ndarray:
    return np.rot90(images, k * (4 // num_rotations), axes=(1, 2))


def _make_dataset(images, labels, batch_size, seed, num_rotations, training):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(images)
    if num_rotations:
        step = 4 // num_rotations

        # A fresh random rotation per example and epoch: 4x the data without 4x the memory.
        def rotate(image):
            k = tf.random.uniform([], 0, num_rotations, dtype=tf.int32, seed=seed)
            return image, k

        def apply(image, k):
            return tf.ensure_shape(tf.image.rot90(image, k * step), images.shape[1:]), k

        ds = ds.map(rotate).map(apply)
    else:
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.from_tensor_slices(labels.astype(np.int32))))
    if training:
        ds = ds.shuffle(min(len(images), 50_000), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).map(lambda x, y: (tf.cast(x, tf.float32), y)).prefetch(2)


class DomainClassifier(FeatureExtractor):
    name = "domain_classifier"
    description = (
        "Fréchet distance in the features of a classifier trained on this dataset (TF-GAN's "
        "Fréchet classifier distance); comparable between models scored with the same "
        "classifier fingerprint, not with published FID"
    )

    def __init__(self, model, info: dict):
        import keras

        self.model = model
        self._info = dict(info)
        self.fingerprint = info["fingerprint"]
        self.mode = info["mode"]
        self.has_class_probs = self.mode == "labels"
        self._feature_model = keras.Model(
            model.inputs, [model.get_layer("features").output, model.outputs[0]]
        )

    @property
    def info(self) -> dict:
        return {**super().info, **self._info}

    @property
    def eval_accuracy(self) -> float:
        return self._info["eval_accuracy"]

    def predict(self, images, batch_size: int = 256):
        images = _check_images(images)
        expected = tuple(self._info["image_shape"])
        if images.shape[1:] != expected:
            raise ValueError(
                f"classifier was trained on images of shape {expected}, got {images.shape[1:]}"
            )
        feats, probs = [], []
        for batch, n in _fixed_batches(images, batch_size):
            f, p = self._feature_model.predict_on_batch(batch)
            feats.append(np.asarray(f, np.float64)[:n])
            probs.append(np.asarray(p, np.float64)[:n])
        feats, probs = np.concatenate(feats), np.concatenate(probs)
        return feats, (probs if self.has_class_probs else None)

    def class_probs(self, images) -> np.ndarray:
        if not self.has_class_probs:
            raise ValueError("this classifier predicts rotations, not classes (unlabelled data)")
        return self.predict(images)[1]

    @classmethod
    def load(cls, cache_dir) -> "DomainClassifier":
        import keras

        cache_dir = pathlib.Path(cache_dir)
        info = atomic.read_json(cache_dir / CLASSIFIER_INFO_FILE)
        model = keras.models.load_model(cache_dir / CLASSIFIER_MODEL_FILE, compile=False)
        return cls(model, info)

    @classmethod
    def train_or_load(
        cls,
        cache_dir,
        train_images,
        train_labels,
        eval_images,
        eval_labels,
        *,
        data_fingerprint: str,
        epochs: int,
        batch_size: int,
        seed: int,
        min_steps: int = 0,
        log=print,
    ) -> "DomainClassifier":
        """Loads the cached classifier when it was trained on the same data with
        the same recipe; otherwise trains one and caches it (atomically)."""
        train_images, eval_images = _check_images(train_images), _check_images(eval_images)
        train_labels = np.asarray(train_labels, np.int64)
        eval_labels = np.asarray(eval_labels, np.int64)
        if len(train_labels) != len(train_images) or len(eval_labels) != len(eval_images):
            raise ValueError("images and labels differ in length")
        if train_images.shape[1:] != eval_images.shape[1:]:
            raise ValueError(
                f"train and eval image shapes differ: {train_images.shape[1:]} vs "
                f"{eval_images.shape[1:]}"
            )
        # Class labels only when every example has one; otherwise rotation prediction.
        labelled = (
            bool(len(train_labels))
            and bool(np.all(train_labels >= 0))
            and bool(np.all(eval_labels >= 0))
        )
        mode = "labels" if labelled else "rotation"
        # Small datasets get at least `min_steps` optimizer steps: a few epochs
        # of a thousand images leave the classifier (and its features) untrained.
        steps_per_epoch = -(-len(train_images) // batch_size)
        epochs = max(int(epochs), -(-int(min_steps) // max(steps_per_epoch, 1)))
        recipe = {
            "version": CLASSIFIER_VERSION,
            "data": data_fingerprint,
            "epochs": int(epochs),
            "batch_size": int(batch_size),
            "seed": int(seed),
            "mode": mode,
            "image_shape": list(train_images.shape[1:]),
        }
        fingerprint = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
        cache_dir = pathlib.Path(cache_dir)
        info_path = cache_dir / CLASSIFIER_INFO_FILE
        if info_path.exists() and (cache_dir / CLASSIFIER_MODEL_FILE).exists():
            try:
                cached = atomic.read_json(info_path)
            except (OSError, ValueError) as e:
                log(f"Ignoring unreadable classifier cache {info_path}: {e}")
                cached = {}
            if cached.get("fingerprint") == fingerprint:
                log(f"Using cached domain classifier from {cache_dir}")
                return cls.load(cache_dir)
            log(f"Cached classifier in {cache_dir} is stale (data or recipe changed); retraining")
        return cls._train(
            cache_dir,
            train_images,
            train_labels,
            eval_images,
            eval_labels,
            recipe=recipe,
            fingerprint=fingerprint,
            log=log,
        )

    @classmethod
    def _train(
        cls,
        cache_dir,
        train_images,
        train_labels,
        eval_images,
        eval_labels,
        *,
        recipe,
        fingerprint,
        log,
    ):
        import keras

        keras.utils.set_random_seed(recipe["seed"])
        if recipe["mode"] == "labels":
            num_classes = int(max(train_labels.max(), eval_labels.max())) + 1
            num_rotations = 0
        else:
            num_rotations = _rotations(train_images.shape[1:])
            num_classes = num_rotations
        if len(train_images) < 2 or len(eval_images) < 1:
            raise ValueError(
                f"not enough images to train the domain classifier: {len(train_images)} train, "
                f"{len(eval_images)} eval"
            )
        log(
            f"Training the domain classifier ({recipe['mode']}, {num_classes} classes) on "
            f"{len(train_images)} images for {recipe['epochs']} epochs"
        )
        model = build_classifier(train_images.shape[1:], num_classes)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        train_ds = _make_dataset(
            train_images,
            train_labels,
            recipe["batch_size"],
            recipe["seed"],
            num_rotations,
            training=True,
        )
        steps = recipe["epochs"] * -(-len(train_images) // recipe["batch_size"])
        history = model.fit(
            train_ds,
            epochs=recipe["epochs"],
            shuffle=False,
            verbose=0,
            callbacks=[progress.keras_callback("judge: training", steps)],
        )
        eval_accuracy = _eval_accuracy(model, eval_images, eval_labels, num_rotations)
        info = {
            **recipe,
            "fingerprint": fingerprint,
            "num_classes": num_classes,
            "eval_accuracy": eval_accuracy,
            "train_accuracy": float(history.history["accuracy"][-1]),
            "num_train": len(train_images),
            "num_eval": len(eval_images),
            "task": (
                "class labels"
                if recipe["mode"] == "labels"
                else f"rotation prediction ({num_rotations} rotations; the data is unlabelled)"
            ),
        }
        log(f"Domain classifier eval accuracy: {eval_accuracy:.4f}")
        with atomic.staged_directory(cache_dir) as tmp:
            model.save(tmp / CLASSIFIER_MODEL_FILE)
            atomic.atomic_write_json(tmp / CLASSIFIER_INFO_FILE, info)
        return cls(model, info)


def _eval_accuracy(model, images, labels, num_rotations, batch_size=256) -> float:
    if num_rotations:
        # Every eval image in every rotation: a deterministic accuracy.
        images = np.concatenate([_rotate(images, k, num_rotations) for k in range(num_rotations)])
        labels = np.repeat(np.arange(num_rotations), len(images) // num_rotations)
    correct, start = 0, 0
    for batch, n in _fixed_batches(images, batch_size):
        probs = np.asarray(model.predict_on_batch(batch))[:n]
        correct += int(np.sum(np.argmax(probs, axis=1) == labels[start : start + n]))
        start += n
    return correct / len(images)


# --------------------------------------------------------------------------
# Keras's ImageNet InceptionV3 (not FID's network)
# --------------------------------------------------------------------------


class KerasInceptionV3Extractor(FeatureExtractor):
    """Average-pooled features of Keras's ImageNet InceptionV3, from a local weights file.

    Images are resized (bilinear, no antialiasing) to 299x299, grayscale replicated to 3
    channels, scaled to [-1, 1] (inception_v3.preprocess_input). The weights must be the
    include_top=False ('notop') file. These are not FID's features (see the module docstring).
    """

    name = "keras_inception_v3"
    description = (
        "Fréchet distance in Keras's ImageNet InceptionV3 pool features (bilinear resize to "
        "299x299 without antialiasing); not the 2015-12-05 Inception graph FID is defined with, "
        "so not comparable with published FID"
    )

    def __init__(self, weights_path: str, batch_size: int = 32):
        if not weights_path:
            raise ExtractorUnavailable(
                "keras_inception_v3 skipped: config.evaluate.inception_weights is empty and "
                "weights are never downloaded at run time; set it to a local inception_v3 "
                "'notop' .h5 file"
            )
        if not os.path.isfile(weights_path):
            raise FileNotFoundError(
                f"config.evaluate.inception_weights: no such file: {weights_path}"
            )
        import keras

        self.weights_path = str(weights_path)
        self.batch_size = batch_size
        # A path (never 'imagenet') makes Keras load the file instead of downloading.
        self.model = keras.applications.InceptionV3(
            include_top=False,
            weights=self.weights_path,
            input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3),
            pooling="avg",
        )
        self.fingerprint = sha256_file(self.weights_path)

    @property
    def info(self) -> dict:
        return {**super().info, "weights": self.weights_path}

    def predict(self, images):
        import tensorflow as tf

        images = _check_images(images)
        feats = []
        for start in range(0, len(images), self.batch_size):
            x = tf.image.resize(
                tf.cast(images[start : start + self.batch_size], tf.float32),
                (INCEPTION_SIZE, INCEPTION_SIZE),
                method="bilinear",
            )
            if x.shape[-1] == 1:
                x = tf.tile(x, [1, 1, 1, 3])
            x = x / 127.5 - 1.0
            feats.append(np.asarray(self.model.predict_on_batch(x), np.float64))
        return np.concatenate(feats), None


# --------------------------------------------------------------------------
# The FID network: the 2015-12-05 Inception graph, as its authors publish it
# --------------------------------------------------------------------------

# Tensor names in classify_image_graph_def.pb (inception-2015-12-05.tgz). TTUR's fid.py imports
# the graph under FID_Inception_Net/ and feeds float images in 0..255 of any size to ExpandDims:0
# (the graph resizes them to 299x299 and normalises them itself); pool_3:0 is [N, 1, 1, 2048].
FID_GRAPH_SCOPE = "FID_Inception_Net"
FID_GRAPH_INPUT = "ExpandDims:0"
FID_GRAPH_OUTPUT = "pool_3:0"
FID_FEATURE_DIM = 2048


class FidInceptionExtractor(FeatureExtractor):
    """pool_3 features of the 2015-12-05 Inception graph (the FID network), from a local frozen
    GraphDef (`config.evaluate.fid_inception_graph`). Grayscale is replicated to RGB, as TTUR
    does; resizing is the graph's own, as in TTUR and TF-GAN."""

    name = "fid_inception"
    distance_name = "FID"
    description = (
        "FID: Fréchet distance in pool_3 features of the 2015-12-05 Inception graph "
        "(classify_image_graph_def.pb, as TTUR and TF-GAN compute it); depends on the number "
        "of samples, so compare at equal sample counts"
    )

    def __init__(self, graph_path: str, batch_size: int = 50):
        import tensorflow as tf

        field = "config.evaluate.fid_inception_graph"
        if not graph_path:
            raise ExtractorUnavailable(
                f"fid_inception needs {field}: the path of classify_image_graph_def.pb from "
                "inception-2015-12-05.tgz (nothing is downloaded at run time)"
            )
        if not os.path.isfile(graph_path):
            raise FileNotFoundError(f"{field}: no such file: {graph_path}")
        graph_def = tf.compat.v1.GraphDef()
        try:
            graph_def.ParseFromString(pathlib.Path(graph_path).read_bytes())
        except Exception as e:  # protobuf's DecodeError has no stable import path
            raise ValueError(f"{field}={graph_path} is not a frozen GraphDef: {e}") from None
        nodes = {node.name for node in graph_def.node}
        missing = [t for t in (FID_GRAPH_INPUT, FID_GRAPH_OUTPUT) if t.split(":")[0] not in nodes]
        if missing:
            raise ValueError(
                f"{field}={graph_path} has no {' or '.join(missing)}: not the 2015-12-05 "
                "Inception graph (classify_image_graph_def.pb)"
            )

        def pool_3(images):
            (features,) = tf.compat.v1.import_graph_def(
                graph_def,
                input_map={FID_GRAPH_INPUT: images},
                return_elements=[FID_GRAPH_OUTPUT],
                name=FID_GRAPH_SCOPE,
            )
            return features

        # The batch size is free: the published graph's batch of 1 comes from its JPEG decoder,
        # which the input map cuts off.
        self._pool_3 = tf.compat.v1.wrap_function(
            pool_3, [tf.TensorSpec([None, None, None, 3], tf.float32)]
        )
        self.graph_path = str(graph_path)
        self.batch_size = batch_size
        self.fingerprint = sha256_file(self.graph_path)

    @property
    def info(self) -> dict:
        return {
            **super().info,
            "graph": self.graph_path,
            "input": f"{FID_GRAPH_SCOPE}/{FID_GRAPH_INPUT}",
            "output": f"{FID_GRAPH_SCOPE}/{FID_GRAPH_OUTPUT}",
        }

    def predict(self, images):
        import tensorflow as tf

        images = _check_images(images)
        feats = []
        for batch, n in _fixed_batches(images, self.batch_size):
            if batch.shape[-1] == 1:
                batch = np.repeat(batch, 3, axis=-1)
            features = self._pool_3(tf.constant(batch)).numpy()[:n]
            features = np.asarray(features, np.float64).reshape(n, -1)
            if features.shape[1] != FID_FEATURE_DIM:
                raise ValueError(
                    f"{self.graph_path}: {FID_GRAPH_OUTPUT} gives {features.shape[1]} features "
                    f"per image, not FID's {FID_FEATURE_DIM}"
                )
            feats.append(features)
        return np.concatenate(feats), None


EXTRACTOR_CLASSES = {
    cls.name: cls for cls in (DomainClassifier, KerasInceptionV3Extractor, FidInceptionExtractor)
}
EXTRACTORS = tuple(EXTRACTOR_CLASSES)
# Names no longer accepted, and why (evaluate.validate_config says so).
RENAMED_EXTRACTORS = {
    "inception_v3": (
        "evaluate.extractor='inception_v3' is now 'keras_inception_v3': it is Keras's ImageNet "
        "InceptionV3 (resized without antialiasing), not the 2015-12-05 Inception graph FID is "
        "defined with, so its numbers were never comparable with published FID. For FID, set "
        "evaluate.extractor=fid_inception and evaluate.fid_inception_graph to a local "
        "classify_image_graph_def.pb (from inception-2015-12-05.tgz)"
    )
}
