"""Controllable generation: truncation, interpolation, projection and edits, in the SavedModel."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_keras.controls import edits, interpolation, latent_space, projection
from gan_keras.export import sampling_model as gan_export
from gan_keras.models import dcgan

LATENT = 12  # more than the 8 SeFa directions, so the top-k choice is exercised
CLASSES = 3
RESOLUTION = 16
PROJECT_STEPS = 200  # ~0.3 s here; the recovered PSNR is ~60 dB vs ~15-20 dB baselines


def varied_generator(
    num_classes: int = 0, conditioning: str = "embedding", seed: int = 0
) -> keras.Model:
    """A small dcgan.build_generator DCGAN whose samples differ a lot.

    DCGAN's N(0, 0.02) initialisation makes every untrained sample nearly the
    same grey image, which would make any reconstruction look good; kernels
    are redrawn variance-preserving and the class tables at unit scale.
    """
    keras.utils.set_random_seed(seed)
    g = dcgan.build_generator(
        resolution=RESOLUTION,
        channels=1,
        latent_dim=LATENT,
        width=8,
        num_classes=num_classes,
        conditioning=conditioning,
    )
    rng = np.random.default_rng(seed)
    for layer in g.layers:
        if isinstance(layer, keras.layers.Dense):
            fan_in = layer.kernel.shape[0]
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            # A stride-2 transposed 4x4 conv sums over 2x2 taps per output pixel.
            fan_in = layer.kernel.shape[-1] * 4
        elif isinstance(layer, keras.layers.Embedding):
            layer.embeddings.assign(rng.standard_normal(layer.embeddings.shape).astype(np.float32))
            continue
        elif isinstance(layer, dcgan.ConditionalBatchNormalization):
            gamma, beta = layer.gamma.embeddings, layer.beta.embeddings
            gamma.assign(1.0 + 0.5 * rng.standard_normal(gamma.shape).astype(np.float32))
            beta.assign(0.5 * rng.standard_normal(beta.shape).astype(np.float32))
            continue
        else:
            continue
        kernel = layer.kernel
        kernel.assign(rng.standard_normal(kernel.shape).astype(np.float32) * np.sqrt(2.0 / fan_in))
    return g


EXPORTS = {
    "uncond": dict(num_classes=0),
    "cond_embedding": dict(num_classes=CLASSES, conditioning="embedding"),
    "cond_cbn": dict(num_classes=CLASSES, conditioning="conditional_batch_norm"),
}
CONDITIONAL = ["cond_embedding", "cond_cbn"]
EXTRA_DIRECTION = np.linspace(-1.0, 1.0, LATENT).astype(np.float32) * 3.0


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> (generator, path, loaded SavedModel) for each kind of generator."""
    base = tmp_path_factory.mktemp("controls")
    out = {}
    for name, kwargs in EXPORTS.items():
        g = varied_generator(**kwargs)
        extra = {"towards_class_1": EXTRA_DIRECTION} if name == "cond_embedding" else None
        _, path = gan_export.export_generator(
            g, base / name, latent_dim=LATENT, num_classes=kwargs["num_classes"], directions=extra
        )
        out[name] = (g, path, tf.saved_model.load(str(path)))
    return out


def _int(value, dtype=tf.int32):
    return tf.constant(value, dtype)


def _sample(model, num, seed, label=None):
    kwargs = {"num_samples": _int(num), "seed": _int(seed, tf.int64)}
    if label is not None:
        kwargs["label"] = _int(label)
    return {k: v.numpy() for k, v in model.signatures["sample"](**kwargs).items()}


def _truncated(model, num, seed, psi, label=None):
    kwargs = {
        "num_samples": _int(num),
        "seed": _int(seed, tf.int64),
        "truncation": tf.constant(psi, tf.float32),
    }
    if label is not None:
        kwargs["label"] = _int(label)
    return {k: v.numpy() for k, v in model.signatures["truncated_sample"](**kwargs).items()}


def _labels_for(name, labels):
    return labels if name in CONDITIONAL else None


