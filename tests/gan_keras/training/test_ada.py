"""Adaptive discriminator augmentation (gan_keras.training.ada): the ops, p's update, replicas,
resume, and that it changes nothing while p = 0."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_keras.models import dcgan
from gan_keras.training import ada
from gan_keras.training import gan as gan_lib
from pipeline.train import strategies

RES, LATENT, BATCH = 16, 4, 8


def _random_fn(seed=0):
    def random_fn(key, shape, dtype, distribution):
        s = tf.constant([seed, key], tf.int64)
        if distribution == "uniform":
            return tf.random.stateless_uniform([BATCH, *shape], s, dtype=dtype)
        return tf.random.stateless_normal([BATCH, *shape], s, dtype=dtype)

    return random_fn


def _images(channels=3, size=RES):
    return tf.random.stateless_uniform([BATCH, size, size, channels], [5, 6], -1, 1)


def test_p_zero_draws_identity_transforms():
    x = _images()
    out = ada.augment(x, 0.0, _random_fn())
    np.testing.assert_allclose(out.numpy(), x.numpy(), atol=1e-6)


def test_blit_ops_move_pixels_exactly():
    """x-flip, 90-degree rotations and integer translations are exact permutations of pixels
    (with reflection at the border): no resampling blur."""
    x = _images(channels=1)

    def only(keys):
        # p = 1 for the listed ops' gates, and the geometric/colour magnitudes at identity.
        def random_fn(key, shape, dtype, distribution):
            if key >= 100:  # gates
                value = 0.0 if key - 100 in keys else 1.0
                return tf.fill([BATCH, *shape], value)
            return _random_fn(7)(key, shape, dtype, distribution)

        return random_fn

    out = ada.augment(x, 1.0, only({0, 1, 2})).numpy()
    src = x.numpy()
    for b in range(BATCH):
        # Every output pixel is one of the input's (a permutation, up to border reflections of
        # translated ones), not a blend of neighbours.
        distance = np.abs(out[b].ravel()[:, None] - src[b].ravel()[None]).min(axis=1)
        assert distance.max() < 1e-5
    # And the pipeline did move pixels.
    assert np.abs(out - src).max() > 0.1


def test_geometric_and_colour_ops_are_differentiable():
    x = tf.Variable(_images())
    with tf.GradientTape() as tape:
        y = ada.augment(x, 1.0, _random_fn())
        loss = tf.reduce_sum(y * y)
    grad = tape.gradient(loss, x)
    assert grad is not None and float(tf.reduce_sum(tf.abs(grad))) > 0


def test_p_one_changes_every_image_and_keeps_shape_and_grey():
    for channels in (1, 3):
        x = _images(channels)
        out = ada.augment(x, 1.0, _random_fn(1))
        assert out.shape == x.shape
        diff = tf.reduce_max(tf.abs(out - x), axis=[1, 2, 3]).numpy()
        assert (diff > 1e-3).all()
    # A grey image stays grey (channels equal) under every colour op.
    grey = tf.repeat(_images(1), 3, axis=-1)
    out = ada.augment(grey, 1.0, _random_fn(2)).numpy()
    np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-5)
    np.testing.assert_allclose(out[..., 1], out[..., 2], atol=1e-5)


def test_p_adjustment_moves_p_across_its_range_in_speed_images():
    adjust = ada.p_adjustment(tf.constant(0.9), 0.6, 64 * 4, 500_000)
    assert float(adjust) == pytest.approx(256 / 500_000)
    assert float(ada.p_adjustment(tf.constant(0.1), 0.6, 256, 500_000)) < 0
    with pytest.raises(ValueError, match="train.ada_target"):
        ada.check_settings(1.5, 4, 1000)
    with pytest.raises(ValueError, match="train.ada_interval"):
        ada.check_settings(0.6, 0, 1000)


def _make_gan(strategy, *, ada_target=0.0, diffaugment="", speed=5_000.0, interval=2):
    with strategy.scope():
        keras.utils.set_random_seed(1)
        g = dcgan.build_generator(
            resolution=RES, channels=1, latent_dim=LATENT, width=4, norm="none"
        )
        d = dcgan.build_discriminator(resolution=RES, channels=1, width=4, norm="none")
        model = gan_lib.GAN(g, d, latent_dim=LATENT, seed=3)
        model.compile(
            keras.optimizers.Adam(2e-4, 0.5),
            keras.optimizers.Adam(2e-4, 0.5),
            diffaugment_policy=diffaugment,
            ada_target=ada_target,
            ada_interval=interval,
            ada_speed_images=speed,
        )
    return model


def _train(strategy, model, steps):
    images = tf.random.stateless_uniform([BATCH, RES, RES, 1], [1, 2], -1, 1)
    ds = tf.data.Dataset.from_tensors((images, tf.zeros([BATCH], tf.int32))).repeat()
    iterator = iter(strategy.experimental_distribute_dataset(ds))

    @tf.function
    def step(it):
        strategy.run(model.train_step, args=(next(it),))

    for _ in range(steps):
        step(iterator)
    return model.generator.get_weights() + model.discriminator.get_weights()


def _one_device():
    return tf.distribute.OneDeviceStrategy(tf.config.list_logical_devices("CPU")[0].name)


@pytest.mark.slow
def test_ada_at_p_zero_trains_bit_identically_to_no_augmentation():
    # Target 0.999: r_t stays under it, so p stays 0 for the whole run.
    strategy = _one_device()
    plain = _train(strategy, _make_gan(strategy), 6)
    model = _make_gan(strategy, ada_target=0.999)
    adaptive = _train(strategy, model, 6)
    assert float(model.ada_p.numpy()) == 0.0
    for a, b in zip(plain, adaptive, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_p_follows_sign_of_real_logits_every_interval():
    strategy = _one_device()
    model = _make_gan(strategy, ada_target=0.6, interval=2, speed=5_000.0)
    # D's bias far positive: every real logit > 0, r_t = 1 > target, p rises each interval.
    logit_layer = [w for w in model.discriminator.weights if "bias" in w.path][-1]
    logit_layer.assign(tf.fill(logit_layer.shape, 1e4))
    _train(strategy, model, 1)
    assert float(model.ada_p.numpy()) == 0.0  # not yet due (every 2nd step)
    _train(strategy, model, 1)
    step_size = BATCH * 2 / 5_000.0
    assert float(model.ada_p.numpy()) == pytest.approx(step_size, rel=1e-5)
    np.testing.assert_array_equal(model.ada_signs.numpy(), [0.0, 0.0])
    # Far negative: r_t = -1 < target, p falls back (clipped at 0).
    logit_layer.assign(tf.fill(logit_layer.shape, -1e4))
    _train(strategy, model, 4)
    assert float(model.ada_p.numpy()) == 0.0


def test_diffaugment_and_ada_together_are_refused():
    with pytest.raises(ValueError, match="choose one"):
        _make_gan(_one_device(), ada_target=0.6, diffaugment="color")


@pytest.mark.slow
def test_two_replicas_match_one_replica_with_augmentation_on():
    devices = tf.config.list_logical_devices("CPU")
    assert len(devices) == 2, "conftest splits the CPU in two logical devices"
    one, two = _one_device(), strategies.make_strategy("mirrored")
    results = []
    for strategy in (one, two):
        model = _make_gan(strategy, ada_target=0.1, interval=1, speed=2_000.0)
        # Start at p = 0.5 so that augmentation is on from the first step.
        model.ada_p.assign(0.5)
        weights = _train(strategy, model, 4)
        results.append((weights, float(model.ada_p.numpy())))
    (w1, p1), (w2, p2) = results
    assert p1 == pytest.approx(p2) and p1 != 0.5
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(w1, w2, strict=True)) < 1e-5


def test_p_and_its_running_signs_are_checkpointed(tmp_path):
    strategy = _one_device()
    model = _make_gan(strategy, ada_target=0.6)
    model.ada_p.assign(0.37)
    model.ada_signs.assign([3.0, 8.0])
    path = model.checkpoint().save(str(tmp_path / "ckpt"))
    fresh = _make_gan(strategy, ada_target=0.6)
    fresh.checkpoint().restore(path).assert_existing_objects_matched()
    assert float(fresh.ada_p.numpy()) == pytest.approx(0.37)
    np.testing.assert_array_equal(fresh.ada_signs.numpy(), [3.0, 8.0])
    assert math.isfinite(float(fresh.ada_p.numpy()))
