"""The GAN's train_step: losses, determinism, and equivalence under distribution."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_keras.models import dcgan
from gan_keras.training import gan as gan_lib
from gan_keras.training import losses
from pipeline.train import strategies

LATENT = 8
RES = 16


_STRATEGIES = {}


def _strategies():
    """(one replica, two replicas) on logical CPUs, created once per process.

    Collective instance keys restart with every new MirroredStrategy and can
    collide with an earlier instance's in the same process, so the tests use
    the train stage's per-process instance (two replicas under conftest).
    """
    devices = tf.config.list_logical_devices("CPU")
    assert len(devices) == 2, "conftest splits the CPU in two logical devices"
    if not _STRATEGIES:
        _STRATEGIES["one"] = tf.distribute.OneDeviceStrategy(devices[0].name)
        _STRATEGIES["two"] = strategies.make_strategy("mirrored")
        assert _STRATEGIES["two"].num_replicas_in_sync == 2
    return _STRATEGIES["one"], _STRATEGIES["two"]


def _make_gan(
    strategy,
    *,
    norm="none",
    sync=False,
    loss="non_saturating",
    ema=0.0,
    ema_rampup=0.0,
    r1=0.0,
    augment="",
    spectral=False,
    num_classes=0,
    n_critic=1,
    lr=2e-4,
    seed=3,
):
    with strategy.scope():
        keras.utils.set_random_seed(1)
        g = dcgan.build_generator(
            resolution=RES,
            channels=1,
            latent_dim=LATENT,
            width=4,
            norm=norm,
            sync_batch_norm=sync,
            num_classes=num_classes,
        )
        d = dcgan.build_discriminator(
            resolution=RES,
            channels=1,
            width=4,
            norm="none" if loss == "wgan_gp" else norm,
            sync_batch_norm=sync,
            spectral_norm=spectral,
            num_classes=num_classes,
        )
        model = gan_lib.GAN(
            g,
            d,
            latent_dim=LATENT,
            num_classes=num_classes,
            ema_half_life_images=ema,
            ema_rampup=ema_rampup,
            seed=seed,
        )
        model.compile(
            keras.optimizers.Adam(lr, 0.5),
            keras.optimizers.Adam(lr, 0.5),
            loss=loss,
            r1_gamma=r1,
            diffaugment_policy=augment,
            n_critic=n_critic,
        )
    return model


def _batch(num_classes=0, size=8):
    images = tf.random.stateless_uniform([size, RES, RES, 1], [1, 2], -1, 1)
    labels = tf.random.stateless_uniform([size], [3, 4], 0, max(num_classes, 1), dtype=tf.int32)
    return images, labels


def _train(strategy, steps=2, num_classes=0, **kwargs):
    model = _make_gan(strategy, num_classes=num_classes, **kwargs)
    ds = tf.data.Dataset.from_tensors(_batch(num_classes)).repeat()
    iterator = iter(strategy.experimental_distribute_dataset(ds))

    @tf.function
    def step(it):
        strategy.run(model.train_step, args=(next(it),))

    for _ in range(steps):
        step(iterator)
    weights = model.generator.get_weights() + model.discriminator.get_weights()
    if model.ema_generator is not None:
        # Under the strategy too: re-estimated statistics must not depend on the replica layout.
        model.refresh_sampling_batch_norm(num_batches=3, batch_size=16)
        weights += model.ema_generator.get_weights()
    metrics = {name: float(t.result()) for name, t in model.trackers.items()}
    return weights, metrics


def _max_diff(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))


@pytest.mark.slow
@pytest.mark.parametrize(
    "options",
    [
        dict(norm="none"),
        dict(norm="batch", sync=True),
        dict(norm="batch", sync=True, ema=64.0, ema_rampup=0.5, spectral=True),
        dict(norm="none", loss="wgan_gp", r1=1.0, augment="translation,cutout,color", n_critic=2),
        dict(norm="batch", sync=True, num_classes=3, loss="hinge"),
    ],
    ids=["no_bn", "sync_bn", "sync_bn_ema_sn", "wgan_gp_r1_diffaug", "conditional_hinge"],
)
def test_two_replicas_match_one_replica_at_same_global_batch(options):
    one, two = _strategies()
    one_w, one_m = _train(one, **options)
    two_w, two_m = _train(two, **options)
    assert _max_diff(one_w, two_w) < 1e-5
    for name in one_m:
        assert two_m[name] == pytest.approx(one_m[name], rel=1e-4, abs=1e-5), name


@pytest.mark.slow
def test_unsynchronised_batch_norm_differs_across_replica_layouts():
    # The counterpart of the test above: without sync, BN sees per-replica
    # statistics, so the equivalence check does detect a difference.
    one, two = _strategies()
    one_w, _ = _train(one, norm="batch", sync=False)
    two_w, _ = _train(two, norm="batch", sync=False)
    assert _max_diff(one_w, two_w) > 1e-5


@pytest.mark.slow
def test_same_seed_gives_same_training_and_a_different_seed_does_not():
    strategy = tf.distribute.get_strategy()
    first_w, first = _train(strategy, steps=3, norm="batch")
    again_w, again = _train(strategy, steps=3, norm="batch")
    assert first == again
    assert _max_diff(first_w, again_w) == 0
    # The same three steps from the same initial weights on the same data: only the GAN's
    # noise seed (latents, and so fake images) differs, so every noise-driven quantity does.
    other_w, other = _train(strategy, steps=3, norm="batch", seed=99)
    assert set(other) == set(first)
    for name in ("g_loss", "d_fake_logit", "d_loss"):
        assert abs(other[name] - first[name]) > 1e-5, name
    assert _max_diff(first_w, other_w) > 1e-4


def test_fit_runs_the_same_train_step():
    model = _make_gan(tf.distribute.get_strategy(), norm="batch", ema=8.0)
    images, _ = _batch(size=32)
    history = model.fit(
        tf.data.Dataset.from_tensor_slices(images).batch(8, drop_remainder=True),
        epochs=2,
        verbose=0,
    )
    assert set(history.history) >= {
        "d_loss",
        "g_loss",
        "d_real_logit",
        "d_fake_logit",
        "d_grad_norm",
    }
    assert int(model.step.numpy()) == 8
    assert all(np.isfinite(v).all() for v in history.history.values())
    # The EMA generator moved away from its initial copy of G.
    assert _max_diff(model.ema_generator.get_weights(), model.generator.get_weights()) > 0


def test_ema_generator_is_the_average_of_generator_weights():
    # A half-life of 8 images at a batch of 8: each step halves the old weights' share.
    model = _make_gan(tf.distribute.get_strategy(), norm="none", ema=8.0)
    before_ema = [w.copy() for w in model.ema_generator.get_weights()]
    model.train_step(_batch())
    after_g = model.generator.get_weights()
    expected = [0.5 * e + 0.5 * g for e, g in zip(before_ema, after_g, strict=True)]
    assert _max_diff(model.ema_generator.get_weights(), expected) < 1e-6
    assert model.sampling_generator is model.ema_generator


def test_ema_decay_has_a_half_life_in_images_and_ramps_up():
    model = _make_gan(tf.distribute.get_strategy(), ema=1000.0)
    # No ramp-up: the same half-life in images at any batch size.
    assert float(model.ema_decay(0, 10)) == pytest.approx(0.5 ** (10 / 1000))
    assert float(model.ema_decay(5, 100)) ** 10 == pytest.approx(
        float(model.ema_decay(5, 1000)), rel=1e-5
    )
    model = _make_gan(tf.distribute.get_strategy(), ema=1000.0, ema_rampup=0.1)
    # 10 steps of 10 images: the half-life is 0.1 x 100 images, so each step halves.
    assert float(model.ema_decay(10, 10)) == pytest.approx(0.5)
    # The first step copies G (nothing seen yet); a long run reaches the full half-life.
    assert float(model.ema_decay(0, 10)) == 0.0
    assert float(model.ema_decay(100_000, 10)) == pytest.approx(0.5 ** (10 / 1000))


def test_ema_settings_are_validated():
    with pytest.raises(ValueError, match="ema_half_life_images"):
        gan_lib.check_ema_settings(-1.0, 0.0)
    with pytest.raises(ValueError, match="ema_rampup"):
        gan_lib.check_ema_settings(100.0, 1.5)


def _inference_vs_training_gap(generator, z):
    """Mean |G(z) in inference mode - G(z) in training mode| over a large batch."""
    return float(np.mean(np.abs(generator(z, training=False) - generator(z, training=True))))


def test_ema_generator_samples_with_batch_norm_statistics_of_its_own_weights():
    # A high learning rate makes the EMA weights differ clearly from G's.
    model = _make_gan(tf.distribute.get_strategy(), norm="batch", ema=64.0, lr=2e-2)
    for _ in range(6):
        model.train_step(_batch())
    z = tf.random.stateless_normal([2048, LATENT], [5, 6])
    # The statistics the old code copied from the live generator do not fit the averaged weights...
    for ema_var, var in zip(
        model.ema_generator.non_trainable_weights,
        model.generator.non_trainable_weights,
        strict=True,
    ):
        ema_var.assign(var.value)
    copied_gap = _inference_vs_training_gap(model.ema_generator, z)
    # ...the re-estimated ones do: inference mode then matches large-batch statistics.
    model.refresh_sampling_batch_norm()
    refreshed_gap = _inference_vs_training_gap(model.ema_generator, z)
    assert refreshed_gap < 0.02 < copied_gap
    # Sampling re-estimates by itself once G has moved on, and only then.
    model.train_step(_batch())
    stale = [w.numpy() for w in model.ema_generator.non_trainable_weights]
    model.sample(z[:4])
    refreshed = [w.numpy() for w in model.ema_generator.non_trainable_weights]
    assert _max_diff(stale, refreshed) > 0
    model.sample(z[:4])
    assert _max_diff(refreshed, [w.numpy() for w in model.ema_generator.non_trainable_weights]) == 0


def _linear_gan(loss, r1_gamma, gp_weight, w, bias, fake_value):
    """D(x) = <w, x> + bias, whose input gradient is w at every x; G ignores z and always
    draws the constant image `fake_value`. Zero learning rates: the models stay as built."""
    generator = keras.Sequential(
        [
            keras.Input((LATENT,)),
            keras.layers.Dense(
                RES * RES,
                kernel_initializer="zeros",
                bias_initializer=keras.initializers.Constant(fake_value),
            ),
            keras.layers.Reshape((RES, RES, 1)),
        ]
    )
    discriminator = keras.Sequential(
        [keras.Input((RES, RES, 1)), keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    discriminator.set_weights([w.reshape(-1, 1).astype(np.float32), np.array([bias], np.float32)])
    model = gan_lib.GAN(generator, discriminator, latent_dim=LATENT, seed=3)
    model.compile(
        keras.optimizers.SGD(0.0),
        keras.optimizers.SGD(0.0),
        loss=loss,
        gp_weight=gp_weight,
        r1_gamma=r1_gamma,
    )
    return model


@pytest.mark.parametrize(
    "loss, r1_gamma", [("wgan_gp", 0.0), ("wgan_gp", 2.0), ("non_saturating", 2.0)]
)
def test_gradient_penalty_and_r1_match_their_closed_form_on_a_linear_discriminator(loss, r1_gamma):
    # For a linear D the input gradient is w wherever it is taken (real images for R1,
    # real/fake interpolates for the gradient penalty), so both penalties are known exactly:
    # GP = (|w| - 1)^2 per example and R1 = gamma/2 |w|^2; and so is D's whole loss and its
    # gradient with respect to (w, bias), penalties included.
    rng = np.random.default_rng(0)
    w = rng.standard_normal(RES * RES)
    w *= 1.7 / np.linalg.norm(w)
    bias, fake_value, gp_weight = 0.3, 0.25, 10.0
    real = rng.uniform(-1, 1, (8, RES * RES))
    model = _linear_gan(loss, r1_gamma, gp_weight, w, bias, fake_value)
    results = {
        k: float(v)
        for k, v in model.train_step(tf.constant(real.reshape(8, RES, RES, 1), tf.float32)).items()
    }

    norm = np.linalg.norm(w)
    fake = np.full(RES * RES, fake_value)
    real_logits, fake_logit = real @ w + bias, fake @ w + bias
    if loss == "wgan_gp":
        per_example = fake_logit - real_logits
        grad_w, grad_b = fake - real.mean(axis=0), 0.0
        gp = (norm - 1.0) ** 2
        per_example = per_example + gp_weight * gp
        grad_w = grad_w + gp_weight * 2.0 * (norm - 1.0) * w / norm
        assert results["gradient_penalty"] == pytest.approx(gp, rel=1e-5)
    else:
        sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
        per_example = np.logaddexp(0, -real_logits) + np.logaddexp(0, fake_logit)
        grad_w = (-sigmoid(-real_logits)[:, None] * real).mean(axis=0) + sigmoid(fake_logit) * fake
        grad_b = float(np.mean(-sigmoid(-real_logits)) + sigmoid(fake_logit))
        assert "gradient_penalty" not in results
    if r1_gamma:
        r1 = 0.5 * r1_gamma * norm**2
        per_example = per_example + r1
        grad_w = grad_w + r1_gamma * w
        assert results["r1_penalty"] == pytest.approx(r1, rel=1e-5)
    else:
        assert "r1_penalty" not in results
    assert results["d_real_logit"] == pytest.approx(real_logits.mean(), rel=1e-5, abs=1e-6)
    assert results["d_fake_logit"] == pytest.approx(fake_logit, rel=1e-5, abs=1e-6)
    assert results["d_loss"] == pytest.approx(per_example.mean(), rel=1e-5, abs=1e-6)
    assert results["d_grad_norm"] == pytest.approx(np.sqrt(np.sum(grad_w**2) + grad_b**2), rel=1e-4)


def test_conditional_gan_needs_labels():
    model = _make_gan(tf.distribute.get_strategy(), num_classes=3)
    images, _ = _batch(3)
    with pytest.raises(ValueError, match="needs \\(images, labels\\)"):
        model.train_step(images)


@pytest.mark.parametrize("name", losses.LOSSES.names())
def test_losses_match_their_formulas(name):
    real = tf.constant([2.0, -1.0, 0.5])
    fake = tf.constant([-3.0, 0.0, 1.5])
    sig = tf.sigmoid
    d = losses.discriminator_loss(name, real, fake).numpy()
    g = losses.generator_loss(name, fake).numpy()
    if name in ("non_saturating", "minimax"):
        np.testing.assert_allclose(d, -np.log(sig(real)) - np.log(1 - sig(fake)), rtol=1e-5)
        expected_g = -np.log(sig(fake)) if name == "non_saturating" else np.log(1 - sig(fake))
        np.testing.assert_allclose(g, expected_g, rtol=1e-5)
    elif name == "hinge":
        np.testing.assert_allclose(d, np.maximum(0, 1 - real) + np.maximum(0, 1 + fake))
        np.testing.assert_allclose(g, -fake)
    elif name == "wgan_gp":
        np.testing.assert_allclose(d, fake - real)
        np.testing.assert_allclose(g, -fake)
    else:
        np.testing.assert_allclose(d, 0.5 * (real - 1) ** 2 + 0.5 * fake**2)
        np.testing.assert_allclose(g, 0.5 * (fake - 1) ** 2)


def test_losses_stay_finite_when_discriminator_saturates():
    # log(sigmoid(x)) underflows to -inf in float32 for x < -104; softplus doesn't.
    real, fake = tf.constant([-200.0]), tf.constant([200.0])
    for name in losses.LOSSES:
        assert np.isfinite(losses.discriminator_loss(name, real, fake).numpy()).all(), name
        assert np.isfinite(losses.generator_loss(name, fake).numpy()).all(), name


@pytest.mark.parametrize("resolution", dcgan.SUPPORTED_RESOLUTIONS)
@pytest.mark.parametrize("channels", [1, 3])
def test_networks_build_for_every_resolution(resolution, channels):
    g = dcgan.build_generator(resolution=resolution, channels=channels, latent_dim=4, width=2)
    d = dcgan.build_discriminator(resolution=resolution, channels=channels, width=2)
    images = g(tf.zeros([2, 4]))
    assert images.shape == (2, resolution, resolution, channels)
    assert d(images).shape == (2, 1)


def test_conditional_networks_take_labels():
    for conditioning in ("embedding", "conditional_batch_norm"):
        g = dcgan.build_generator(
            resolution=28,
            channels=1,
            latent_dim=4,
            width=2,
            num_classes=5,
            conditioning=conditioning,
        )
        d = dcgan.build_discriminator(resolution=28, channels=1, width=2, num_classes=5)
        labels = tf.constant([0, 4])
        images = g([tf.zeros([2, 4]), labels], training=True)
        assert images.shape == (2, 28, 28, 1)
        assert d([images, labels]).shape == (2, 1)


def test_unsupported_resolution_fails_clearly():
    with pytest.raises(ValueError, match="resolution 48 is not supported"):
        dcgan.build_generator(resolution=48, channels=1, latent_dim=4)


def test_28x28_data_through_the_32x32_networks():
    # model.network_resolution=32: the article's DCGAN geometry for MNIST-like data.
    g = dcgan.build_generator(
        resolution=28, channels=1, latent_dim=4, width=2, network_resolution=32
    )
    d = dcgan.build_discriminator(resolution=28, channels=1, width=2, network_resolution=32)
    plain_g = dcgan.build_generator(resolution=28, channels=1, latent_dim=4, width=2)
    images = g(tf.zeros([2, 4]))
    assert images.shape == (2, 28, 28, 1)
    assert d(images).shape == (2, 1)
    # One more upsampling layer than the 7 -> 14 -> 28 geometry.
    transposed = [layer for layer in g.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    plain_transposed = [
        layer for layer in plain_g.layers if isinstance(layer, keras.layers.Conv2DTranspose)
    ]
    assert len(transposed) == len(plain_transposed) + 1
    # D sees the image centred in a -1 (black) border.
    pad_input = keras.Model(d.inputs, d.get_layer(index=3).output)
    padded = pad_input(tf.fill([1, 28, 28, 1], 0.5)).numpy()[0, :, :, 0]
    assert padded.shape == (32, 32)
    np.testing.assert_allclose(padded[2:30, 2:30], 0.5)
    assert np.all(padded[:2] == -1) and np.all(padded[:, 30:] == -1)


@pytest.mark.parametrize("network_resolution", [16, 31, 48])
def test_bad_network_resolution_fails_clearly(network_resolution):
    with pytest.raises(ValueError, match="network_resolution|not supported"):
        dcgan.check_network_resolution(28, network_resolution)
