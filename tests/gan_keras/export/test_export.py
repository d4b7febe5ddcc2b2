"""Export: TF Serving layout, atomic versions, self-contained signatures, the stage's gate."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from configs import default
from gan_keras import images as gan_images
from gan_keras.export import layout
from gan_keras.export import sampling_model as gan_export
from pipeline.export import export_stage

LATENT = 8
CLASSES = 3
VENV_BIN = pathlib.Path(sys.executable).parent


def tiny_generator(conditional: bool, latent_dim: int = LATENT, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    z = keras.Input((latent_dim,), name="z")
    inputs = z
    h = z
    if conditional:
        label = keras.Input((), dtype="int32", name="label")
        emb = keras.layers.Flatten()(keras.layers.Embedding(CLASSES, latent_dim)(label))
        h = keras.layers.Concatenate()([z, emb])
        inputs = [z, label]
    h = keras.layers.Dense(4 * 4 * 8)(h)
    h = keras.layers.Reshape((4, 4, 8))(h)
    # BatchNorm makes training=True differ from training=False.
    h = keras.layers.BatchNormalization()(h)
    out = keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same", activation="tanh")(h)
    return keras.Model(inputs, out)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One unconditional and one conditional export, shared by the read-only tests."""
    base = tmp_path_factory.mktemp("export")
    out = {}
    for conditional in (False, True):
        g = tiny_generator(conditional)
        # Moving statistics far from the batch statistics, so using
        # training=True in the export would be caught.
        bn = next(layer for layer in g.layers if isinstance(layer, keras.layers.BatchNormalization))
        bn.moving_mean.assign(np.full(bn.moving_mean.shape, 0.5, np.float32))
        bn.moving_variance.assign(np.full(bn.moving_variance.shape, 4.0, np.float32))
        name = "cond" if conditional else "uncond"
        version, path = gan_export.export_generator(
            g,
            base / name,
            latent_dim=LATENT,
            num_classes=CLASSES if conditional else 0,
            extra_assets={"evaluation.json": '{"blessed": true}'},
        )
        out[name] = (g, version, path)
    return out


@pytest.mark.slow
def test_layout_and_version_increment(tmp_path):
    g = tiny_generator(False)
    base = tmp_path / "generator"
    v1, p1 = gan_export.export_generator(g, base, latent_dim=LATENT)
    v2, p2 = gan_export.export_generator(g, base, latent_dim=LATENT)
    assert (v1, v2) == (1, 2)
    assert p1 == base / "1" and p2 == base / "2"
    (base / "7").mkdir()  # a gap: next is max + 1, not count + 1
    v3, p3 = gan_export.export_generator(g, base, latent_dim=LATENT)
    assert v3 == 8 and p3 == base / "8"
    for p in (p1, p2, p3):
        assert (p / "saved_model.pb").is_file()
        assert (p / "variables").is_dir()
        info = json.loads((p / "assets.extra" / "model_info.json").read_text())
        assert info["latent_dim"] == LATENT and info["num_classes"] == 0
        assert info["image_shape"] == [8, 8, 1]
    # No temporary directory is left beside the versions.
    assert sorted(e.name for e in base.iterdir()) == ["1", "2", "7", "8"]
    assert layout.list_versions(base) == [1, 2, 7, 8]


def test_failure_leaves_no_version_dir(tmp_path, monkeypatch):
    g = tiny_generator(False)
    base = tmp_path / "generator"
    gan_export.export_generator(g, base, latent_dim=LATENT)

    def boom(self, *args, **kwargs):
        # Write something first, as a real failure half-way through would.
        pathlib.Path(args[0]).mkdir(parents=True)
        (pathlib.Path(args[0]) / "saved_model.pb").write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(type(keras.export.ExportArchive()), "write_out", boom)
    with pytest.raises(OSError, match="disk full"):
        gan_export.export_generator(g, base, latent_dim=LATENT)
    assert sorted(e.name for e in base.iterdir()) == ["1"]


def test_extra_assets_written(exported):
    _, _, path = exported["cond"]
    assert json.loads((path / "assets.extra" / "evaluation.json").read_text()) == {"blessed": True}


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "model_info.json"])
def test_bad_asset_name_rejected(tmp_path, bad):
    with pytest.raises(ValueError, match="extra_assets"):
        gan_export.export_generator(
            tiny_generator(False), tmp_path / "g", latent_dim=LATENT, extra_assets={bad: "x"}
        )
    assert layout.list_versions(tmp_path / "g") == []


