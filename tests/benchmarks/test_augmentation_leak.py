"""The augmentation-leak probe: it finds DiffAugment's own cutout and translation fills when they
are there, finds none in images without them, and reads samples back out of a saved grid."""

import numpy as np
import tensorflow as tf

from benchmarks import augmentation_leak as leak
from gan_keras import images as gan_images
from gan_keras.training import diffaugment


def _pictures(n=32, size=32, seed=0):
    """Colour images on white with a saturated blob each: no mid-grey anywhere."""
    rng = np.random.default_rng(seed)
    out = np.full((n, size, size, 3), 255, np.uint8)
    for image in out:
        top, left = rng.integers(4, size // 2, 2)
        image[top : top + 12, left : left + 12] = rng.choice([0, 255], 3) * [1, 1, 0] + [0, 0, 200]
    return out


def _random_fn(n):
    def random_fn(key, shape, minval, maxval, dtype):
        return tf.random.stateless_uniform([n, *shape], [key, 7], minval, maxval, dtype)

    return random_fn


def _augmented(images, policy):
    x = tf.constant(images, tf.float32) / 127.5 - 1.0
    y = diffaugment.diff_augment(x, diffaugment.parse_policy(policy), _random_fn(len(images)))
    return np.clip(np.round((y.numpy() + 1.0) * 127.5), 0, 255).astype(np.uint8)


def test_cutout_is_found_and_clean_images_are_not():
    images = _pictures()
    mask = leak.grey_mask(images, 10)
    assert not leak.has_grey_square(mask, 8).any()
    assert not leak.has_grey_edge(mask).any()
    cut = leak.grey_mask(_augmented(images, "cutout"), 10)
    # Every cutout square is at least 8x8 inside the image (its centre is inside), 16x16 unclipped.
    assert leak.has_grey_square(cut, 8).all()


def test_translation_fill_is_found_on_the_edges_it_uncovers():
    images = _pictures(64)
    moved = _augmented(images, "translation")
    # The shifts diff_augment drew (translation is the policy's op 0: keys 0 and 1), up to 4 px.
    ty, tx = (_random_fn(64)(key, [1, 1], -4, 5, tf.int32).numpy().ravel() for key in (0, 1))
    expected = (np.abs(ty) >= 2) | (np.abs(tx) >= 2)  # a grey strip at least 2 deep
    assert 0 < expected.sum() < 64
    np.testing.assert_array_equal(leak.has_grey_edge(leak.grey_mask(moved, 10)), expected)


def test_samples_are_read_back_from_a_saved_grid():
    images = _pictures(64, seed=1)
    grid = gan_images.upscale_for_viewing(gan_images.make_grid(images))
    np.testing.assert_array_equal(leak.grid_tiles(grid, 64, 32), images)
