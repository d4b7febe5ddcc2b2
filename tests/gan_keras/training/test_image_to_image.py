"""Image-to-image GANs: U-Net and PatchGAN shapes, the L1 term, equivalence under distribution."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_keras.models import pix2pix
from gan_keras.training import image_to_image
from pipeline.train import strategies

RES = 16


def _strategies():
    devices = tf.config.list_logical_devices("CPU")
    assert len(devices) == 2, "conftest splits the CPU in two logical devices"
    return tf.distribute.OneDeviceStrategy(devices[0].name), strategies.make_strategy("mirrored")


def _downsample(images, scale=2):
    return tf.image.resize(images, [RES // scale, RES // scale], method="area", antialias=True)


def _make(
    strategy,
    *,
    condition_shape=(RES // 2, RES // 2, 1),
    norm="batch",
    sync=True,
    loss="non_saturating",
    l1_weight=10.0,
    adversarial_weight=1.0,
    lr=1e-3,
    r1=0.0,
    ema=0.0,
    inpainting=False,
):
    with strategy.scope():
        keras.utils.set_random_seed(1)
        g = pix2pix.build_unet_generator(
            condition_shape=condition_shape,
            image_shape=(RES, RES, 1),
            width=8,
            norm=norm,
            sync_batch_norm=sync,
            inpainting=inpainting,
        )
        d = pix2pix.build_patch_discriminator(
            condition_shape=condition_shape,
            image_shape=(RES, RES, 1),
            width=8,
            norm="none" if loss == "wgan_gp" else norm,
            sync_batch_norm=sync,
        )
        model = image_to_image.ImageToImageGAN(
            g,
            d,
            l1_weight=l1_weight,
            adversarial_weight=adversarial_weight,
            seed=3,
            ema_half_life_images=ema,
        )
        model.compile(
            keras.optimizers.Adam(lr, 0.5), keras.optimizers.Adam(lr, 0.5), loss=loss, r1_gamma=r1
        )
    return model


def _batch(size=8):
    rng = np.random.default_rng(0)
    # Blocky images (an 8x8 grid, each cell 2x2 pixels): the 2x-downsampled condition loses
    # nothing, so a model can restore the sharp edges that bicubic upsampling blurs.
    coarse = rng.uniform(-1, 1, (size, RES // 2, RES // 2, 1)).astype(np.float32)
    images = tf.image.resize(coarse, [RES, RES], method="nearest")
    return (_downsample(images), images), tf.zeros([size], tf.int32)


def _train(strategy, steps=2, **kwargs):
    model = _make(strategy, **kwargs)
    ds = tf.data.Dataset.from_tensors(_batch()).repeat()
    iterator = iter(strategy.experimental_distribute_dataset(ds))

    @tf.function
    def step(it):
        strategy.run(model.train_step, args=(next(it),))

    for _ in range(steps):
        step(iterator)
    weights = model.generator.get_weights() + model.discriminator.get_weights()
    return model, weights, {name: float(t.result()) for name, t in model.trackers.items()}


def test_shapes_for_upsampling_and_same_size_conditions():
    g = pix2pix.build_unet_generator(condition_shape=(7, 7, 1), image_shape=(28, 28, 1), width=8)
    assert g.output_shape == (None, 28, 28, 1)
    d = pix2pix.build_patch_discriminator(
        condition_shape=(7, 7, 1), image_shape=(28, 28, 1), width=8
    )
    assert d.output_shape == (None, 49)  # 7x7 patches
    g = pix2pix.build_unet_generator(
        condition_shape=(32, 32, 4), image_shape=(32, 32, 3), width=8, inpainting=True
    )
    assert g.output_shape == (None, 32, 32, 3)


def test_inpainting_generator_keeps_known_pixels():
    g = pix2pix.build_unet_generator(
        condition_shape=(RES, RES, 2), image_shape=(RES, RES, 1), width=8, inpainting=True
    )
    image = np.random.default_rng(1).uniform(-1, 1, (2, RES, RES, 1)).astype(np.float32)
    mask = np.zeros((2, RES, RES, 1), np.float32)
    mask[:, 4:12, 4:12] = 1.0
    out = g(np.concatenate([image * (1 - mask), mask], -1), training=False).numpy()
    np.testing.assert_allclose(out[mask == 0], image[mask == 0], atol=1e-6)
    assert np.abs(out[mask == 1] - image[mask == 1]).mean() > 0.05  # the hole is generated


@pytest.mark.slow
@pytest.mark.parametrize(
    "options",
    [
        dict(norm="batch", sync=True),
        dict(norm="none", loss="wgan_gp", r1=1.0),
    ],
    ids=["sync_bn", "wgan_gp_r1"],
)
def test_two_replicas_match_one_replica_at_same_global_batch(options):
    one, two = _strategies()
    _, one_w, one_m = _train(one, **options)
    _, two_w, two_m = _train(two, **options)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(one_w, two_w, strict=True)) < 1e-5
    for name in one_m:
        assert two_m[name] == pytest.approx(one_m[name], rel=1e-4, abs=1e-5), name
    assert "l1" in one_m and "d_loss" in one_m


def test_l1_term_is_the_mean_absolute_error_times_its_weight():
    model = _make(tf.distribute.get_strategy(), l1_weight=7.0)
    (condition, images), _ = _batch()
    fake = model.generator(condition, training=True)
    expected = 7.0 * np.mean(np.abs(fake.numpy() - images.numpy()), axis=(1, 2, 3))
    np.testing.assert_allclose(
        model._reconstruction_loss(fake, images).numpy(), expected, rtol=1e-5
    )


def test_l1_only_model_learns_to_upsample_better_than_bicubic():
    model, _, metrics = _train(
        tf.distribute.get_strategy(),
        steps=150,
        norm="none",
        sync=False,
        adversarial_weight=0.0,
        l1_weight=1.0,
        lr=2e-3,
    )
    (condition, images), _ = _batch()
    out = model.translate(condition).numpy()
    bicubic = tf.clip_by_value(
        tf.image.resize(condition, [RES, RES], method="bicubic"), -1, 1
    ).numpy()
    model_error = np.mean(np.abs(out - images.numpy()))
    bicubic_error = np.mean(np.abs(bicubic - images.numpy()))
    assert model_error < 0.8 * bicubic_error, (model_error, bicubic_error)


@pytest.mark.slow
def test_l1_only_step_skips_d_and_trains_the_same_generator():
    """The L1-only model's step leaves D alone and gives the G the full GAN step would give
    with adversarial weight 0 (D never reaches G there), under two replicas too."""
    one, two = _strategies()
    runs = {}
    for name, strategy, full_step in [
        ("full", one, True),
        ("skip", one, False),
        ("skip_two_replicas", two, False),
    ]:
        model = _make(strategy, adversarial_weight=0.0, ema=64.0, norm="none", sync=False)
        d_before = [w.copy() for w in model.discriminator.get_weights()]
        step_fn = (
            (lambda data, m=model: image_to_image.gan_lib.GAN.train_step(m, data))
            if full_step
            else model.train_step
        )
        iterator = iter(
            strategy.experimental_distribute_dataset(
                tf.data.Dataset.from_tensors(_batch()).repeat()
            )
        )

        @tf.function
        def step(it, step_fn=step_fn, strategy=strategy):
            strategy.run(step_fn, args=(next(it),))

        for _ in range(3):
            step(iterator)
        d_changed = any(
            not np.array_equal(a, b)
            for a, b in zip(d_before, model.discriminator.get_weights(), strict=True)
        )
        runs[name] = (
            model.generator.get_weights() + model.ema_generator.get_weights(),
            d_changed,
            sorted(model.trackers),
        )
    assert runs["full"][1] and not runs["skip"][1] and not runs["skip_two_replicas"][1]
    assert runs["skip"][2] == ["g_grad_norm", "g_loss", "l1"]
    for other in ("skip", "skip_two_replicas"):
        diff = max(
            float(np.max(np.abs(a - b)))
            for a, b in zip(runs["full"][0], runs[other][0], strict=True)
        )
        assert diff < 1e-5, (other, diff)


@pytest.mark.slow
def test_sampling_re_estimates_batch_norm_statistics_on_the_standing_conditions():
    model, _, _ = _train(tf.distribute.get_strategy(), steps=3)
    (condition, _), _ = _batch()
    # After training the moving statistics lag the weights: inference differs from batch stats.
    with_batch_stats = model.generator(condition, training=True).numpy()
    assert np.abs(model.translate(condition).numpy() - with_batch_stats).max() > 1e-3
    model.set_standing_conditions(condition)
    # One batch holding every standing condition: the statistics become exactly its own.
    model.refresh_sampling_batch_norm(num_batches=1, batch_size=len(condition))
    np.testing.assert_allclose(model.translate(condition).numpy(), with_batch_stats, atol=1e-4)


def test_ema_generator_with_batch_norm_samples_on_its_own_standing_statistics():
    model, _, _ = _train(tf.distribute.get_strategy(), steps=3, ema=100.0)
    (condition, _), _ = _batch()
    # The EMA copy's statistics belong to no weights: sampling without conditions is an error.
    with pytest.raises(ValueError, match="set_standing_conditions"):
        model.translate(condition)
    model.set_standing_conditions(condition)
    model.refresh_sampling_batch_norm(num_batches=1, batch_size=len(condition))
    # Re-estimated on the EMA weights themselves, not on the live G's.
    ema_batch_stats = model.ema_generator(condition, training=True).numpy()
    np.testing.assert_allclose(model.translate(condition).numpy(), ema_batch_stats, atol=1e-4)
    live_batch_stats = model.generator(condition, training=True).numpy()
    assert np.abs(ema_batch_stats - live_batch_stats).max() > 1e-3


def test_both_weights_zero_is_rejected():
    with pytest.raises(ValueError, match="l1_weight"):
        _make(tf.distribute.get_strategy(), l1_weight=0.0, adversarial_weight=0.0)
