"""pipeline.class_directions and pipeline.evaluate.control_metrics (and control_plots): class
directions and the controls, measured, on 16x16 digits.

The generators are fakes whose behaviour is known: a lookup of training images
(variety, memorisation), a softmax blend of one prototype per class whose class
is argmax of a linear map of z (a correct "towards class" direction exists),
and a smooth random MLP (projection).
"""

import json
import pathlib
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from sklearn import datasets

from configs import default, fashion_mnist, smoke
from gan_keras import images
from gan_keras.data import records
from pipeline import class_directions, latent_images
from pipeline import judge as pipeline_judge
from pipeline.evaluate import control_metrics, control_plots, generator_eval, sample_fns, scoring
from pipeline.export import export_stage

LATENT = 16
NUM_SAMPLES = 300


# ----------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------


def _example(image, label, index):
    return records.make_example(
        images.encode_png(image),
        image.shape[0],
        image.shape[1],
        image.shape[2],
        label,
        f"digits:{index}",
    )


def write_ingest(workdir, num_train=1200):
    """sklearn's digits upscaled to 16x16 as an ingested, labelled workdir."""
    d = datasets.load_digits()
    x = np.clip(np.round(np.kron(d.images, np.ones((2, 2))) * 255.0 / 16.0), 0, 255).astype(
        np.uint8
    )
    x, y = x[..., None], d.target.astype(np.int64)
    ingest = pathlib.Path(workdir) / "ingest"
    ingest.mkdir(parents=True, exist_ok=True)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    for split, xs, ys in [
        (records.TRAIN, x[:num_train], y[:num_train]),
        (records.EVAL, x[num_train:], y[num_train:]),
    ]:
        with tf.io.TFRecordWriter(str(ingest / records.shard_name(split, 0, 1)), options) as w:
            for i, (image, label) in enumerate(zip(xs, ys, strict=True)):
                w.write(_example(image, label, i))
    (ingest / records.LABELS_FILE).write_text(json.dumps([f"digit {i}" for i in range(10)]))


def small_config():
    config = default.get_config()
    config.model.latent_dim = LATENT
    ev = config.evaluate
    ev.num_samples = NUM_SAMPLES
    ev.classifier_epochs = 1
    ev.classifier_min_steps = 300
    ev.classifier_batch_size = 64
    ev.kid_subsets = 5
    ev.kid_subset_size = 100
    ev.classifier_score_splits = 5
    ev.projection_images = 32
    ev.projection_steps = 60
    return config


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("controls")
    write_ingest(workdir)
    config = small_config()
    real = pipeline_judge.read_real_data(config, workdir)
    judge = pipeline_judge.load_judge(config, workdir, real)
    assert judge.has_class_probs and judge.eval_accuracy > 0.8
    return types.SimpleNamespace(workdir=workdir, config=config, real=real, judge=judge)


@pytest.fixture
def fake_train(monkeypatch):
    """pipeline.checkpoints.load_generator_with_info returns holder['generator']."""
    from pipeline import checkpoints

    holder = {}

    def load_generator_with_info(config, workdir, *args, **kwargs):
        return holder["generator"], {
            "checkpoint": "latest",
            "checkpoint_step": 100,
            "checkpoint_path": "ckpt-100",
        }

    monkeypatch.setattr(checkpoints, "load_generator_with_info", load_generator_with_info)
    return holder


# ----------------------------------------------------------------------------
# Fake generators
# ----------------------------------------------------------------------------


class Lookup(keras.layers.Layer):
    """Image number floor(Phi(z_0) * M) of a bank: uniform over the bank for z ~ N(0, I)."""

    def __init__(self, bank, **kwargs):
        super().__init__(**kwargs)
        self.bank = np.asarray(bank, np.float32)

    def call(self, z):
        u = 0.5 * (1.0 + keras.ops.erf(z[:, 0] / np.sqrt(2.0)))
        idx = keras.ops.cast(keras.ops.floor(u * (len(self.bank) - 1e-3)), "int32")
        return keras.ops.take(keras.ops.convert_to_tensor(self.bank), idx, axis=0)


def lookup_generator(real):
    """Memorises the training images, ordered by class (so truncation drops the end classes)."""
    order = np.argsort(real.train_labels, kind="stable")
    z = keras.Input((LATENT,))
    return keras.Model(z, Lookup(images.to_float(real.train_images[order]))(z))