def test_model_info_cannot_replace_derived_fields(tmp_path):
    with pytest.raises(ValueError, match="latent_dim"):
        gan_export.export_generator(
            tiny_generator(False), tmp_path, latent_dim=LATENT, model_info={"latent_dim": 3}
        )
    assert layout.list_versions(tmp_path) == []


def test_bad_arguments_rejected(tmp_path):
    with pytest.raises(ValueError, match="latent_dim"):
        gan_export.export_generator(tiny_generator(False), tmp_path / "g", latent_dim=0)
    with pytest.raises(ValueError, match="num_classes"):
        gan_export.export_generator(
            tiny_generator(False), tmp_path / "g", latent_dim=LATENT, num_classes=-1
        )


_STANDALONE = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    assert "gan_keras" not in sys.modules and "pipeline" not in sys.modules
    report = {}
    for name, path in json.loads(sys.argv[1]).items():
        m = tf.saved_model.load(path)
        report[name] = {"signatures": sorted(m.signatures.keys())}
        sample = m.signatures["sample"]
        kwargs = dict(num_samples=tf.constant(5), seed=tf.constant(42, tf.int64))
        if name == "cond":
            kwargs["label"] = tf.constant([], tf.int32)
        a = sample(**kwargs)
        b = sample(**kwargs)
        c = sample(**dict(kwargs, seed=tf.constant(43, tf.int64)))
        z = tf.random.normal([3, 8])
        serve_kwargs = {"z": z}
        if name == "cond":
            serve_kwargs["label"] = tf.constant([0, 1, 2], tf.int32)
        d = m.signatures["serving_default"](**serve_kwargs)
        report[name].update(
            sample_images=[str(a["images"].dtype.name), list(a["images"].shape)],
            sample_float=[str(a["images_float"].dtype.name), list(a["images_float"].shape),
                          float(tf.reduce_min(a["images_float"])),
                          float(tf.reduce_max(a["images_float"]))],
            same_seed_equal=bool(np.array_equal(a["images"].numpy(), b["images"].numpy())
                                 and np.array_equal(a["images_float"].numpy(),
                                                    b["images_float"].numpy())),
            other_seed_differs=not np.array_equal(a["images_float"].numpy(),
                                                  c["images_float"].numpy()),
            serve_images=[str(d["images"].dtype.name), list(d["images"].shape)],
            serve_float=[str(d["images_float"].dtype.name), list(d["images_float"].shape)],
        )
    print("REPORT" + json.dumps(report))
