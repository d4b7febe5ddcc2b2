"""The export's `detect` signature (gan_keras.export.detect_signature): the evaluate stage's
detector inside the SavedModel, answering exactly what the Keras classifier answers.

An untrained 8x8 detector (its random weights still give every image its own probability)
keeps it to seconds; the whole export with a trained detector, and without one, is checked on
the smoke workdir in tests/pipeline/evaluate/test_detector_eval.py.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_generator

from gan_keras.export import detect_signature, layout, sampling_model
from gan_keras.provenance import detector as detector_lib

LATENT = 8


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The detect signature alone in an archive (the whole sampling export traces every
    control signature too: ~10 s more per export)."""
    path = tmp_path_factory.mktemp("detect") / "model"
    model = detector_lib.build_detector((8, 8, 1), seed=3)
    archive = keras.export.ExportArchive()
    detect_signature.add_detect_endpoint(archive, model, (8, 8, 1))
    archive.write_out(str(path), verbose=False)
    return {"detector": model, "path": path}


def test_detect_answers_what_the_keras_classifier_answers(exported):
    loaded = tf.saved_model.load(str(exported["path"]))
    images = np.random.default_rng(0).integers(0, 256, (7, 8, 8, 1), dtype=np.uint8)
    images[0] = 0  # a flat image too
    out = loaded.signatures["detect"](images=tf.constant(images))
    assert set(out) == {"probability"} and out["probability"].dtype == tf.float32
    expected = detector_lib.probabilities(exported["detector"], images)
    np.testing.assert_allclose(out["probability"].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert np.ptp(expected) > 1e-4  # distinct answers, so a mix-up of rows would show


def test_detect_refuses_images_of_another_shape(exported):
    detect = tf.saved_model.load(str(exported["path"])).signatures["detect"]
    for shape in [(2, 16, 16, 1), (2, 8, 8, 3), (8, 8, 1)]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"shape \[N, 8, 8, 1\]"):
            detect(images=tf.zeros(shape, tf.uint8))


def test_a_detector_for_another_image_shape_is_refused(tmp_path):
    # Through the exporter: refused before a version is written.
    with pytest.raises(ValueError, match="trained for another model"):
        sampling_model.export_generator(
            tiny_generator(False, latent_dim=LATENT),
            tmp_path / "bad",
            latent_dim=LATENT,
            detector=detector_lib.build_detector((16, 16, 1)),
        )
    assert layout.list_versions(tmp_path / "bad") == []