def prototype_generator(data, scale=2.0, seed=0):
    """softmax(scale * Q z) blends one prototype per class: the judge's class is argmax(Q z),
    so row Q_c (orthonormal rows) is the true direction towards class c. Returns (G, Q)."""
    train_x, train_y = data.real.train_images, data.real.train_labels
    probs = data.judge.predict(train_x)[1]
    prototypes = np.stack(
        [train_x[train_y == c][np.argmax(probs[train_y == c, c])] for c in range(10)]
    )
    q = np.linalg.qr(np.random.default_rng(seed).standard_normal((LATENT, LATENT)))[0][:10]
    z = keras.Input((LATENT,))
    logits = keras.layers.Dense(10, use_bias=False)
    blend = keras.layers.Dense(16 * 16, use_bias=False)
    out = keras.layers.Reshape((16, 16, 1))(blend(keras.layers.Softmax()(logits(z))))
    model = keras.Model(z, out)
    logits.set_weights([(scale * q.T).astype(np.float32)])
    blend.set_weights([images.to_float(prototypes).reshape(10, -1)])
    return model, q


def smooth_generator(seed=0):
    keras.utils.set_random_seed(seed)
    z = keras.Input((LATENT,))
    h = keras.layers.Dense(64, activation="tanh")(z)
    h = keras.layers.Dense(16 * 16, activation="tanh")(h)
    return keras.Model(z, keras.layers.Reshape((16, 16, 1))(h))


def conditional_generator(data, seed=0):
    """G(z, label): the label's prototype (a training image), varied a little by z."""
    train_x, train_y = data.real.train_images, data.real.train_labels
    prototypes = np.stack([train_x[train_y == c][0] for c in range(10)])
    keras.utils.set_random_seed(seed)
    z = keras.Input((LATENT,))
    label = keras.Input((), dtype="int32")
    table = keras.layers.Embedding(10, 16 * 16)
    h = keras.layers.Add()([keras.layers.Flatten()(table(label)), keras.layers.Dense(16 * 16)(z)])
    out = keras.layers.Reshape((16, 16, 1))(keras.layers.Activation("tanh")(h))
    model = keras.Model([z, label], out)
    table.set_weights([np.arctanh(0.95 * images.to_float(prototypes)).reshape(10, -1)])
    return model


class _NoClassJudge:
    has_class_probs = False
    fingerprint = "rotation"


# ----------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field,value",
    [
        ("truncation_psis", ()),
        ("truncation_psis", (1.0, 1.5)),
        ("truncation_psis", (1.0, 1.0)),
        ("truncation_psis", ("1",)),
        ("projection_images", -1),
        ("projection_steps", -3),
        ("edit_strengths", ()),
        ("edit_strengths", (1.0, float("nan"))),
    ],
)
def test_validate_config_names_the_bad_field(field, value):
    config = default.get_config()
    setattr(config.evaluate, field, value)
    with pytest.raises(ValueError, match=f"config.evaluate.{field}="):
        control_metrics.validate_config(config)


@pytest.mark.parametrize(
    "field,value",
    [
        ("controls", 1),
        ("controls", None),
        ("truncation_psis", 0.5),
        ("projection_images", 2.0),
        ("projection_steps", True),
        ("edit_strengths", 2.0),
    ],
)
def test_validate_config_names_wrongly_typed_or_missing_fields(field, value):
    # ConfigDict refuses most type changes itself; a config not built from configs/default.py
    # (or an old one without the field) is still checked.
    fields = default.get_config().evaluate.to_dict()
    fields[field] = value
    if value is None:
        del fields[field]
    config = types.SimpleNamespace(evaluate=types.SimpleNamespace(**fields))
    with pytest.raises(ValueError, match=f"config.evaluate.{field}="):
        control_metrics.validate_config(config)


def test_shipped_configs_are_valid():
    for module in (default, smoke, fashion_mnist):
        control_metrics.validate_config(module.get_config())


def test_run_evaluate_rejects_a_bad_field_before_loading_anything(tmp_path, fake_train):
    config = small_config()
    config.evaluate.projection_steps = -1
    # No workdir contents and no generator: validation must come first.
    with pytest.raises(ValueError, match="config.evaluate.projection_steps"):
        generator_eval.run_evaluate(config, tmp_path, tmp_path / "evaluate")


