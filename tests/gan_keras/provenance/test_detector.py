"""gan_keras.provenance.detector: the AUC, the perturbations, training, and the files on disk.

The training test is the detector's contract in small: an obviously different 'generator'
(real digits, blurred) is told from real digits with a held-out AUC above 0.9, within seconds.
"""

import time

import numpy as np
import pytest
from PIL import Image, ImageFilter
from sklearn import datasets

from gan_keras.provenance import detector


def _digits():
    """scikit-learn's digits as 16x16x1 uint8 (each pixel a 2x2 block), train and eval."""
    d = datasets.load_digits()
    x = np.kron(d.images, np.ones((2, 2)))
    x = np.clip(np.round(x * 255.0 / 16.0), 0, 255).astype(np.uint8)[..., None]
    return (x[:1200], d.target[:1200]), (x[1200:], d.target[1200:])


def test_auc_of_a_hand_computed_case():
    # Pairs (generated, real) ranked right: 0.35 > 0.1, 0.8 > 0.1, 0.8 > 0.4; wrong: 0.35 < 0.4.
    assert detector.roc_auc([0.1, 0.4], [0.35, 0.8]) == pytest.approx(3 / 4)
    # A tie counts half; perfect and reversed separations.
    assert detector.roc_auc([0.5, 0.1], [0.5, 0.9]) == pytest.approx((0.5 + 1 + 1 + 1) / 4)
    assert detector.roc_auc([0.1, 0.2], [0.3, 0.4]) == 1.0
    assert detector.roc_auc([0.3, 0.4], [0.1, 0.2]) == 0.0
    # Against the definition, on random scores with ties.
    rng = np.random.default_rng(0)
    real, fake = rng.integers(0, 20, 300), rng.integers(5, 25, 200)
    pairs = (fake[:, None] > real[None, :]) + 0.5 * (fake[:, None] == real[None, :])
    assert detector.roc_auc(real, fake) == pytest.approx(pairs.mean())
    with pytest.raises(ValueError, match="at least one"):
        detector.roc_auc([], [0.5])


def test_perturbations_keep_shape_and_change_what_resharing_changes():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 16, 16, 1), dtype=np.uint8)
    colour = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    for perturbed, source in [
        (detector.jpeg(images), images),
        (detector.resize(images), images),
        (detector.jpeg(colour), colour),
        (detector.resize(colour), colour),
    ]:
        assert perturbed.shape == source.shape and perturbed.dtype == np.uint8
        assert np.abs(perturbed.astype(int) - source).mean() > 5  # noise does not survive
    # A flat image survives both; a one-pixel checkerboard does not survive a 0.5x resize.
    flat = np.full((1, 16, 16, 1), 100, np.uint8)
    assert np.abs(detector.jpeg(flat).astype(int) - 100).max() <= 1
    np.testing.assert_array_equal(detector.resize(flat), flat)
    checker = (np.indices((16, 16)).sum(0) % 2 * 255).astype(np.uint8)[None, ..., None]
    assert detector.resize(checker).std() < 0.1 * checker.std()
    # held_out_auc's perturbations are these.
    assert detector.perturb(images, None) is images
    np.testing.assert_array_equal(detector.perturb(images, "jpeg"), detector.jpeg(images, 75))
    np.testing.assert_array_equal(detector.perturb(images, "resize"), detector.resize(images, 0.5))
    with pytest.raises(ValueError, match="unknown perturbation"):
        detector.perturb(images, "blur")


def _blurred(images: np.ndarray, seed: int, num: int) -> np.ndarray:
    """A 'generator' of smooth images: real ones (drawn with replacement) box-blurred."""
    chosen = images[np.random.default_rng(seed).integers(0, len(images), num)]
    return np.stack(
        [
            np.asarray(Image.fromarray(x[..., 0]).filter(ImageFilter.BoxBlur(1)))[..., None]
            for x in chosen
        ]
    )


def test_detector_tells_blurred_real_images_from_real_ones(tmp_path):
    (train_x, _), (eval_x, _) = _digits()
    start = time.perf_counter()
    model, info = detector.train_detector(
        train_x, _blurred(train_x, 1, len(train_x)), steps=60, augment_images=False
    )
    auc = detector.held_out_auc(model, eval_x, _blurred(eval_x, 2, len(eval_x)))
    seconds = time.perf_counter() - start
    assert set(auc) == set(detector.AUC_KEYS)
    assert auc["auc_clean"] > 0.9, auc
    assert all(0.0 <= v <= 1.0 for v in auc.values())
    assert info["steps"] == 60 and info["train_real"] == info["train_generated"] == 1200
    assert seconds < 60, seconds  # a few seconds on an idle machine; loose for a loaded one
    # Kept on disk and read back (the evaluate stage hands it to the export this way).
    saved = detector.save_detector(model, tmp_path / "detector", {**info, **auc})
    assert saved["image_shape"] == [16, 16, 1] and len(saved["weights_sha256"]) == 64
    loaded, read = detector.load_detector(tmp_path / "detector")
    assert read == saved
    np.testing.assert_allclose(
        detector.probabilities(loaded, eval_x[:50]),
        detector.probabilities(model, eval_x[:50]),
        rtol=1e-6,
    )
    assert detector.load_detector(tmp_path / "nothing-here") is None


def test_training_steps_are_bounded_by_passes_over_a_small_set():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (32, 8, 8, 1), dtype=np.uint8)
    # 64 images a pass, batches of 64: 5 passes are 5 steps, whatever `steps` allows.
    _, info = detector.train_detector(real, real[::-1], steps=1000, augment_images=False)
    assert info["steps"] == 5 and info["batch_size"] == 64
    with pytest.raises(ValueError, match="differ"):
        detector.train_detector(real, real[:, :4], steps=1)