# --- model_info.json and directions.json ---------------------------------------------


@pytest.mark.parametrize("name", list(EXPORTS))
def test_signatures_listed(exported, name):
    _, path, model = exported[name]
    info = json.loads((path / "assets.extra" / "model_info.json").read_text())
    expected = {
        "serving_default",
        "serving_default_png",
        "sample",
        "sample_png",
        "truncated_sample",
        "interpolate",
        "project",
        "edit",
    }
    assert set(info["signatures"]) == expected == set(model.signatures)
    assert (
        info["label_interpolation"]
        == {"uncond": None, "cond_embedding": "embedding", "cond_cbn": "switch"}[name]
    )


@pytest.mark.parametrize("name", list(EXPORTS))
def test_directions_json_matches_the_directions(exported, name):
    g, path, _ = exported[name]
    entries = json.loads((path / "assets.extra" / "directions.json").read_text())
    extra = {"towards_class_1": EXTRA_DIRECTION} if name == "cond_embedding" else None
    vectors, expected = edits.build_directions(g, LATENT, extra=extra)
    assert entries == expected
    assert [e["index"] for e in entries] == list(range(len(entries)))
    assert [e["name"] for e in entries[:8]] == [f"sefa_{i}" for i in range(8)]
    assert all(e["kind"] == "sefa" and e["method"] == "first_dense_layer" for e in entries[:8])
    if extra:
        assert entries[8:] == [
            {
                "index": 8,
                "name": "towards_class_1",
                "kind": "class",
                "input_norm": pytest.approx(np.linalg.norm(EXTRA_DIRECTION)),
            }
        ]
    else:
        assert len(entries) == 8
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


# --- SeFa -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(EXPORTS))
def test_sefa_directions_are_orthonormal_top_eigenvectors(exported, name):
    g, _, _ = exported[name]
    vectors, names = edits.sefa_directions(g, LATENT, 8)
    assert vectors.shape == (8, LATENT) and vectors.dtype == np.float32
    assert names == [f"sefa_{i}" for i in range(8)]
    np.testing.assert_allclose(vectors @ vectors.T, np.eye(8), atol=1e-5)
    # Reference: eigenvectors of A^T A for the rows of the first Dense kernel that take z
    # (the first LATENT of the [z, label embedding] concatenation when conditioned so).
    dense = next(layer for layer in g.layers if isinstance(layer, keras.layers.Dense))
    kernel = dense.kernel.numpy().astype(np.float64)
    expected_rows = 2 * LATENT if name == "cond_embedding" else LATENT
    assert kernel.shape[0] == expected_rows
    z_rows = kernel[:LATENT]
    values, reference = np.linalg.eigh(z_rows @ z_rows.T)
    reference = reference[:, np.argsort(values)[::-1][:8]].T
    np.testing.assert_allclose(np.abs(np.sum(vectors * reference, axis=1)), 1.0, atol=1e-4)
    _, eigenvalues, _ = edits.sefa_directions_with_info(g, LATENT, 8)
    assert np.all(np.diff(eigenvalues) <= 0)
    np.testing.assert_allclose(eigenvalues, np.sort(values)[::-1][:8], rtol=1e-6)


def test_sefa_without_a_recognised_first_layer_uses_the_jacobian():
    """For a linear generator the Jacobian's J^T J is SeFa's A^T A: same directions."""
    keras.utils.set_random_seed(3)
    z = keras.Input((LATENT,))
    dense = keras.layers.Dense(16, use_bias=False)
    direct = keras.Model(z, keras.layers.Reshape((4, 4, 1))(dense(z)))
    # The reshape hides that the Dense layer reads z, so SeFa's closed form does not apply.
    z = keras.Input((LATENT,))
    hidden_dense = keras.layers.Dense(16, use_bias=False)
    hidden_input = keras.layers.Reshape((LATENT,))(z)
    hidden = keras.Model(z, keras.layers.Reshape((4, 4, 1))(hidden_dense(hidden_input)))
    hidden_dense.kernel.assign(dense.kernel)
    assert edits.first_layer_z_weight(hidden, LATENT) is None
    closed, closed_values, closed_method = edits.sefa_directions_with_info(direct, LATENT, 5)
    fallback, fallback_values, method = edits.sefa_directions_with_info(hidden, LATENT, 5)
    assert (closed_method, method) == ("first_dense_layer", "jacobian_at_mean_latent")
    np.testing.assert_allclose(fallback, closed, atol=1e-4)
    np.testing.assert_allclose(fallback_values, closed_values, rtol=1e-4)