# ----------------------------------------------------------------------------
# Truncation, nearest neighbours, the whole measurement
# ----------------------------------------------------------------------------


def test_truncation_trades_recall_and_psi_1_repeats_the_headline(data, tmp_path):
    config, real, judge = data.config, data.real, data.judge
    generator = lookup_generator(real)
    real_features = judge.features(real.eval_images)
    rows, kept = control_metrics.truncation_sweep(
        generator,
        judge,
        real_features,
        latent_dim=LATENT,
        psis=(1.0, 0.7, 0.5),
        num_samples=NUM_SAMPLES,
        seed=config.evaluate.seed,
        pr_k=config.evaluate.pr_k,
    )
    by_psi = {r["psi"]: r for r in rows}
    assert list(by_psi) == [1.0, 0.7, 0.5]
    # Shrinking z towards 0 loses the classes at both ends of the lookup.
    assert by_psi[0.5]["recall"] < by_psi[1.0]["recall"] - 0.1
    assert by_psi[0.5]["frechet_distance"] > by_psi[1.0]["frechet_distance"]
    assert by_psi[0.7]["recall"] <= by_psi[1.0]["recall"] + 0.02
    # The same latents, judge and real images as the evaluate stage's headline numbers.
    headline = scoring.compute_metrics(
        config,
        data.workdir,
        sample_fns.keras_sample_fn(generator, LATENT, False),
        conditional=False,
    )
    assert by_psi[1.0]["frechet_distance"] == pytest.approx(headline["frechet_distance"], rel=1e-9)
    assert by_psi[1.0]["recall"] == pytest.approx(headline["recall"])
    assert kept[1.0][0].shape == (NUM_SAMPLES, 16, 16, 1)

    path = tmp_path / "plot.png"
    control_plots.plot_truncation(rows, path)
    with Image.open(path) as image:
        assert image.size == control_plots.TRUNCATION_PLOT_SIZE == (760, 320)


def test_control_metrics_writes_both_pngs_and_flags_a_memoriser(data, tmp_path):
    config = data.config
    out = tmp_path / "evaluate"
    result = control_metrics.control_metrics(
        config, data.workdir, lookup_generator(data.real), data.judge, data.real, LATENT, 0, out
    )
    json.loads(json.dumps(result, allow_nan=False))  # strict JSON
    assert [r["psi"] for r in result["truncation"]["rows"]] == list(config.evaluate.truncation_psis)
    assert result["projection"]["num_images"] == 32 and result["projection"]["steps"] == 60
    assert set(result["seconds"]) == {
        "truncation",
        "projection",
        "class_directions",
        "nearest_neighbours",
        "total",
    }
    with Image.open(out / control_plots.TRUNCATION_PLOT) as image:
        assert image.size == (760, 320)
    with Image.open(out / control_plots.NEIGHBOURS_PLOT) as image:
        # 8 rows of (sample, gap, 5 neighbours), 16 px tiles upscaled x3 to 48 px, 2 px padding.
        assert (
            image.size == control_plots.neighbour_grid_size(8, 16, 16) == (7 * 50 + 2, 8 * 50 + 2)
        )
    near = result["nearest_neighbours"]
    # Every sample is a training image: distance 0, far below real eval images'.
    assert near["sample_mean_distance"] < 1e-6 < near["real_eval_mean_distance"]
    assert near["ratio"] < 0.01 and near["samples_closer_than_real_eval_5th_percentile"] == 1.0
    # Memorised training images: the nearest training image is the projection's equal.
    assert result["projection"]["nearest_train_psnr_mean"] > result["projection"]["psnr_mean"]


def test_control_metrics_of_a_conditional_generator(data, tmp_path):
    config = data.config
    result = control_metrics.control_metrics(
        config,
        data.workdir,
        conditional_generator(data),
        data.judge,
        data.real,
        LATENT,
        10,
        tmp_path,
    )
    json.loads(json.dumps(result, allow_nan=False))
    # The labels are the headline metrics' (balanced); the label chooses the class, so no
    # class directions, and the eval images are projected with their own labels.
    assert "conditional" in result["class_directions"]["skipped"]
    assert "conditional" in result["class_edits"]["skipped"]
    assert len(result["truncation"]["rows"]) == len(config.evaluate.truncation_psis)
    assert result["projection"]["num_images"] == 32
    assert result["projection"]["psnr_mean"] > 5.0
    assert (tmp_path / control_plots.NEIGHBOURS_PLOT).is_file()


