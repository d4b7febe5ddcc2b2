"""The StyleGAN2 generator (gan_keras.models.stylegan2) and what the train step adds for it."""

import json

import keras
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from configs import smoke
from gan_keras import images as gan_images
from gan_keras.controls import edits, latent_space
from gan_keras.models import architectures, dcgan, stylegan2
from gan_keras.training import gan as gan_lib
from pipeline.train import strategies, validation

LATENT = 8
RES = 16


def _direct_modulated_conv2d(x, weight, styles, demodulate):
    """The definition, one sample at a time: that sample's weights s_i * w_kij, divided by
    their norm per output channel when demodulating, then a plain convolution."""
    outputs = []
    for b in range(x.shape[0]):
        w = weight * styles[b][None, None, :, None]
        if demodulate:
            w = w / np.sqrt(np.sum(w**2, axis=(0, 1, 2)) + 1e-8)
        outputs.append(tf.nn.conv2d(x[b : b + 1], w.astype(np.float32), 1, "SAME").numpy())
    return np.concatenate(outputs)


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("kernel_size", [1, 3])
def test_modulated_conv_matches_per_sample_weights(demodulate, kernel_size):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6, 6, 5)).astype(np.float32)
    weight = rng.standard_normal((kernel_size, kernel_size, 5, 4)).astype(np.float32)
    # Styles far from 1 and different per sample, so a mix-up of samples or channels shows.
    styles = rng.uniform(0.2, 3.0, (3, 5)).astype(np.float32)
    got = stylegan2.modulated_conv2d(tf.constant(x), weight, styles, demodulate=demodulate)
    want = _direct_modulated_conv2d(x, weight, styles, demodulate)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-5)


def test_demodulation_gives_unit_variance_outputs_for_unit_variance_inputs():
    rng = np.random.default_rng(1)
    x = tf.constant(rng.standard_normal((16, 16, 16, 32)), tf.float32)
    weight = rng.standard_normal((3, 3, 32, 24)).astype(np.float32)
    styles = rng.uniform(0.1, 4.0, (16, 32)).astype(np.float32)
    demodulated = stylegan2.modulated_conv2d(x, weight, styles, demodulate=True).numpy()
    # Per sample and output channel, over the interior pixels (no zero padding there).
    std = demodulated[:, 1:-1, 1:-1, :].std(axis=(1, 2))
    assert np.mean(std) == pytest.approx(1.0, abs=0.05)
    assert np.all(np.abs(std - 1.0) < 0.3)
    # Without demodulation the scale follows the weights and styles, far from 1.
    plain = stylegan2.modulated_conv2d(x, weight, styles, demodulate=False).numpy()
    assert plain[:, 1:-1, 1:-1, :].std() > 5.0


def _generator(num_classes=0, resolution=RES, network_resolution=0):
    keras.utils.set_random_seed(1)
    return stylegan2.build_generator(
        resolution=resolution,
        channels=1,
        latent_dim=LATENT,
        width=4,
        w_dim=16,
        mapping_layers=2,
        num_classes=num_classes,
        network_resolution=network_resolution,
    )


def test_generator_shapes_parts_and_style_indices():
    g = _generator()
    z = tf.random.stateless_normal([3, LATENT], [0, 1])
    images = g(z)
    assert images.shape == (3, RES, RES, 1)
    assert float(tf.reduce_max(tf.abs(images))) <= 1.0
    parts = stylegan2.StyleParts(g)
    # 16x16: blocks 4, 8, 16 -> 1 + 2 + 2 convolutions, plus the last toRGB's row.
    assert parts.num_ws == 6
    assert parts.synthesis.conv_w_index == [0, 1, 2, 3, 4]
    assert parts.synthesis.rgb_w_index == [1, 3, 5]
    assert [shape[0] for shape in parts.synthesis.noise_shapes] == [4, 8, 8, 16, 16]
    # The parts, called one by one, make the generator's images (fixed noise at inference).
    w = parts.map(z)
    np.testing.assert_allclose(parts.synthesize(parts.broadcast(w)), images, atol=1e-6)
    assert not stylegan2.has_mapping_network(
        dcgan.build_generator(resolution=RES, channels=1, latent_dim=LATENT, width=2)
    )


