"""Image-to-image task definitions, degradations, classical baselines and image metrics,
against closed forms where one exists."""

import math

import helpers
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from gan_keras import tasks
from gan_keras.evaluation import image_scores
from gan_keras.tasks import baselines, conditions

OPTIONS = [
    ("super_resolution", {"scale": 2}),
    ("super_resolution", {"scale": 4}),
    ("inpainting", {"hole": "center"}),
    ("inpainting", {"hole": "random_box"}),
    ("inpainting", {"hole": "free_form"}),
    ("translation", {"source": "edges"}),
    ("translation", {"source": "grayscale"}),
]


def _config(name="inpainting", **overrides) -> ml_collections.ConfigDict:
    """A task section as the configs hold it: every field, the named task's in use."""
    return helpers.task_config(name, **{"scale": 2, **overrides})


def _image(resolution, channels, seed=0):
    """A random image in [-1, 1] on the uint8 grid, [H, W, C]."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (resolution, resolution, channels))
    return (pixels / 127.5 - 1.0).astype(np.float32)


def _ramp(resolution, channels):
    """An affine image a*i + b*j + c per channel, inside [-1, 1]."""
    i, j = np.meshgrid(np.arange(resolution), np.arange(resolution), indexing="ij")
    planes = [0.8 * i / resolution - 0.6 * j / resolution + 0.1 * k for k in range(channels)]
    return np.stack(planes, axis=-1).astype(np.float32)


def _area(task_config, resolution, seed):
    mask = conditions.make_mask(task_config, resolution, resolution, conditions.example_seed(seed))
    return float(tf.reduce_mean(mask))


# --------------------------------------------------------------------------- registry and config


def test_registry_lists_the_tasks_and_checks_names():
    assert tasks.TASKS.names() == ("generate", "super_resolution", "inpainting", "translation")
    assert not tasks.TASKS.get("generate").conditional
    assert all(tasks.TASKS.get(n).conditional for n in tasks.TASKS.names()[1:])
    with pytest.raises(ValueError, match=r"task.name must be one of .*'deblur'"):
        tasks.validate_task_config(_config("deblur"), resolution=28, channels=1)


@pytest.mark.parametrize(
    "overrides, resolution, channels, message",
    [
        (
            {"name": "super_resolution", "scale": 3},
            24,
            1,
            r"task.scale must be one of \(2, 4\), got 3",
        ),
        ({"name": "super_resolution", "scale": 2.0}, 28, 1, r"task.scale .* got 2.0"),
        (
            {"name": "super_resolution", "scale": 4},
            30,
            1,
            r"task.scale=4 does not divide data.resolution=30",
        ),
        ({"name": "super_resolution", "scale": 4}, 12, 1, r"task.scale=4 leaves 3x3"),
        ({"hole": "square"}, 28, 1, r"task.hole must be one of .*'square'"),
        ({"hole_fraction": 0.0}, 28, 1, r"task.hole_fraction must be in \(0, 0.75\], got 0.0"),
        ({"hole_fraction": 0.8}, 28, 1, r"task.hole_fraction .* got 0.8"),
        ({"hole_fraction": float("nan")}, 28, 1, r"task.hole_fraction .* got nan"),
        ({"hole_fraction": 0.0005}, 28, 1, r"task.hole_fraction=0.0005 is less than one pixel"),
        (
            {"name": "translation", "source": "depth"},
            28,
            3,
            r"task.source must be one of .*'depth'",
        ),
        (
            {"name": "translation", "source": "grayscale"},
            28,
            1,
            r"task.source='grayscale' needs RGB data \(data.channels=3\), got data.channels=1",
        ),
        ({"seed": 1.5}, 28, 1, r"task.seed must be an int64 integer, got 1.5"),
        ({"l1_weight": -1.0}, 28, 1, r"task.l1_weight must be a finite number >= 0, got -1.0"),
        ({"adversarial_weight": True}, 28, 1, r"task.adversarial_weight .* got True"),
        (
            {"l1_weight": 0.0, "adversarial_weight": 0.0},
            28,
            1,
            r"task.l1_weight and task.adversarial_weight are both 0",
        ),
    ],
)
def test_config_errors_name_the_field_and_value(overrides, resolution, channels, message):
    config = _config(**overrides)
    with pytest.raises(ValueError, match=message):
        tasks.validate_task_config(config, resolution=resolution, channels=channels)


def test_valid_configs_pass_and_generate_ignores_task_fields():
    for name, options in OPTIONS:
        tasks.validate_task_config(_config(name, **options), resolution=28, channels=3)
    # L1 only:
    tasks.validate_task_config(_config(adversarial_weight=0.0), resolution=28, channels=1)
    tasks.validate_task_config(
        _config("generate", scale=3, l1_weight=-1), resolution=28, channels=1
    )
    assert tasks.condition_shape(_config("generate"), 28, 1) is None
    with pytest.raises(ValueError, match="task.hole_fraction is missing"):
        tasks.validate_task_config(
            {
                "name": "inpainting",
                "hole": "center",
                "seed": 0,
                "l1_weight": 1.0,
                "adversarial_weight": 0.0,
            },
            resolution=28,
            channels=1,
        )


# --------------------------------------------------------------------------- degrade


@pytest.mark.parametrize(
    "name, options, resolution, channels",
    [
        (name, options, resolution, channels)
        for name, options in OPTIONS
        for resolution in (28, 32)
        for channels in (1, 3)
        if channels == 3 or options.get("source") != "grayscale"
    ],
)
def test_degrade_shapes_dtypes_and_range(name, options, resolution, channels):
    config = _config(name, **options)
    expected = tasks.condition_shape(config, resolution, channels)
    fn = tf.function(lambda image, seed: conditions.degrade(config, image, seed))
    traced = fn.get_concrete_function(
        tf.TensorSpec([resolution, resolution, channels], tf.float32), tf.TensorSpec([2], tf.int64)
    )
    assert tuple(traced.structured_outputs.shape) == expected  # static in graph mode
    condition = fn(_image(resolution, channels), conditions.example_seed(0, 7)).numpy()
    assert condition.dtype == np.float32 and condition.shape == expected
    assert condition.min() >= -1.0 and condition.max() <= 1.0
    if name == "inpainting":
        mask = conditions.mask_from_condition(condition)
        assert set(np.unique(mask)) == {0.0, 1.0}
        assert np.all(conditions.masked_image_from_condition(condition)[mask[..., 0] == 1] == 0.0)
    if name == "super_resolution" or options.get("source") == "grayscale":  # on the uint8 grid
        np.testing.assert_allclose(
            condition, np.round((condition + 1) * 127.5) / 127.5 - 1, atol=1e-6
        )


@pytest.mark.parametrize("hole", ["random_box", "free_form"])
def test_masks_are_deterministic_per_seed_and_differ_between_seeds(hole):
    config = _config(hole=hole)
    image = _image(32, 3)
    first = conditions.degrade(config, image, conditions.example_seed(5, 1)).numpy()
    again = tf.function(lambda s: conditions.degrade(config, image, s))(
        conditions.example_seed(5, 1)
    ).numpy()
    np.testing.assert_array_equal(first, again)
    masks = [
        conditions.make_mask(config, 32, 32, conditions.example_seed(5, i)).numpy()
        for i in range(4)
    ]
    for i in range(1, 4):
        assert not np.array_equal(masks[0], masks[i])
    assert not np.array_equal(
        conditions.example_seed(5, 1).numpy(), conditions.example_seed(6, 1).numpy()
    )


def test_center_hole_is_seed_independent_and_centred():
    config = _config(hole="center", hole_fraction=0.25)
    a = conditions.make_mask(config, 28, 28, conditions.example_seed(0, 0)).numpy()
    b = conditions.make_mask(config, 28, 28, conditions.example_seed(9, 3)).numpy()
    np.testing.assert_array_equal(a, b)
    expected = np.zeros((28, 28, 1), np.float32)
    expected[7:21, 7:21] = 1.0  # 14 x 14 = a quarter of 28 x 28
    np.testing.assert_array_equal(a, expected)


@pytest.mark.parametrize("hole", ["center", "random_box", "free_form"])
@pytest.mark.parametrize("fraction", [0.1, 0.4, 0.75])
def test_hole_area_is_close_to_the_fraction(hole, fraction):
    config = _config(hole=hole, hole_fraction=fraction)
    mask_fn = tf.function(lambda s: tf.reduce_mean(conditions.make_mask(config, 32, 32, s)))
    areas = np.array([float(mask_fn(conditions.example_seed(1, i))) for i in range(40)])
    assert abs(areas.mean() - fraction) <= 0.03 * fraction + 1 / 32**2
    if hole == "free_form":  # each mask, not just the average, is near the target
        assert np.all(np.abs(areas - fraction) < 0.1)


def test_super_resolution_of_a_constant_image_is_that_constant():
    for value in (-1.0, 0.2, 1.0):
        value = round((value + 1) * 127.5) / 127.5 - 1  # on the uint8 grid
        image = np.full((28, 28, 3), value, np.float32)
        for scale in (2, 4):
            condition = conditions.degrade(
                _config("super_resolution", scale=scale), image, conditions.example_seed(0)
            ).numpy()
            np.testing.assert_allclose(condition, value, atol=1e-6)


def test_edges_of_a_flat_image_are_empty_and_of_a_step_a_line_at_the_step():
    config = _config("translation", source="edges")
    flat = conditions.degrade(
        config, np.full((32, 32, 3), 0.3, np.float32), conditions.example_seed(0)
    )
    np.testing.assert_array_equal(flat.numpy(), 1.0)  # white: no edges
    step = np.full((32, 32, 1), -0.5, np.float32)
    step[:, 12:] = 0.5
    edges = conditions.degrade(config, step, conditions.example_seed(0)).numpy()[..., 0]
    expected = np.ones((32, 32), np.float32)
    expected[:, 11:13] = -1.0  # black, on both columns next to the step
    np.testing.assert_array_equal(edges, expected)
    faint = np.where(np.arange(32) < 12, 0.0, 0.1).astype(np.float32)
    faint = np.broadcast_to(faint, (32, 32))[..., None]
    assert np.all(conditions.degrade(config, faint, conditions.example_seed(0)).numpy() == 1.0)


def test_grayscale_of_a_grey_rgb_image_is_that_grey_and_follows_bt601():
    config = _config("translation", source="grayscale")
    grey = _image(28, 1)
    condition = conditions.degrade(
        config, np.repeat(grey, 3, axis=-1), conditions.example_seed(0)
    ).numpy()
    np.testing.assert_allclose(condition, grey, atol=1e-6)
    red = np.zeros((28, 28, 3), np.float32)
    red[..., 0] = 1.0  # R = 255, G = B = 127.5 on [0, 255]: Y = 127.5 + 0.299 * 127.5
    condition = conditions.degrade(config, red, conditions.example_seed(0)).numpy()
    np.testing.assert_allclose(condition, round(127.5 + 0.299 * 127.5) / 127.5 - 1, atol=1e-6)


def test_degrade_in_a_dataset_map_with_enumerate_seeds():
    config = _config(hole="free_form", seed=3)
    images = np.stack([_image(28, 1, seed=i) for i in range(6)])
    ds = (
        tf.data.Dataset.from_tensor_slices(images)
        .enumerate()
        .map(
            lambda i, x: (
                x,
                conditions.degrade(config, x, conditions.example_seed(config.seed, i)),
            ),
            num_parallel_calls=2,
            deterministic=True,
        )
    )
    assert ds.element_spec[1].shape == (28, 28, 2)
    out = [c for _, c in ds.as_numpy_iterator()]
    again = [c for _, c in ds.as_numpy_iterator()]
    for i, (c, c2) in enumerate(zip(out, again, strict=True)):
        np.testing.assert_array_equal(c, c2)
        eager = conditions.degrade(config, images[i], conditions.example_seed(3, i)).numpy()
        np.testing.assert_array_equal(c, eager)
    assert not np.array_equal(out[0][..., 1], out[1][..., 1])


def test_uint8_mask_converters_match_degrade():
    config = _config(hole="random_box")
    image = _image(28, 3)
    condition = conditions.degrade(config, image, conditions.example_seed(0, 2))
    mask_u8 = conditions.mask_to_uint8(conditions.mask_from_condition(condition))
    assert mask_u8.dtype == tf.uint8 and set(np.unique(mask_u8.numpy())) == {0, 255}
    np.testing.assert_array_equal(
        conditions.mask_from_uint8(mask_u8), conditions.mask_from_condition(condition)
    )
    image_u8 = np.round((image + 1) * 127.5).astype(np.uint8)
    served = conditions.inpainting_condition_from_uint8(image_u8[None], mask_u8[None]).numpy()[0]
    np.testing.assert_allclose(served, condition.numpy(), atol=1e-6)
    generated = np.full((1, 28, 28, 3), 0.5, np.float32)
    pasted = conditions.paste_known(generated, served[None]).numpy()[0]
    hole = served[..., -1:] == 1
    np.testing.assert_allclose(pasted, np.where(hole, 0.5, image), atol=1e-6)


# --------------------------------------------------------------------------- baselines


def _condition(image, mask):
    return conditions.inpainting_condition(image[None], mask[None]).numpy()


@pytest.mark.parametrize("hole", ["center", "free_form"])
def test_harmonic_fill_reproduces_an_affine_image_exactly(hole):
    image = _ramp(32, 3)
    config = _config(hole=hole, hole_fraction=0.5)
    mask = conditions.make_mask(config, 32, 32, conditions.example_seed(4)).numpy()
    mask[[0, -1]] = 0.0  # the hole must not touch the border, where the boundary is reflecting
    mask[:, [0, -1]] = 0.0
    filled = baselines.classical_fill(_condition(image, mask))
    assert filled.dtype == np.float32 and filled.shape == (1, 32, 32, 3)
    np.testing.assert_allclose(filled[0], image, atol=1e-3)


def test_harmonic_fill_solves_the_laplace_equation_in_the_hole():
    image = _image(28, 1)
    mask = conditions.make_mask(
        _config(hole="random_box", hole_fraction=0.4), 28, 28, conditions.example_seed(1)
    ).numpy()
    filled = baselines.classical_fill(_condition(image, mask))[0, ..., 0].astype(np.float64)
    hole = mask[..., 0] == 1
    np.testing.assert_array_equal(filled[~hole], image[..., 0][~hole])  # known pixels kept
    padded = np.pad(filled, 1)
    inside = np.pad(np.ones_like(filled), 1)
    neighbours = [
        (padded[:-2, 1:-1], inside[:-2, 1:-1]),
        (padded[2:, 1:-1], inside[2:, 1:-1]),
        (padded[1:-1, :-2], inside[1:-1, :-2]),
        (padded[1:-1, 2:], inside[1:-1, 2:]),
    ]
    total = sum(v * m for v, m in neighbours)
    count = sum(m for _, m in neighbours)
    np.testing.assert_allclose(filled[hole], (total / count)[hole], atol=1e-4)  # mean of neighbours


def test_bicubic_upsample_of_a_downsampled_smooth_image_is_close():
    i, j = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    smooth = (0.7 * np.sin(np.pi * i / 32) * np.cos(np.pi * j / 32))[..., None].astype(np.float32)
    for scale in (2, 4):
        config = _config("super_resolution", scale=scale)
        small = conditions.degrade(config, smooth, conditions.example_seed(0))
        up = baselines.bicubic_upsample(small.numpy()[None], scale)
        assert up.shape == (1, 32, 32, 1) and up.dtype == np.float32
        error = np.abs(up[0] - smooth)
        assert error[scale:-scale, scale:-scale].max() < 0.03 and error.max() < 0.1
        assert image_scores.psnr(up, smooth[None], border=scale)[0] > 30


def test_baseline_dispatch_and_no_baseline_for_translation():
    config = _config("super_resolution", scale=4)
    assert baselines.baseline(config, np.zeros((2, 7, 7, 1), np.float32)).shape == (2, 28, 28, 1)
    assert tasks.metric_protocol(config) == {"y_channel": True, "border": 4}
    assert tasks.metric_protocol(_config()) == {"y_channel": False, "border": 0}
    with pytest.raises(ValueError, match="L1-only model"):
        baselines.baseline(_config("translation"), np.zeros((1, 28, 28, 1), np.float32))


# --------------------------------------------------------------------------- metrics


def test_psnr_of_a_constant_offset_matches_the_closed_form():
    a = np.zeros((2, 16, 16, 3), np.float32)
    d = np.array([0.1, 0.5], np.float32).reshape(2, 1, 1, 1)
    np.testing.assert_allclose(
        image_scores.psnr(a, a + d), 10 * np.log10(2.0**2 / d.ravel() ** 2), rtol=1e-5
    )
    u = np.full((1, 16, 16, 1), 100, np.uint8)
    np.testing.assert_allclose(image_scores.psnr(u, u + 10), 10 * math.log10(255**2 / 100))
    # Same pixels, same dB in either range.
    np.testing.assert_allclose(
        image_scores.psnr(u, u + 10),
        image_scores.psnr(u / 127.5 - 1, (u + 10) / 127.5 - 1),
        rtol=1e-9,
    )
    assert image_scores.psnr(a, a)[0] == np.inf
    with pytest.raises(ValueError, match="uint8"):
        image_scores.psnr(u, u.astype(np.float32))


def test_psnr_border_and_y_channel_protocol():
    a = np.zeros((1, 16, 16, 3), np.float32)
    b = a.copy()
    b[:, :2] = 1.0  # errors only in the 2-pixel border
    assert image_scores.psnr(a, b, border=2)[0] == np.inf
    c = a.copy()
    c[..., 1] = 0.2  # only G differs: Y differs by 0.587 * 0.2
    np.testing.assert_allclose(
        image_scores.psnr(a, c, y_channel=True), 10 * np.log10(4 / (0.587 * 0.2) ** 2), rtol=1e-5
    )


def test_ssim_of_identical_images_is_one_and_grey_rgb_scores_as_one_channel():
    x = np.stack([_image(16, 1, seed=s) for s in range(2)])
    noisy = np.clip(x + np.random.default_rng(123).normal(0, 0.5, x.shape), -1, 1)
    np.testing.assert_allclose(image_scores.ssim(x, x), 1.0, atol=1e-9)
    one = image_scores.ssim(x, noisy)
    assert one.shape == (2,) and np.all(one < 0.9)
    rgb = image_scores.ssim(np.repeat(x, 3, -1), np.repeat(noisy, 3, -1), y_channel=True)
    np.testing.assert_allclose(rgb, one, atol=1e-6)
    with pytest.raises(ValueError, match="at least 11x11"):
        image_scores.ssim(x, x, border=3)


def test_masked_psnr_and_l1_ignore_pixels_outside_the_hole():
    a = np.zeros((1, 16, 16, 3), np.float32)
    mask = np.zeros((1, 16, 16, 1), np.float32)
    mask[:, 4:8, 4:8] = 1.0
    b = np.where(mask == 1, 0.25, -1.0) * np.ones((1, 1, 1, 3), np.float32)  # big errors outside
    expected = 10 * math.log10(4 / 0.25**2)
    np.testing.assert_allclose(image_scores.masked_psnr(a, b, mask), expected, rtol=1e-6)
    served_mask = (mask * 255).astype(np.uint8)  # 255 = hole
    np.testing.assert_allclose(image_scores.masked_psnr(a, b, served_mask), expected, rtol=1e-6)
    np.testing.assert_allclose(image_scores.l1(a, b, mask), 0.25, rtol=1e-6)
    np.testing.assert_allclose(image_scores.l1(a, b), (16 * 0.25 + 240 * 1.0) / 256, rtol=1e-6)
    u = np.zeros((1, 4, 4, 1), np.uint8)
    np.testing.assert_allclose(image_scores.l1(u, u + 51), 51 / 127.5)