def test_neighbour_grid_puts_each_sample_beside_its_neighbours():
    samples = np.full((2, 4, 4, 1), 200, np.uint8)
    neighbours = np.arange(2 * 5, dtype=np.uint8).reshape(2, 5, 1, 1, 1) * np.ones(
        (1, 1, 4, 4, 1), np.uint8
    )
    grid = control_plots.neighbour_grid(samples, neighbours)
    scale = control_plots._tile_scale(4)
    assert grid.shape[:2][::-1] == control_plots.neighbour_grid_size(2, 4, 4)
    tile = 4 * scale + 2
    assert grid[2, 2, 0] == 200 and grid[2, 2 + tile, 0] == 0  # sample, then the gap
    assert grid[2 + tile, 2 + 2 * tile + 4 * tile, 0] == neighbours[1, 4, 0, 0, 0]


# ----------------------------------------------------------------------------
# Projection
# ----------------------------------------------------------------------------


def test_projection_of_own_samples_beats_the_nearest_training_image(data):
    generator = smooth_generator()
    z = np.random.default_rng(5).standard_normal((24, LATENT)).astype(np.float32)
    own = images.to_uint8(generator(z, training=False).numpy())
    result = control_metrics.projection_metrics(
        generator, own, data.real.train_images, latent_dim=LATENT, steps=150, chunk=16
    )
    assert result["num_images"] == 24 and result["restarts"] >= 1
    assert result["psnr_mean"] > result["nearest_train_psnr_mean"] + 6.0
    assert result["fraction_better_than_nearest_train"] == 1.0


# ----------------------------------------------------------------------------
# Class directions and edits
# ----------------------------------------------------------------------------


def test_class_direction_of_a_linear_class_generator_edits_to_that_class(data):
    generator, q = prototype_generator(data)
    directions, info = class_directions.class_directions_with_info(
        generator, data.judge, LATENT, 0, class_names=[f"digit {i}" for i in range(10)]
    )
    assert sorted(directions) == sorted(f"towards_digit_{i}" for i in range(10)) == info["fitted"]
    for name, vector in directions.items():
        c = info["classes"][name]["class"]
        assert vector.shape == (LATENT,) and vector.dtype == np.float32
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
        # The true direction is Q_c (minus a little of the other rows).
        assert vector @ q[c] > 0.8, (name, vector @ q[c])
    assert class_directions.class_directions(generator, data.judge, LATENT, 0).keys() == {
        f"towards_{i}" for i in range(10)
    }

    edits = control_metrics.edit_metrics(
        generator, data.judge, directions, info, latent_dim=LATENT, strengths=(1.0, 4.0)
    )
    low, high = edits["by_strength"]
    assert (low["strength"], high["strength"]) == (1.0, 4.0)
    assert high["success_rate"] > 0.9 and high["flip_rate"] > 0.9
    assert high["success_rate_random"] < 0.3
    assert low["success_rate"] < high["success_rate"]
    assert 0.05 < edits["base_rate"] < 0.2
    assert high["mean_abs_pixel_change"] > 0
    assert set(edits["per_class"]) == set(directions)


def test_no_class_directions_for_conditional_models_or_unlabelled_data(data):
    generator, _ = prototype_generator(data)
    directions, info = class_directions.class_directions_with_info(
        generator, data.judge, LATENT, 10
    )
    assert directions == {} and "conditional" in info["skipped"]
    directions, info = class_directions.class_directions_with_info(
        generator, _NoClassJudge(), LATENT, 0
    )
    assert directions == {} and "unlabelled" in info["skipped"]


def test_a_class_the_generator_never_makes_gets_no_direction(data):
    # z_0 pinned to 0: one image (one class) only.
    z = keras.Input((LATENT,))
    pinned = keras.Model(
        z,
        Lookup(images.to_float(data.real.train_images))(keras.layers.Lambda(lambda v: v * 0.0)(z)),
    )
    directions, info = class_directions.class_directions_with_info(
        pinned, data.judge, LATENT, 0, num_samples=512
    )
    assert directions == {}
    assert all("skipped" in entry for entry in info["classes"].values())