def test_28x28_data_through_the_32x32_synthesis_and_labels():
    g = _generator(num_classes=3, resolution=28, network_resolution=32)
    images = g([tf.zeros([2, LATENT]), tf.constant([0, 2])])
    assert images.shape == (2, 28, 28, 1)
    # The label reaches the images (through the mapping's embedding).
    other = g([tf.zeros([2, LATENT]), tf.constant([1, 1])])
    assert float(tf.reduce_max(tf.abs(images - other))) > 1e-4
    with pytest.raises(ValueError, match="network_resolution=32"):
        stylegan2.build_generator(resolution=28, channels=1, latent_dim=4)


def test_every_style_row_reaches_its_layers_and_mixing_splits_coarse_from_fine():
    g = _generator()
    parts = stylegan2.StyleParts(g)
    w_a, w_b = tf.unstack(parts.map(tf.random.stateless_normal([2, LATENT], [3, 4]))[:, None])
    ws_a, ws_b = parts.broadcast(w_a), parts.broadcast(w_b)
    image_a = parts.synthesize(ws_a).numpy()
    # Row j alone changed: the image changes, so every row is read by some layer.
    for j in range(parts.num_ws):
        only_j = tf.tensor_scatter_nd_update(ws_a, [[0, j]], ws_b[:, j])
        assert np.abs(parts.synthesize(only_j).numpy() - image_a).max() > 1e-5, j
    for crossover in range(parts.num_ws + 1):
        mixed = stylegan2.mix_styles(ws_a, ws_b, crossover).numpy()
        np.testing.assert_array_equal(mixed[:, :crossover], ws_a.numpy()[:, :crossover])
        np.testing.assert_array_equal(mixed[:, crossover:], ws_b.numpy()[:, crossover:])
    # The 4x4 convolution reads row 0 only: a crossover of 1 keeps its output a's.
    mixed = stylegan2.mix_styles(ws_a, ws_b, 1)
    first = parts.synthesis.convs[0]
    const = tf.cast(parts.synthesis.const, tf.float32)
    np.testing.assert_array_equal(first((const, mixed[:, 0])), first((const, ws_a[:, 0])))


def _make_gan(
    strategy,
    *,
    style_mixing_prob=0.9,
    r1=0.0,
    r1_every=1,
    pl_weight=0.0,
    pl_every=2,
    ema=64.0,
    num_classes=0,
    lr=2e-3,
):
    with strategy.scope():
        g = _generator(num_classes=num_classes)
        d = dcgan.build_discriminator(
            resolution=RES, channels=1, width=4, norm="none", num_classes=num_classes
        )
        model = gan_lib.GAN(
            g,
            d,
            latent_dim=LATENT,
            num_classes=num_classes,
            ema_half_life_images=ema,
            ema_rampup=0.0,
            seed=3,
        )
        model.compile(
            keras.optimizers.Adam(lr, 0.0, 0.99),
            keras.optimizers.Adam(lr, 0.0, 0.99),
            r1_gamma=r1,
            r1_every=r1_every,
            style_mixing_prob=style_mixing_prob,
            pl_weight=pl_weight,
            pl_every=pl_every,
        )
    return model


def _batch(num_classes=0, size=8):
    images = tf.random.stateless_uniform([size, RES, RES, 1], [1, 2], -1, 1)
    labels = tf.random.stateless_uniform([size], [3, 4], 0, max(num_classes, 1), dtype=tf.int32)
    return (images, labels) if num_classes else images


def _state(model):
    weights = model.generator.get_weights() + model.discriminator.get_weights()
    weights += model.ema_generator.get_weights()
    if model.pl_mean is not None:
        weights.append(np.array(model.pl_mean.numpy()))
    return weights


def _max_diff(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))