""")


@pytest.mark.slow
def test_loads_without_this_project(exported, tmp_path):
    script = tmp_path / "standalone.py"
    script.write_text(_STANDALONE)
    paths = {name: str(path) for name, (_, _, path) in exported.items()}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    # cwd=tmp_path and no PYTHONPATH: the project is not importable from there.
    proc = subprocess.run(
        [sys.executable, str(script), json.dumps(paths)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("REPORT"))
    report = json.loads(line[len("REPORT") :])
    for name in ("uncond", "cond"):
        r = report[name]
        assert {"serving_default", "sample"} <= set(r["signatures"])
        assert r["sample_images"] == ["uint8", [5, 8, 8, 1]]
        dtype, shape, lo, hi = r["sample_float"]
        assert dtype == "float32" and shape == [5, 8, 8, 1]
        assert -1.0 <= lo <= hi <= 1.0
        assert r["same_seed_equal"] and r["other_seed_differs"]
        assert r["serve_images"] == ["uint8", [3, 8, 8, 1]]
        assert r["serve_float"] == ["float32", [3, 8, 8, 1]]


@pytest.mark.slow
def test_saved_model_cli_lists_signatures(exported):
    _, _, path = exported["cond"]
    cli = VENV_BIN / "saved_model_cli"
    if not cli.exists():
        pytest.skip(f"{cli} not installed")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [str(cli), "show", "--all", "--dir", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "signature_def['serving_default']" in out
    assert "signature_def['sample']" in out
    for tensor in (
        "inputs['z']",
        "inputs['label']",
        "inputs['num_samples']",
        "inputs['seed']",
        "outputs['images']",
        "outputs['images_float']",
    ):
        assert tensor in out
    assert "DT_UINT8" in out and "DT_INT64" in out


@pytest.mark.parametrize("name", ["uncond", "cond"])
def test_matches_generator_and_tfsmlayer(exported, name):
    g, _, path = exported[name]
    rng = np.random.default_rng(0)
    z = rng.standard_normal((6, LATENT)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2], np.int32)
    if name == "cond":
        expected = g([z, labels], training=False)
        args, kwargs = (tf.constant(z),), {"label": tf.constant(labels)}
    else:
        expected = g(z, training=False)
        args, kwargs = (tf.constant(z),), {}
    expected = keras.ops.convert_to_numpy(expected)
    layer = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")
    out = layer(*args, **kwargs)
    images_float = keras.ops.convert_to_numpy(out["images_float"])
    images_u8 = keras.ops.convert_to_numpy(out["images"])
    assert np.max(np.abs(images_float - expected)) <= 1.0 / 255
    # uint8 conversion is exactly gan_keras.images.to_uint8's, up to one step.
    assert np.max(np.abs(images_u8.astype(int) - gan_images.to_uint8(expected).astype(int))) <= 1
    np.testing.assert_array_equal(images_u8, gan_images.to_uint8(images_float))
    # training=True would normalise with batch statistics instead.
    train_mode = g([z, labels] if name == "cond" else z, training=True)
    assert np.max(np.abs(keras.ops.convert_to_numpy(train_mode) - expected)) > 1e-2


def test_sample_conditional_labels(exported):
    _, _, path = exported["cond"]
    m = tf.saved_model.load(str(path))
    sample = m.signatures["sample"]
    seed = tf.constant(7, tf.int64)
    one = sample(num_samples=tf.constant(4), seed=seed, label=tf.constant([2], tf.int32))
    every = sample(num_samples=tf.constant(4), seed=seed, label=tf.constant([2] * 4, tf.int32))
    np.testing.assert_array_equal(one["images"].numpy(), every["images"].numpy())
    mixed = sample(num_samples=tf.constant(4), seed=seed, label=tf.constant([0, 1, 2, 0], tf.int32))
    assert not np.array_equal(mixed["images"].numpy(), every["images"].numpy())
    with pytest.raises(tf.errors.InvalidArgumentError, match="label"):
        sample(num_samples=tf.constant(4), seed=seed, label=tf.constant([0, 1], tf.int32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_classes"):
        sample(num_samples=tf.constant(2), seed=seed, label=tf.constant([3], tf.int32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="label must be >= 0"):
        m.signatures["serving_default"](z=tf.zeros([1, LATENT]), label=tf.constant([-1]))


# --- the stage ----------------------------------------------------------------


def _config(conditional=False, num_classes=0, force=False) -> ml_collections.ConfigDict:
    config = default.get_config()
    config.model.latent_dim = LATENT
    config.model.conditional = conditional
    config.model.num_classes = num_classes
    config.export.force = force
    return config


@pytest.fixture
def fake_train(monkeypatch):
    """Stands in for pipeline.checkpoints.load_generator (the trained generator of a workdir)."""
    import types

    calls = []

    def load_generator_with_info(config, workdir):
        calls.append(pathlib.Path(workdir))
        return (
            tiny_generator(config.model.conditional, config.model.latent_dim),
            {
                "checkpoint": "best by in-training FD",
                "checkpoint_step": 1200,
                "checkpoint_path": "ckpt-1200",
            },
        )

    module = types.ModuleType("pipeline.checkpoints")
    module.load_generator_with_info = load_generator_with_info
    monkeypatch.setitem(sys.modules, "pipeline.checkpoints", module)
    import pipeline

    monkeypatch.setattr(pipeline, "checkpoints", module, raising=False)
    return calls


def _write_metrics(workdir, blessed):
    (workdir / "evaluate").mkdir(parents=True, exist_ok=True)
    # A gate as the evaluator writes it; the export stage re-decides it.
    metrics = {
        "blessed": blessed,
        "frechet_distance": 12.5,
        "extractor": "domain_classifier",
        "gate": {
            "metric": "frechet_distance",
            "threshold": None if blessed else 10.0,
            "baseline_tolerance": 0.0,
        },
    }
    (workdir / "evaluate" / "metrics.json").write_text(json.dumps(metrics))
    return metrics


@pytest.mark.slow
def test_stage_exports_blessed_model(tmp_path, fake_train):
    metrics = _write_metrics(tmp_path, True)
    summary = export_stage.run_export(_config(), tmp_path, tmp_path / "export")
    assert summary["exported"] is True and summary["version"] == 1
    path = pathlib.Path(summary["path"])
    assert path == tmp_path / "export" / "generator" / "1"
    assert json.loads((path / "assets.extra" / "evaluation.json").read_text()) == metrics
    # Which training checkpoint the export holds, next to what the exporter derives.
    info = json.loads((path / "assets.extra" / "model_info.json").read_text())
    assert info["checkpoint_step"] == 1200 and info["checkpoint"] == "best by in-training FD"
    assert info["latent_dim"] == LATENT
    assert summary["checkpoint_step"] == 1200
    # The model card names the checkpoint and the evaluation; what the workdir lacks (here:
    # ingest statistics) is said to be missing, not left out.
    card = (path / "assets.extra" / "model_card.md").read_text()
    assert "step 1200 (best by in-training FD)" in card
    assert f"Summary: {metrics.get('summary', 'not recorded')}" in card
    assert "Rejected inputs: not recorded" in card
    assert "## Intended use and limitations" in card and "Not for identifying" in card
    assert fake_train == [tmp_path]
    summary = export_stage.run_export(_config(), tmp_path, tmp_path / "export")
    assert summary["version"] == 2


@pytest.mark.slow
def test_stage_respects_gate(tmp_path, fake_train, caplog):
    _write_metrics(tmp_path, False)
    with caplog.at_level("WARNING"):
        summary = export_stage.run_export(_config(), tmp_path, tmp_path / "export")
    assert summary["exported"] is False and "above the threshold" in summary["reason"]
    assert "Not exporting" in caplog.text
    assert not (tmp_path / "export" / "generator").exists()
    assert fake_train == []  # the generator is not even loaded
    summary = export_stage.run_export(_config(), tmp_path, tmp_path / "export", force_export=True)
    assert summary["exported"] is True
    summary = export_stage.run_export(_config(force=True), tmp_path, tmp_path / "export")
    assert summary["exported"] is True and summary["version"] == 2


def test_stage_refuses_unevaluated_model(tmp_path, fake_train):
    summary = export_stage.run_export(_config(), tmp_path, tmp_path / "export")
    assert summary["exported"] is False and "evaluate stage" in summary["reason"]
    summary = export_stage.run_export(_config(), tmp_path, tmp_path / "export", force_export=True)
    assert summary["exported"] is True
    assert not (pathlib.Path(summary["path"]) / "assets.extra" / "evaluation.json").exists()


@pytest.mark.slow
def test_stage_conditional_classes_from_ingest(tmp_path, fake_train):
    _write_metrics(tmp_path, True)
    (tmp_path / "ingest").mkdir()
    (tmp_path / "ingest" / "labels.json").write_text(json.dumps(["a", "b", "c"]))
    summary = export_stage.run_export(_config(conditional=True), tmp_path, tmp_path / "export")
    assert summary["num_classes"] == 3
    info = json.loads(
        (pathlib.Path(summary["path"]) / "assets.extra" / "model_info.json").read_text()
    )
    assert info["num_classes"] == 3 and info["conditional"] is True
    # An explicit config.model.num_classes wins over labels.json.
    (tmp_path / "ingest" / "labels.json").write_text(json.dumps([]))
    summary = export_stage.run_export(
        _config(conditional=True, num_classes=3), tmp_path, tmp_path / "export"
    )
    assert summary["num_classes"] == 3


def test_stage_conditional_without_labels_fails(tmp_path, fake_train):
    _write_metrics(tmp_path, True)
    with pytest.raises(FileNotFoundError, match="labels.json"):
        export_stage.run_export(_config(conditional=True), tmp_path, tmp_path / "export")
    (tmp_path / "ingest").mkdir()
    (tmp_path / "ingest" / "labels.json").write_text("[]")
    with pytest.raises(ValueError, match="labels.json"):
        export_stage.run_export(_config(conditional=True), tmp_path, tmp_path / "export")


@pytest.mark.parametrize(
    "field,value",
    [
        ("model.latent_dim", 0),
        ("model.latent_dim", -4),
        ("model.num_classes", -1),
    ],
)
def test_validate_config(field, value):
    config = _config()
    section, name = field.split(".")
    config[section][name] = value
    with pytest.raises(ValueError, match=f"config.{field}"):
        export_stage.validate_config(config)
    export_stage.validate_config(_config())