def test_nearest_matches_brute_force_in_small_blocks():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (57, 4, 4, 1), dtype=np.uint8)
    queries = np.concatenate([base[[3, 40]], rng.integers(0, 256, (9, 4, 4, 1), dtype=np.uint8)])
    full = np.sqrt(
        ((queries.reshape(11, 1, -1).astype(np.float64) - base.reshape(1, 57, -1)) ** 2).sum(axis=2)
    )
    for max_entries in (16, 100, 10**7):  # blocks of 1 base row and 1 query row, ..., everything
        distances, indices = control_metrics._nearest(queries, base, 3, max_entries=max_entries)
        np.testing.assert_allclose(distances, np.sort(full, axis=1)[:, :3], atol=1e-6)
        np.testing.assert_allclose(np.take_along_axis(full, indices, axis=1), distances, atol=1e-6)
        assert list(indices[:2, 0]) == [3, 40] and distances[0, 0] == 0.0


def test_direction_names_are_identifier_like_and_unique():
    names = class_directions._direction_names(["T-shirt/top", "Ankle boot", "a b", "a/b", ""], 6)
    assert names == [
        "towards_T-shirt_top",
        "towards_Ankle_boot",
        "towards_a_b",
        "towards_a_b_3",
        "towards_4",
        "towards_5",
    ]


# ----------------------------------------------------------------------------
# The stages
# ----------------------------------------------------------------------------


@pytest.mark.slow
def test_evaluate_measures_and_export_ships_the_class_directions(data, fake_train, tmp_path):
    workdir = tmp_path / "work"
    workdir.joinpath("ingest").mkdir(parents=True)
    for path in (data.workdir / "ingest").iterdir():
        (workdir / "ingest" / path.name).write_bytes(path.read_bytes())
    judge_dir = workdir / "judge"
    judge_dir.mkdir()
    for path in (data.workdir / "judge").iterdir():
        (judge_dir / path.name).write_bytes(path.read_bytes())
    generator, _ = prototype_generator(data)
    fake_train["generator"] = generator
    config = data.config

    metrics = generator_eval.run_evaluate(config, workdir, workdir / "evaluate")
    controls = json.loads((workdir / "evaluate" / "metrics.json").read_text())["controls"]
    assert controls == json.loads(json.dumps(metrics["controls"]))
    assert (workdir / "evaluate" / control_plots.TRUNCATION_PLOT).is_file()
    assert (workdir / "evaluate" / control_plots.NEIGHBOURS_PLOT).is_file()
    fitted = controls["class_directions"]["fitted"]
    assert len(fitted) == 10
    assert controls["class_edits"]["by_strength"][-1]["success_rate"] > 0.9
    assert controls["truncation"]["rows"][0]["frechet_distance"] == pytest.approx(
        metrics["frechet_distance"]
    )

    summary = export_stage.run_export(config, workdir, workdir / "export")
    assert summary["exported"] is True
    path = pathlib.Path(summary["path"])
    entries = json.loads((path / "assets.extra" / "directions.json").read_text())
    kinds = [e["kind"] for e in entries]
    assert kinds == ["sefa"] * kinds.count("sefa") + ["class"] * 10  # class ones after SeFa's
    class_entries = {e["name"]: e["index"] for e in entries if e["kind"] == "class"}
    assert sorted(class_entries) == sorted(fitted)
    info = json.loads((path / "assets.extra" / "model_info.json").read_text())
    assert info["class_directions"]["fitted"] == fitted
    assert info["class_directions"]["judge_fingerprint"] == data.judge.fingerprint

    # The exported edit signature, along towards_digit_3, makes 3s.
    edit = tf.saved_model.load(str(path)).signatures["edit"]
    z = tf.constant(np.random.default_rng(9).standard_normal((64, LATENT)).astype(np.float32))
    out = edit(
        z=z, direction=tf.constant(class_entries["towards_digit_3"]), strength=tf.constant(4.0)
    )
    predicted = np.argmax(data.judge.predict(out["images"].numpy())[1], axis=1)
    assert np.mean(predicted == 3) > 0.9