def test_sefa_k_validated():
    g = varied_generator()
    with pytest.raises(ValueError, match="k must be"):
        edits.sefa_directions(g, LATENT, LATENT + 1)
    vectors, names = edits.sefa_directions(g, LATENT, LATENT)
    np.testing.assert_allclose(vectors @ vectors.T, np.eye(LATENT), atol=1e-5)


@pytest.mark.parametrize(
    "extra,match",
    [
        ({"sefa_0": np.ones(LATENT)}, "already"),
        ({"": np.ones(LATENT)}, "non-empty"),
        ({"x": np.ones(LATENT + 1)}, "shape"),
        ({"x": np.zeros(LATENT)}, "non-zero"),
        ({"x": np.full(LATENT, np.nan)}, "finite"),
    ],
)
def test_bad_extra_directions_rejected_before_writing(tmp_path, extra, match):
    with pytest.raises(ValueError, match=match):
        gan_export.export_generator(
            varied_generator(), tmp_path / "g", latent_dim=LATENT, directions=extra
        )
    assert not (tmp_path / "g").exists()


def test_directions_asset_name_reserved(tmp_path):
    with pytest.raises(ValueError, match="extra_assets"):
        gan_export.export_generator(
            varied_generator(),
            tmp_path / "g",
            latent_dim=LATENT,
            extra_assets={"directions.json": "[]"},
        )


def test_small_latent_gets_one_direction_per_dimension(tmp_path):
    keras.utils.set_random_seed(0)
    g = dcgan.build_generator(resolution=16, channels=1, latent_dim=3, width=4)
    _, path = gan_export.export_generator(g, tmp_path / "g", latent_dim=3)
    entries = json.loads((path / "assets.extra" / "directions.json").read_text())
    assert [e["name"] for e in entries] == ["sefa_0", "sefa_1", "sefa_2"]


# --- truncation -------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(EXPORTS))
def test_truncation_one_is_sample(exported, name):
    _, _, model = exported[name]
    for label in ([], [2]) if name in CONDITIONAL else (None,):
        expected = _sample(model, 6, 11, label)
        got = _truncated(model, 6, 11, 1.0, label)
        np.testing.assert_array_equal(got["images"], expected["images"])
        np.testing.assert_array_equal(got["images_float"], expected["images_float"])
    z = tf.random.stateless_normal([6, LATENT], seed=[11, 0]).numpy()
    np.testing.assert_array_equal(got["z"], z)
    half = _truncated(model, 6, 11, 0.5, _labels_for(name, []))
    np.testing.assert_allclose(half["z"], 0.5 * z, rtol=1e-6)


@pytest.mark.parametrize("name", list(EXPORTS))
def test_truncation_zero_collapses(exported, name):
    _, _, model = exported[name]
    if name not in CONDITIONAL:
        images = _truncated(model, 5, 3, 0.0)["images"]
        assert all(np.array_equal(image, images[0]) for image in images)
        return
    labels = [0, 1, 2, 0, 1, 2]
    out = _truncated(model, 6, 3, 0.0, labels)
    np.testing.assert_array_equal(out["label"], labels)
    images = out["images"]
    for c in range(CLASSES):
        np.testing.assert_array_equal(images[c], images[c + CLASSES])
    assert not np.array_equal(images[0], images[1]) and not np.array_equal(images[1], images[2])
    # With random labels, too, equal labels give equal images.
    random = _truncated(model, 12, 4, 0.0, [])
    for i in range(12):
        np.testing.assert_array_equal(random["images"][i], images[random["label"][i]])