def test_w_avg_tracks_the_mean_w_and_the_ema_generator_gets_it():
    model = _make_gan(tf.distribute.get_strategy(), style_mixing_prob=0.0)
    mapping = model.style.mapping
    assert not mapping.w_avg.trainable
    np.testing.assert_array_equal(mapping.w_avg.numpy(), 0.0)
    # The G update's latents (its own stream, after the critic's), through the mapping as it
    # is before the step (the D update does not touch G).
    z = tf.random.stateless_normal([8, LATENT], model._seed(0, model.n_critic, gan_lib._Z))
    batch_mean_w = np.mean(model.style.map(z).numpy(), axis=0)
    model.train_step(_batch())
    beta = stylegan2.W_AVG_BETA
    np.testing.assert_allclose(mapping.w_avg.numpy(), (1 - beta) * batch_mean_w, rtol=1e-5)
    np.testing.assert_array_equal(model.ema_style.mapping.w_avg.numpy(), mapping.w_avg.numpy())
    # Over steps it is the exponential moving average of the steps' batch means of w.
    frozen = _make_gan(tf.distribute.get_strategy(), style_mixing_prob=0.0, lr=0.0)
    expected = np.zeros(16, np.float32)
    for step in range(3):
        z = tf.random.stateless_normal([8, LATENT], frozen._seed(step, frozen.n_critic, gan_lib._Z))
        expected = beta * expected + (1 - beta) * np.mean(frozen.style.map(z).numpy(), axis=0)
        frozen.train_step(_batch())
    np.testing.assert_allclose(frozen.style.mapping.w_avg.numpy(), expected, rtol=1e-5, atol=1e-7)


def test_truncation_pulls_towards_w_avg():
    g = _generator()
    parts = stylegan2.StyleParts(g)
    parts.mapping.w_avg.assign(tf.fill([16], 0.5))
    z = tf.random.stateless_normal([3, LATENT], [5, 5])
    w = parts.map(z)
    np.testing.assert_allclose(parts.truncate(w, 1.0), w, atol=1e-6)
    np.testing.assert_allclose(parts.truncate(w, 0.0), tf.fill([3, 16], 0.5), atol=1e-6)
    # The controls' truncated images: psi 1 = plain samples, psi 0 = one image, w_avg's.
    # Two float32 graphs for the same images (w -> truncation(1) -> synthesis, and G's own):
    # their reductions differ by ~1e-6 (seen 1.04e-6 in CI), so images compare at 1e-5.
    np.testing.assert_allclose(latent_space.truncated_images(g, z, 1.0), g(z), atol=1e-5)
    at_zero = latent_space.truncated_images(g, z, 0.0).numpy()
    np.testing.assert_allclose(at_zero, np.repeat(at_zero[:1], 3, axis=0), atol=1e-6)
    average = parts.synthesize(parts.broadcast(tf.fill([1, 16], 0.5))).numpy()
    np.testing.assert_allclose(at_zero[:1], average, atol=1e-6)


def test_style_mixing_changes_training_only_through_the_second_latent():
    strategy = tf.distribute.get_strategy()
    plain = _make_gan(strategy, style_mixing_prob=0.0)
    mixed = _make_gan(strategy, style_mixing_prob=1.0)
    plain.train_step(_batch())
    mixed.train_step(_batch())
    assert _max_diff(plain.generator.get_weights(), mixed.generator.get_weights()) > 1e-6


@pytest.mark.slow
def test_lazy_r1_applies_every_r1_every_steps_scaled():
    model = _make_gan(tf.distribute.get_strategy(), r1=5.0, r1_every=3)
    step = tf.function(model.train_step)
    penalties = []
    for _ in range(4):
        for tracker in model.metrics:
            tracker.reset_state()
        penalties.append(float(step(_batch())["r1_penalty"]))
    assert penalties[0] > 0 and penalties[3] > 0
    assert penalties[1] == 0 and penalties[2] == 0


def test_path_length_penalty_needs_a_mapping_network():
    g = dcgan.build_generator(resolution=RES, channels=1, latent_dim=LATENT, width=2)
    d = dcgan.build_discriminator(resolution=RES, channels=1, width=2)
    model = gan_lib.GAN(g, d, latent_dim=LATENT)
    with pytest.raises(ValueError, match="pl_weight"):
        model.compile(keras.optimizers.Adam(), keras.optimizers.Adam(), pl_weight=1.0)


def _strategies():
    devices = tf.config.list_logical_devices("CPU")
    assert len(devices) == 2, "conftest splits the CPU in two logical devices"
    two = strategies.make_strategy("mirrored")
    assert two.num_replicas_in_sync == 2
    return tf.distribute.OneDeviceStrategy(devices[0].name), two


def _train(strategy, steps=2, num_classes=0, **kwargs):
    model = _make_gan(strategy, num_classes=num_classes, **kwargs)
    dataset = tf.data.Dataset.from_tensors(_batch(num_classes)).repeat()
    iterator = iter(strategy.experimental_distribute_dataset(dataset))

    @tf.function
    def step(it):
        return strategy.run(model.train_step, args=(next(it),))

    for _ in range(steps):
        step(iterator)
    metrics = {name: float(t.result()) for name, t in model.trackers.items()}
    return _state(model), metrics