def test_export_directions_without_an_evaluation_or_for_conditional_models(data, tmp_path):
    generator, _ = prototype_generator(data)
    config = data.config
    directions, info = class_directions.export_directions(config, data.workdir, generator, 0, None)
    assert directions is None and "evaluate" in info["class_directions"]["skipped"]
    stale = json.dumps({"classifier": {"fingerprint": "another judge"}}).encode()
    directions, info = class_directions.export_directions(config, data.workdir, generator, 0, stale)
    assert directions is None and "not the judge" in info["class_directions"]["skipped"]
    directions, info = class_directions.export_directions(config, data.workdir, generator, 3, None)
    assert directions is None and "conditional" in info["class_directions"]["skipped"]


def test_truncation_sweep_truncates_a_mapping_network_in_w_space():
    """For StyleGAN2 psi scales w towards the tracked w_avg, as the export's truncated_sample
    does; scaling z would leave w-space's average and miss the truncation trick."""
    from gan_keras.models import stylegan2

    generator = stylegan2.build_generator(resolution=16, channels=1, latent_dim=4, width=4)
    style = stylegan2.StyleParts(generator)
    style.mapping.w_avg.assign(tf.random.stateless_normal(style.mapping.w_avg.shape, [1, 2]))
    z = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    at_zero = latent_images.generate(generator, z, psi=0.0)
    average = style.synthesize(style.broadcast(style.mapping.w_avg[None]))
    # A batch of 5 against a batch of 1: equal to float rounding, so to one uint8 level.
    np.testing.assert_allclose(
        at_zero.astype(int), np.repeat(images.to_uint8(average.numpy()), 5, 0).astype(int), atol=1
    )
    zero_z = images.to_uint8(generator(np.zeros((1, 4), np.float32), training=False).numpy())
    assert np.abs(at_zero[:1].astype(int) - zero_z.astype(int)).max() > 10
    np.testing.assert_array_equal(
        latent_images.generate(generator, z, psi=1.0),
        latent_images.generate(generator, z),
    )


def test_truncation_sweep_scales_z_of_a_conditional_dcgan():
    from gan_keras.models import dcgan

    generator = dcgan.build_generator(
        resolution=16, channels=1, latent_dim=4, width=2, num_classes=3
    )
    z = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2])
    expected = generator([0.5 * z, labels.astype(np.int32)], training=False).numpy()
    np.testing.assert_array_equal(
        latent_images.generate(generator, z, labels, psi=0.5), images.to_uint8(expected)
    )


def test_stylegan2_controls_are_measured_in_w_space(data):
    """Projection fits w, class directions are w vectors, and edit metrics move w by
    directions one w standard deviation long, as the export's edit signature does."""
    from gan_keras.controls import latent_space
    from gan_keras.models import stylegan2

    keras.utils.set_random_seed(3)
    generator = stylegan2.build_generator(
        resolution=16, channels=1, latent_dim=LATENT, width=8, w_dim=12, mapping_layers=2
    )
    z = np.random.default_rng(5).standard_normal((16, LATENT)).astype(np.float32)
    own = images.to_uint8(latent_space.truncated_images(generator, z, 0.7).numpy())
    projected = control_metrics.projection_metrics(
        generator, own, data.real.train_images, latent_dim=LATENT, steps=100, chunk=16
    )
    assert projected["psnr_mean"] > projected["nearest_train_psnr_mean"] + 6.0

    directions, info = class_directions.class_directions_with_info(
        generator, data.judge, LATENT, 0, num_samples=512
    )
    assert info["space"] == "w"
    assert all(v.shape == (12,) for v in directions.values())

    unit = np.eye(12, dtype=np.float32)[0]
    edits = control_metrics.edit_metrics(
        generator,
        data.judge,
        {"towards_digit_0": unit},
        {"classes": {"towards_digit_0": {"class": 0}}},
        latent_dim=LATENT,
        strengths=(0.0, 3.0),
        num_samples=64,
    )
    still, moved = edits["by_strength"]
    assert still["mean_abs_pixel_change"] == 0.0 == still["mean_abs_pixel_change_random"]
    assert moved["mean_abs_pixel_change"] > 0.0