@pytest.mark.parametrize("psi", [-0.1, 1.5, float("nan")])
@pytest.mark.parametrize("name", ["uncond", "cond_cbn"])
def test_truncation_out_of_range_rejected(exported, name, psi):
    _, _, model = exported[name]
    with pytest.raises(tf.errors.InvalidArgumentError, match="truncation"):
        _truncated(model, 2, 0, psi, _labels_for(name, []))


# --- interpolation ----------------------------------------------------------------------


def _interpolate(model, seed_a, seed_b, steps, labels=None):
    kwargs = {
        "seed_a": _int(seed_a, tf.int64),
        "seed_b": _int(seed_b, tf.int64),
        "steps": _int(steps),
    }
    if labels is not None:
        kwargs.update(label_a=_int(labels[0]), label_b=_int(labels[1]))
    return {k: v.numpy() for k, v in model.signatures["interpolate"](**kwargs).items()}


@pytest.mark.parametrize("name", list(EXPORTS))
def test_interpolation_end_points_are_samples(exported, name):
    _, _, model = exported[name]
    conditional = name in CONDITIONAL
    labels = (0, 2) if conditional else None
    out = _interpolate(model, 5, 9, 7, labels)
    assert out["images"].shape == (7, RESOLUTION, RESOLUTION, 1)
    first = _sample(model, 1, 5, [0] if conditional else None)
    last = _sample(model, 1, 9, [2] if conditional else None)
    # A batch of 7 and a batch of 1 may sum in another order (oneDNN picks kernels by batch
    # size): equal to float rounding, and so to one uint8 level.
    for key, atol in (("images", 1), ("images_float", 1e-5)):
        for got, want in ((out[key][0], first[key][0]), (out[key][-1], last[key][0])):
            np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), atol=atol)
    middle = out["images_float"][3]
    assert not np.allclose(middle, first["images_float"][0], atol=1e-2)
    assert not np.allclose(middle, last["images_float"][0], atol=1e-2)
    # Slerp between two draws keeps the norm near theirs instead of dipping towards 0.
    norms = np.linalg.norm(out["z"], axis=1)
    assert norms.min() > 0.9 * min(norms[0], norms[-1])
    if conditional:
        np.testing.assert_array_equal(out["label"], [0, 0, 0, 2, 2, 2, 2])


def test_class_interpolation_through_the_embedding(exported):
    """Same z, labels 0 -> 2: the embedding generator morphs, the switch one jumps half way."""
    morph = _interpolate(exported["cond_embedding"][2], 5, 5, 3, (0, 2))["images_float"]
    jump = _interpolate(exported["cond_cbn"][2], 5, 5, 3, (0, 2))["images_float"]
    np.testing.assert_array_equal(jump[1], jump[2])
    assert not np.allclose(morph[1], morph[0], atol=1e-2)
    assert not np.allclose(morph[1], morph[2], atol=1e-2)


@pytest.mark.parametrize("steps", [1, 0, -3])
@pytest.mark.parametrize("name", ["uncond", "cond_embedding"])
def test_interpolation_needs_two_steps(exported, name, steps):
    _, _, model = exported[name]
    with pytest.raises(tf.errors.InvalidArgumentError, match="steps must be >= 2"):
        _interpolate(model, 1, 2, steps, (0, 1) if name in CONDITIONAL else None)


@pytest.mark.parametrize("name", CONDITIONAL)
def test_interpolation_label_out_of_range(exported, name):
    _, _, model = exported[name]
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_classes"):
        _interpolate(model, 1, 2, 3, (0, CLASSES))


