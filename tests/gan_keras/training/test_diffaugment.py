"""DiffAugment's ops (Zhao et al., 2020) against the reference implementation's formulas.

Each op takes its randomness from the caller's `random_fn(key, shape, minval, maxval, dtype)`;
the tests hand it fixed per-example values, so every output pixel is known.
"""

import numpy as np
import pytest
import tensorflow as tf

from gan_keras.training import diffaugment


class FixedRandom:
    """A random_fn returning `values[key]` (one value per example) and recording each draw."""

    def __init__(self, values):
        self.values = values
        self.calls = []

    def __call__(self, key, shape, minval, maxval, dtype):
        self.calls.append((key, list(shape), minval, maxval, tf.as_dtype(dtype)))
        per_example = np.asarray(self.values[key]).reshape([-1] + [1] * len(shape))
        return tf.constant(per_example, dtype)


def _images(batch, size, channels=1):
    # Distinct, non-zero pixel values, so a moved or zeroed pixel is always visible.
    x = np.arange(1, batch * size * size * channels + 1, dtype=np.float32).reshape(
        batch, size, size, channels
    )
    return x / x.max()


def test_policy_names_are_parsed_and_checked():
    assert diffaugment.parse_policy("") == ()
    assert diffaugment.parse_policy(" translation, cutout ,color") == (
        "translation",
        "cutout",
        "color",
    )
    with pytest.raises(ValueError, match="train.diffaugment: unknown policy 'blur'"):
        diffaugment.parse_policy("translation,blur")


def test_translation_shifts_each_image_by_its_offsets_and_fills_with_zeros():
    x = _images(2, 8)
    # out[i, j] = x[i + ty, j + tx] where that is inside the image, else 0: example 0's content
    # moves up one row, example 1's down two rows and left three columns.
    rand = FixedRandom({0: [1, -2], 1: [0, 3]})
    out = diffaugment.diff_augment(tf.constant(x), ("translation",), rand).numpy()
    # Shifts are drawn from [-r, r] with r = 1/8 of the side, rounded (1 pixel at 8x8).
    assert rand.calls == [(0, [1, 1], -1, 2, tf.int32), (1, [1, 1], -1, 2, tf.int32)]
    expected = np.zeros_like(x)
    for b, (ty, tx) in enumerate([(1, 0), (-2, 3)]):
        for i in range(8):
            for j in range(8):
                if 0 <= i + ty < 8 and 0 <= j + tx < 8:
                    expected[b, i, j] = x[b, i + ty, j + tx]
    np.testing.assert_array_equal(out, expected)


def test_translation_range_scales_with_the_image():
    rand = FixedRandom({0: [0], 1: [0]})
    x = _images(1, 16)
    out = diffaugment.diff_augment(tf.constant(x), ("translation",), rand).numpy()
    np.testing.assert_array_equal(out, x)  # zero offsets: the identity
    assert [call[2:4] for call in rand.calls] == [(-2, 3), (-2, 3)]


def _cut_mask(out, x):
    return (out == 0) & (x != 0)


def test_cutout_zeroes_one_square_around_its_centre_and_keeps_the_rest():
    x = _images(2, 16)
    rand = FixedRandom({0: [8, 0], 1: [5, 15]})
    with tf.GradientTape() as tape:
        images = tf.constant(x)
        tape.watch(images)
        out = diffaugment.diff_augment(images, ("cutout",), rand)
        total = tf.reduce_sum(out)
    grad = tape.gradient(total, images).numpy()
    out = out.numpy()
    # Centres are drawn from [0, side] for an even cut size (the reference's range).
    assert rand.calls == [(0, [1, 1], 0, 17, tf.int32), (1, [1, 1], 0, 17, tf.int32)]
    for b, (cy, cx) in enumerate([(8, 5), (0, 15)]):
        cut = _cut_mask(out[b, ..., 0], x[b, ..., 0])
        rows, cols = np.flatnonzero(cut.any(axis=1)), np.flatnonzero(cut.any(axis=0))
        # One axis-aligned block, containing the centre (where inside the image)...
        assert cut.sum() == len(rows) * len(cols)
        assert np.array_equal(rows, np.arange(rows[0], rows[-1] + 1))
        assert np.array_equal(cols, np.arange(cols[0], cols[-1] + 1))
        assert rows[0] <= min(cy, 15) <= rows[-1] and cols[0] <= min(cx, 15) <= cols[-1]
        # ...and every other pixel unchanged.
        np.testing.assert_array_equal(out[b][~cut], x[b][~cut])
        # The gradient passes through the kept pixels only.
        np.testing.assert_array_equal(grad[b, ..., 0], (~cut).astype(np.float32))