@pytest.mark.slow
@pytest.mark.parametrize(
    "options",
    [
        dict(style_mixing_prob=1.0, r1=1.0, r1_every=2, pl_weight=2.0, pl_every=1),
        dict(num_classes=3, style_mixing_prob=0.9, r1=1.0),
    ],
    ids=["mixing_lazy_r1_path_length", "conditional"],
)
def test_two_replicas_match_one_replica_at_same_global_batch(options):
    one, two = _strategies()
    one_w, one_m = _train(one, steps=3, **options)
    two_w, two_m = _train(two, steps=3, **options)
    assert _max_diff(one_w, two_w) < 1e-5
    for name in one_m:
        assert two_m[name] == pytest.approx(one_m[name], rel=1e-4, abs=1e-5), name


@pytest.mark.heavy
@pytest.mark.slow
def test_checkpoint_resume_continues_exactly(tmp_path):
    options = dict(style_mixing_prob=0.9, r1=1.0, r1_every=2, pl_weight=2.0, pl_every=2)
    straight = _make_gan(tf.distribute.get_strategy(), **options)
    step = tf.function(straight.train_step)
    for _ in range(2):
        step(_batch())
    path = straight.checkpoint().save(str(tmp_path / "ckpt"))
    for _ in range(2):
        step(_batch())
    resumed = _make_gan(tf.distribute.get_strategy(), **options)
    # A different initialisation, so the restore has to bring everything back.
    resumed.generator.set_weights([w + 1.0 for w in resumed.generator.get_weights()])
    resumed.checkpoint().restore(path).assert_existing_objects_matched()
    assert int(resumed.step.numpy()) == 2
    step = tf.function(resumed.train_step)
    for _ in range(2):
        step(_batch())
    assert _max_diff(_state(resumed), _state(straight)) == 0
    assert float(straight.pl_mean.numpy()) != 0.0
    assert np.abs(straight.style.mapping.w_avg.numpy()).max() > 0


def _config(**model):
    config = smoke.get_config()
    config.model.architecture = "stylegan2"
    for key, value in model.items():
        config.model[key] = value
    return config


def test_architecture_is_validated_against_the_registry():
    assert set(architectures.ARCHITECTURES.names()) == {"dcgan", "stylegan2"}
    with pytest.raises(ValueError, match="model.architecture must be one of"):
        validation.validate_config(_config(architecture="stylegan3"))
    config = _config()
    config.data.resolution = 28
    with pytest.raises(ValueError, match="network_resolution=32"):
        validation.validate_config(config)
    config = _config(w_dim=0)
    with pytest.raises(ValueError, match="model.w_dim"):
        validation.validate_config(config)
    config = _config()
    config.train.style_mixing_prob = 1.5
    with pytest.raises(ValueError, match="style_mixing_prob"):
        validation.validate_config(config)
    config = _config(sync_batch_norm=True)
    config.train.r1_gamma, config.train.r1_every = 0.1, 4
    with pytest.raises(ValueError, match="lazy R1.*sync_batch_norm"):
        validation.validate_config(config)
    config.model.d_norm = "none"
    validation.validate_config(config)
    validation.validate_config(_config())
    # A config from before the field existed means the DCGAN.
    legacy = ml_collections.ConfigDict({"latent_dim": 4})
    assert architectures.architecture(legacy) == "dcgan"