def test_slerp_end_points_and_degenerate_cases():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, LATENT)).astype(np.float32)
    path = interpolation.slerp(a, b, 6).numpy()
    np.testing.assert_array_equal(path[0], a)
    np.testing.assert_array_equal(path[-1], b)
    # Orthogonal unit vectors: every point stays on the unit circle, evenly spaced in angle.
    e0, e1 = np.eye(LATENT, dtype=np.float32)[:2]
    arc = interpolation.slerp(e0, e1, 5).numpy()
    np.testing.assert_allclose(np.linalg.norm(arc, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(arc[2], (e0 + e1) / np.sqrt(2), atol=1e-6)
    # Parallel, anti-parallel and zero latents fall back to the straight line, without NaNs.
    t = np.linspace(0, 1, 4, dtype=np.float32)[:, None]
    for other in (2 * a, -a, np.zeros_like(a)):
        line = interpolation.slerp(a, other, 4).numpy()
        assert np.all(np.isfinite(line))
        np.testing.assert_allclose(line, (1 - t) * a + t * other, atol=1e-6)
    line = interpolation.slerp(np.zeros_like(a), a, 2).numpy()
    np.testing.assert_array_equal(line, [np.zeros_like(a), a])
    with pytest.raises(tf.errors.InvalidArgumentError, match="steps"):
        interpolation.slerp(a, b, 1)


# --- projection -------------------------------------------------------------------------


def _project(model, images, steps, labels=None):
    kwargs = {"images": tf.constant(images, tf.uint8), "steps": _int(steps)}
    if labels is not None:
        kwargs["label"] = _int(labels)
    return {k: v.numpy() for k, v in model.signatures["project"](**kwargs).items()}


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2, axis=(-3, -2, -1))
    return 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("name", list(EXPORTS))
def test_projection_recovers_the_generators_own_samples(exported, name):
    _, _, model = exported[name]
    conditional = name in CONDITIONAL
    labels = [0, 1, 2, 0, 1, 2] if conditional else None
    targets = _sample(model, 6, 21, labels)["images"]
    # Baseline: the nearest of 300 other samples (of the target's class).
    if conditional:
        pools = {c: _sample(model, 300, 22, [c])["images"] for c in range(CLASSES)}
        nearest = np.array([_psnr(pools[c], t).max() for c, t in zip(labels, targets, strict=True)])
    else:
        pool = _sample(model, 300, 22)["images"]
        nearest = np.array([_psnr(pool, t).max() for t in targets])
    assert nearest.max() < 30  # the samples really do differ

    out = _project(model, targets, PROJECT_STEPS, labels)
    assert out["z"].shape == (6, LATENT) and out["z"].dtype == np.float32
    assert out["reconstructions"].shape == targets.shape
    assert out["reconstructions"].dtype == np.uint8
    np.testing.assert_allclose(out["psnr"], _psnr(out["reconstructions"], targets), rtol=1e-5)
    assert np.all(out["psnr"] > 40.0), out["psnr"]
    assert np.all(out["psnr"] > nearest + 15.0), (out["psnr"], nearest)
    # The latents are the point: generating from them gives the reconstructions back.
    serve = {"z": tf.constant(out["z"])}
    if conditional:
        serve["label"] = _int(labels)
    regenerated = model.signatures["serving_default"](**serve)["images"].numpy()
    np.testing.assert_array_equal(regenerated, out["reconstructions"])
    # Deterministic: the same request gives the same answer.
    np.testing.assert_array_equal(_project(model, targets, PROJECT_STEPS, labels)["z"], out["z"])


def test_projection_zero_steps_returns_the_best_start(exported):
    _, _, model = exported["uncond"]
    targets = _sample(model, 2, 21)["images"]
    out = _project(model, targets, 0)
    assert np.all(np.isfinite(out["psnr"]))
    assert np.all(out["psnr"] < _project(model, targets, 50)["psnr"])


@pytest.mark.parametrize("shape", [(1, 15, 16, 1), (1, 16, 16, 3), (16, 16, 1)])
@pytest.mark.parametrize("name", ["uncond", "cond_cbn"])
def test_projection_wrong_image_shape_names_the_expected_one(exported, name, shape):
    _, _, model = exported[name]
    labels = [0] if name in CONDITIONAL else None
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"images must have shape \[N, 16, 16, 1\]"
    ):
        _project(model, np.zeros(shape, np.uint8), 1, labels)