@pytest.mark.parametrize("size", [8, 16, 28])
def test_cutout_square_is_half_the_image_side_as_in_the_reference(size):
    cut = int(size * 0.5 + 0.5)
    x = _images(1, size)
    centre = size // 2
    out = diffaugment.diff_augment(
        tf.constant(x), ("cutout",), FixedRandom({0: [centre], 1: [centre]})
    ).numpy()
    expected = np.zeros((size, size), bool)
    lo = centre - cut // 2
    expected[lo : lo + cut, lo : lo + cut] = True
    np.testing.assert_array_equal(_cut_mask(out[0, ..., 0], x[0, ..., 0]), expected)


def test_color_is_brightness_then_saturation_then_contrast():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (3, 8, 8, 3)).astype(np.float32)
    brightness, saturation, contrast = [0.75, 0.5, 0.1], [0.25, 0.5, 0.9], [0.0, 0.5, 1.0]
    rand = FixedRandom({0: brightness, 1: saturation, 2: contrast})
    out = diffaugment.diff_augment(tf.constant(x), ("color",), rand).numpy()
    assert [call[:4] for call in rand.calls] == [(k, [1, 1, 1], 0.0, 1.0) for k in range(3)]

    def per_example(values):
        return np.asarray(values, np.float64)[:, None, None, None]

    # The reference: x + (r - 0.5); (x - mean_c) * 2r + mean_c; (x - mean) * (r + 0.5) + mean.
    y = x.astype(np.float64) + (per_example(brightness) - 0.5)
    mean_c = y.mean(axis=3, keepdims=True)
    y = (y - mean_c) * (2 * per_example(saturation)) + mean_c
    mean = y.mean(axis=(1, 2, 3), keepdims=True)
    y = (y - mean) * (per_example(contrast) + 0.5) + mean
    np.testing.assert_allclose(out, y, rtol=0, atol=1e-5)
    # Example 1 draws the midpoints: colour is then the identity.
    np.testing.assert_allclose(out[1], x[1], rtol=0, atol=1e-6)


def test_ops_of_a_policy_draw_from_distinct_keys_in_order_and_pass_gradients():
    x = _images(2, 8, channels=3)
    values = {key: [0.3, 0.6] for key in (0, 1, 2)}
    values.update({8: [1, 0], 9: [0, -1], 16: [2, 6], 17: [7, 3]})
    rand = FixedRandom(values)
    with tf.GradientTape() as tape:
        images = tf.constant(x)
        tape.watch(images)
        out = diffaugment.diff_augment(images, ("color", "translation", "cutout"), rand)
        total = tf.reduce_sum(out)
    assert [call[0] for call in rand.calls] == [0, 1, 2, 8, 9, 16, 17]
    # The composition is the ops applied one after the other.
    step = x
    for name, keys in (("color", (0, 1, 2)), ("translation", (8, 9)), ("cutout", (16, 17))):
        own = FixedRandom({k - keys[0]: values[k] for k in keys})
        step = diffaugment.diff_augment(tf.constant(step), (name,), own).numpy()
    np.testing.assert_allclose(out.numpy(), step, rtol=0, atol=1e-6)
    grad = tape.gradient(total, images).numpy()
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0