@pytest.mark.heavy
@pytest.mark.slow
def test_smoke_pipeline_with_stylegan2_exports_style_mix(smoke_workdir, tmp_path):
    from helpers import copy_ingest_and_judge, run_pipeline

    copy_ingest_and_judge(smoke_workdir, tmp_path)
    run_pipeline(
        tmp_path,
        "--config.model.architecture=stylegan2",
        "--config.model.w_dim=32",
        "--config.model.mapping_layers=2",
        "--config.model.g_width=8",
        "--config.model.d_norm=none",
        "--config.train.r1_gamma=0.1",
        "--config.train.r1_every=4",
        "--config.train.steps=60",
        "--config.train.checkpoint_every=30",
        "--config.train.sample_every=30",
        "--config.evaluate.num_samples=200",
        # The evaluate stage's StyleGAN2 controls are measured in one process by
        # tests/pipeline/evaluate/test_control_metrics.py; here the export is what is checked.
        "--config.evaluate.controls=False",
        "--force_export",
    )
    versions = sorted((tmp_path / "export" / "generator").iterdir())
    export_dir = versions[-1]
    info = json.loads((export_dir / "assets.extra" / "model_info.json").read_text())
    assert "style_mix" in info["signatures"]
    loaded = tf.saved_model.load(str(export_dir))
    mix = loaded.signatures["style_mix"]
    coarse = tf.constant([1, 2], tf.int64)
    fine = tf.constant([3, 4, 5], tf.int64)
    num_ws = info["num_ws"]
    all_coarse = mix(seeds_coarse=coarse, seeds_fine=fine, crossover=tf.constant(num_ws))
    assert all_coarse["images"].shape == (6, 16, 16, 1)
    sample = loaded.signatures["sample"]
    for i, seed in enumerate([1, 2]):
        want = sample(num_samples=tf.constant(1), seed=tf.constant(seed, tf.int64))["images"]
        for j in range(3):
            np.testing.assert_array_equal(all_coarse["images"][i * 3 + j], want[0])
    all_fine = mix(seeds_coarse=coarse, seeds_fine=fine, crossover=tf.constant(0))
    for j, seed in enumerate([3, 4, 5]):
        want = sample(num_samples=tf.constant(1), seed=tf.constant(seed, tf.int64))["images"]
        for i in range(2):
            np.testing.assert_array_equal(all_fine["images"][i * 3 + j], want[0])
    # In between, row i / column j differs from both of its sources.
    half = mix(seeds_coarse=coarse, seeds_fine=fine, crossover=tf.constant(num_ws // 2))
    assert np.any(half["images"].numpy() != all_coarse["images"].numpy())
    assert np.any(half["images"].numpy() != all_fine["images"].numpy())


@pytest.mark.slow
def test_export_truncates_in_w_space_and_style_mixes_conditionally(tmp_path):
    from gan_keras.export import sampling_model as gan_export

    g = _generator(num_classes=3)
    parts = stylegan2.StyleParts(g)
    parts.mapping.w_avg.assign(tf.random.stateless_normal([16], [7, 7]))
    _, path = gan_export.export_generator(g, tmp_path, latent_dim=LATENT, num_classes=3)
    info = json.loads((path / "assets.extra" / "model_info.json").read_text())
    assert info["num_ws"] == parts.num_ws and info["truncation_space"] == "w"
    loaded = tf.saved_model.load(str(path))
    args = dict(num_samples=tf.constant(4), seed=tf.constant(5, tf.int64), label=tf.constant([2]))
    plain = loaded.signatures["sample"](**args)["images"].numpy()
    truncated = loaded.signatures["truncated_sample"]
    np.testing.assert_array_equal(truncated(truncation=tf.constant(1.0), **args)["images"], plain)
    # psi = 0: every sample is w_avg's image (noise is fixed at inference), whatever its z.
    at_zero = truncated(truncation=tf.constant(0.0), **args)["images"].numpy()
    assert np.all(at_zero == at_zero[:1]) and np.any(at_zero != plain)
    w_avg_image = parts.synthesize(parts.broadcast(parts.mapping.w_avg[None]))
    np.testing.assert_allclose(at_zero[0], gan_images.to_uint8_tensor(w_avg_image)[0], atol=1)
    # Not z-space truncation, whose psi = 0 would give the image of z = 0.
    z_zero = gan_images.to_uint8_tensor(g([tf.zeros([1, LATENT]), tf.constant([2])])).numpy()
    assert np.abs(z_zero[0].astype(int) - at_zero[0]).max() > 2
    with pytest.raises(tf.errors.InvalidArgumentError, match="truncation"):
        truncated(truncation=tf.constant(1.5), **args)
    mix = loaded.signatures["style_mix"]
    seeds = dict(seeds_coarse=tf.constant([5], tf.int64), seeds_fine=tf.constant([6, 7], tf.int64))
    grid = mix(crossover=tf.constant(parts.num_ws), label=tf.constant(2), **seeds)["images"]
    assert grid.shape == (2, RES, RES, 1)
    one = dict(num_samples=tf.constant(1), seed=tf.constant(5, tf.int64), label=tf.constant([2]))
    np.testing.assert_array_equal(grid[1], loaded.signatures["sample"](**one)["images"][0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="crossover"):
        mix(crossover=tf.constant(parts.num_ws + 1), label=tf.constant(2), **seeds)
    with pytest.raises(tf.errors.InvalidArgumentError, match="label"):
        mix(crossover=tf.constant(1), label=tf.constant(3), **seeds)


@pytest.mark.slow
def test_edits_and_projection_act_in_w_space_from_truncated_latents(tmp_path):
    """A StyleGAN2 export's edit takes w, and an edit grid at truncation psi starts from
    the images truncated_sample gives at that psi (it used to start from untruncated z)."""
    from gan_keras.client import sampling
    from gan_keras.client.model import LoadedModel
    from gan_keras.export import sampling_model as gan_export

    g = _generator(num_classes=3)
    parts = stylegan2.StyleParts(g)
    parts.mapping.w_avg.assign(tf.random.stateless_normal([16], [7, 7]))
    _, path = gan_export.export_generator(g, tmp_path, latent_dim=LATENT, num_classes=3)
    model = LoadedModel(path)
    assert model.info["control_space"] == {"name": "w", "dim": 16}
    assert sampling.control_space(model) == "w"
    assert set(model.input_specs["edit"]) == {"w", "direction", "strength"}  # w holds the class

    truncated = sampling.sample_images(model, num=3, seed=4, label=1, truncation=0.5)
    grid = sampling.edit_images(
        model, num=3, seed=4, direction=0, strengths=[-2.0, 0.0, 2.0], label=1, truncation=0.5
    )
    np.testing.assert_array_equal(grid[:, 1], truncated)
    assert np.any(grid[:, 0] != truncated) and np.any(grid[:, 2] != truncated)

    # edit(w) moves w by strength x the stored direction and draws it with the synthesis net.
    w, _ = sampling.sample_latents(model, num=2, seed=4, label=1, truncation=0.5)
    assert w.shape == (2, 16)
    out = model.run("edit", {"w": w, "direction": np.int32(1), "strength": np.float32(1.5)})
    vectors, entries = edits.build_directions(g, LATENT)
    np.testing.assert_allclose(out["w"], w + 1.5 * vectors[1], rtol=1e-5, atol=1e-6)
    want = parts.synthesize(parts.broadcast(tf.constant(out["w"])))
    np.testing.assert_allclose(out["images_float"], want, atol=1e-5)
    assert entries[0]["method"] == "style_affine_layers"

    # project fits w (from w_avg): an image the synthesis network drew from a w comes back.
    target_w = w[:1]
    target = gan_images.to_uint8_tensor(
        parts.synthesize(parts.broadcast(tf.constant(target_w)))
    ).numpy()
    fitted = sampling.project_image(model, target[0], steps=150, label=1)
    assert fitted["w"].shape == (16,)
    assert fitted["psnr"] > 30.0


def test_sefa_in_w_space_takes_the_style_weights_top_directions_one_w_std_long():
    g = _generator()
    weight = edits.style_affine_weight(g)  # [w_dim, sum of conv input channels]
    parts = stylegan2.StyleParts(g)
    assert weight.shape == (16, sum(int(c.affine.kernel.shape[1]) for c in parts.synthesis.convs))
    vectors, entries = edits.build_directions(g, LATENT, k=4)
    assert vectors.shape == (4, 16)
    norms = np.linalg.norm(vectors, axis=1)
    units = vectors / norms[:, None]
    # Each direction moves every layer's styles more than any direction after it, and the
    # first more than random unit directions do (the quadratic form SeFa maximises).
    moved = np.linalg.norm(units @ weight, axis=1)
    assert np.all(np.diff(moved) <= 1e-6)
    random = np.random.default_rng(0).standard_normal((200, 16))
    random /= np.linalg.norm(random, axis=1, keepdims=True)
    assert moved[0] >= np.linalg.norm(random @ weight, axis=1).max()
    # Stored length: the standard deviation of mapped prior draws along the direction.
    w = parts.map(tf.random.stateless_normal([20_000, LATENT], [1, 2])).numpy()
    np.testing.assert_allclose(norms, np.std(w @ units.T, axis=0), rtol=0.05)
    assert [e["w_std"] for e in entries] == pytest.approx(norms, rel=1e-5)
    # Extra (class) directions are w vectors too.
    with pytest.raises(ValueError, match=r"\(16,\) \(w-space\)"):
        edits.build_directions(g, LATENT, extra={"towards_x": np.ones(LATENT)})