@pytest.mark.parametrize(
    "labels,match",
    [([0], "same batch size"), ([0, 3], "num_classes"), ([-1, 0], "label must be >= 0")],
)
def test_projection_labels_checked(exported, labels, match):
    _, _, model = exported["cond_embedding"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        _project(model, np.zeros((2, 16, 16, 1), np.uint8), 1, labels)


def test_projection_negative_steps_rejected(exported):
    _, _, model = exported["uncond"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="steps must be >= 0"):
        _project(model, np.zeros((1, 16, 16, 1), np.uint8), -1)


def test_project_feature_loss_hook():
    """projection.project with a feature_fn (what a classifier's features would plug into)."""
    g = varied_generator()
    z_true = tf.random.stateless_normal([2, LATENT], seed=[1, 0])
    target = g(z_true, training=False)
    calls = []

    def features(images):
        calls.append(images.shape)
        return tf.reduce_mean(images, axis=[1, 2])  # a per-image colour summary

    @tf.function
    def fit(target):
        return projection.project(
            lambda z, _: g(z, training=False),
            target,
            100,
            latent_dim=LATENT,
            feature_fn=features,
            feature_weight=10.0,
        )

    out = fit(target)
    assert calls  # traced into the loss
    assert out["z"].shape == (2, LATENT)
    assert np.all(out["psnr"].numpy() > 35.0)


# --- edits ------------------------------------------------------------------------------


def _edit(model, z, direction, strength, labels=None):
    kwargs = {
        "z": tf.constant(z, tf.float32),
        "direction": _int(direction),
        "strength": tf.constant(strength, tf.float32),
    }
    if labels is not None:
        kwargs["label"] = _int(labels)
    return {k: v.numpy() for k, v in model.signatures["edit"](**kwargs).items()}


@pytest.mark.parametrize("name", list(EXPORTS))
def test_edit(exported, name):
    g, _, model = exported[name]
    conditional = name in CONDITIONAL
    labels = [0, 1, 2, 1] if conditional else None
    z = tf.random.stateless_normal([4, LATENT], seed=[5, 0]).numpy()

    def serve(latents):
        kwargs = {"z": tf.constant(latents, tf.float32)}
        if conditional:
            kwargs["label"] = _int(labels)
        return model.signatures["serving_default"](**kwargs)

    plain = serve(z)
    unchanged = _edit(model, z, 0, 0.0, labels)
    np.testing.assert_array_equal(unchanged["images"], plain["images"].numpy())
    np.testing.assert_array_equal(unchanged["images_float"], plain["images_float"].numpy())

    extra = {"towards_class_1": EXTRA_DIRECTION} if name == "cond_embedding" else None
    vectors, _ = edits.build_directions(g, LATENT, extra=extra)
    for index in (0, len(vectors) - 1):
        moved = _edit(model, z, index, 2.5, labels)
        np.testing.assert_allclose(moved["z"], z + 2.5 * vectors[index], atol=1e-5)
        np.testing.assert_allclose(
            moved["images_float"], serve(moved["z"])["images_float"].numpy(), atol=1e-6
        )
        assert not np.allclose(moved["images_float"], plain["images_float"].numpy(), atol=1e-2)
    for bad in (len(vectors), -1):
        with pytest.raises(tf.errors.InvalidArgumentError, match="direction"):
            _edit(model, z, bad, 1.0, labels)


def test_edit_and_truncate_in_graph():
    directions = tf.constant(np.eye(3, dtype=np.float32))

    @tf.function
    def both(z, index, strength, psi):
        return latent_space.truncate(edits.edit(z, directions, index, strength), psi)

    z = tf.ones([2, 3])
    np.testing.assert_allclose(both(z, 1, 2.0, 0.5).numpy(), [[0.5, 1.5, 0.5]] * 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="out of range"):
        both(z, 3, 1.0, 1.0)
    np.testing.assert_array_equal(
        latent_space.truncate(z, 0.3, mean_latent=1.0).numpy(), np.ones([2, 3])
    )
