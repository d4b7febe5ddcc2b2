"""Fine-tuning: train.init_from (a workdir, a checkpoint or an export), train.init_optimizer and
train.freeze_d_layers, on a parent trained on the digits and a child on another small dataset."""

import json
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf

from configs import smoke
from gan_keras import images
from gan_keras.export import sampling_model as gan_export
from pipeline import checkpoints, runner
from pipeline.export import model_card
from pipeline.train import fine_tune, loop, validation

# Every test here runs training (a parent and its fine-tuned children).
pytestmark = pytest.mark.slow

STEPS = 20


def _config(**train_fields):
    config = smoke.get_config()
    config.train.strategy = "default"
    config.train.steps = STEPS
    config.train.checkpoint_every = config.train.sample_every = config.train.log_every = 10
    config.train.num_sample_images = 8
    for name, value in train_fields.items():
        config.train[name] = value
    return config


def _child_data_config(config, folder):
    """Another small dataset: unlabelled 16x16 blobs in a flat folder, not the digits."""
    config.data.source = f"folder:{folder}"
    config.data.num_shards = 1
    return config


def _write_blobs(folder, count=160):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:16, :16]
    folder.mkdir(parents=True)
    for i in range(count):
        cy, cx, r = rng.uniform(4, 12), rng.uniform(4, 12), rng.uniform(2, 5)
        image = np.where((yy - cy) ** 2 + (xx - cx) ** 2 < r * r, 255, 0).astype(np.uint8)
        (folder / f"blob_{i:03d}.png").write_bytes(images.encode_png(image[..., None]))


class _Spy:
    """Wraps loop._train_loop: records the model's weights when the loop starts and ends."""

    def __init__(self, monkeypatch):
        self.start, self.end = {}, {}
        original = loop._train_loop

        def spy(config, strategy, model, *args, **kwargs):
            self.start = self.snapshot(model)
            result = original(config, strategy, model, *args, **kwargs)
            self.end = self.snapshot(model)
            return result

        monkeypatch.setattr(loop, "_train_loop", spy)

    @staticmethod
    def snapshot(model):
        return {
            "generator": [v.numpy() for v in model.generator.weights],
            "discriminator": [v.numpy() for v in model.discriminator.weights],
            "ema_generator": [v.numpy() for v in model.ema_generator.weights],
            "d_optimizer": [v.numpy() for v in model.d_optimizer.variables],
            "d_layers": [[w.path for w in layer.weights] for layer in model.discriminator.layers],
            "d_paths": [v.path for v in model.discriminator.weights],
            "step": int(model.step.numpy()),
        }


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A digits run trained for STEPS steps: (workdir, its weights at the end)."""
    workdir = tmp_path_factory.mktemp("parent") / "work"
    with pytest.MonkeyPatch.context() as monkeypatch:
        spy = _Spy(monkeypatch)
        runner.Runner(_config(), workdir).run(["ingest", "train"])
    return workdir, spy.end


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blobs") / "images"
    _write_blobs(folder)
    return folder


def test_fine_tuning_starts_from_the_parent_freezes_d_layers_and_names_the_parent(
    parent, blobs, tmp_path, monkeypatch
):
    parent_dir, parent_weights = parent
    spy = _Spy(monkeypatch)
    config = _child_data_config(
        _config(init_from=str(parent_dir), freeze_d_layers=2, init_optimizer=True), blobs
    )
    # Two replicas (conftest's two logical CPUs): initialising and freezing under mirroring.
    config.train.strategy = "mirrored"
    runner.Runner(config, tmp_path / "child").run(["ingest", "train"])

    # It started from the parent's G, D, EMA G and D's optimiser state, at step 0.
    for name in ("generator", "discriminator", "ema_generator", "d_optimizer"):
        if name == "d_optimizer":
            # Everything but the step count and learning rate: the moments of every variable.
            assert _same(spy.start[name][2:], parent_weights[name][2:]), name
        else:
            assert _same(spy.start[name], parent_weights[name]), name
    assert spy.start["step"] == 0 and spy.end["step"] == STEPS
    assert not np.array_equal(spy.start["d_optimizer"][0], parent_weights["d_optimizer"][0])

    # The first two blocks of D (conv2d; conv2d_1 with its BatchNorm) kept every weight, moving
    # statistics included; the last layer and G trained.
    blocks = [paths for paths in spy.start["d_layers"] if paths]
    assert len(blocks) == 4  # conv, conv, BatchNorm, dense
    frozen = set(blocks[0] + blocks[1] + blocks[2])
    for path, before, after in zip(
        spy.start["d_paths"], spy.start["discriminator"], spy.end["discriminator"], strict=True
    ):
        assert np.array_equal(before, after) == (path in frozen), path
    assert not _same(spy.start["generator"], spy.end["generator"])

    manifest = json.loads((tmp_path / "child" / "train" / "manifest.json").read_text())
    parent_manifest = json.loads((parent_dir / "train" / "manifest.json").read_text())
    record = manifest["summary"]["init_from"]
    assert record["init_from"] == str(parent_dir) and record["kind"] == fine_tune.KIND_TRAIN_DIR
    assert record["path"] == str(parent_dir / "train" / "checkpoints" / f"ckpt-{STEPS}")
    assert record["step"] == STEPS and record["checkpoint"] == checkpoints.CHECKPOINT_LATEST
    assert record["fingerprint"] == parent_manifest["output_fingerprint"]
    assert record["ingest_fingerprint"] == parent_manifest["inputs"]["ingest"]
    assert record["same_data_as_parent"] is False and record["optimizer_state"] is True
    assert len(manifest["summary"]["frozen_d_layers"]) == 3
    # The model card an export would carry names the parent too.
    card = model_card.model_card(
        config, tmp_path / "child", metrics=None, checkpoint={"checkpoint_step": STEPS}
    )
    assert f"- Fine-tuned from `{record['path']}` (step {STEPS}, train checkpoints;" in card


def test_an_export_initialises_g_only_and_d_starts_fresh(parent, blobs, tmp_path, monkeypatch):
    parent_dir, parent_weights = parent
    generator = checkpoints.load_generator(_config(), parent_dir)
    base = tmp_path / "exported"
    # As the export stage writes it, naming the training step it holds.
    gan_export.export_generator(
        generator, base, latent_dim=16, model_info={"checkpoint_step": STEPS}
    )
    spy = _Spy(monkeypatch)
    config = _child_data_config(_config(init_from=str(base), steps=1), blobs)
    with pytest.raises(ValueError, match="an export holds no discriminator"):
        validation.validate_config(_config(init_from=str(base), freeze_d_layers=1))
    with pytest.raises(ValueError, match="an export\\s+holds only the generator"):
        validation.validate_config(_config(init_from=str(base), init_optimizer=True))
    runner.Runner(config, tmp_path / "child").run(["ingest", "train"])
    assert _same(spy.start["generator"], parent_weights["ema_generator"])
    assert _same(spy.start["ema_generator"], parent_weights["ema_generator"])
    assert not _same(spy.start["discriminator"], parent_weights["discriminator"])
    record = json.loads((tmp_path / "child" / "train" / "manifest.json").read_text())["summary"]
    assert record["init_from"]["kind"] == fine_tune.KIND_EXPORT
    assert record["init_from"]["path"] == str(base / "1")
    assert record["init_from"]["step"] == STEPS
    assert record["init_from"]["discriminator"].startswith("random")


def test_a_changed_architecture_names_the_variable_and_both_shapes(parent, blobs, tmp_path):
    parent_dir, _ = parent
    config = _child_data_config(_config(init_from=str(parent_dir)), blobs)
    config.model.d_width = 8
    runner.Runner(config, tmp_path / "child").run(["ingest"])
    with pytest.raises(
        fine_tune.FineTuneError,
        match=r"the discriminator's variable conv2d(_\d+)?/kernel has shape \(4, 4, 1, 16\) in "
        r"the parent .* and \(4, 4, 1, 8\) in this run's model",
    ):
        loop.run_train(config, tmp_path / "child")
    assert not list((tmp_path / "child" / "train" / "checkpoints").glob("*.index"))


def test_fine_tune_fields_are_validated_before_any_work(parent, tmp_path):
    parent_dir, _ = parent
    with pytest.raises(ValueError, match="no such file or directory"):
        validation.validate_config(_config(init_from=str(tmp_path / "absent")))
    with pytest.raises(ValueError, match="holds nothing to start from"):
        validation.validate_config(_config(init_from=str(tmp_path)))
    with pytest.raises(ValueError, match="need train.init_from"):
        validation.validate_config(_config(freeze_d_layers=1))
    with pytest.raises(ValueError, match="must be an integer >= 0"):
        validation.validate_config(_config(init_from=str(parent_dir), freeze_d_layers=-1))
    with pytest.raises(
        ValueError,
        match=r"train.freeze_d_layers=3 is out of range: the discriminator has 3 layers .*"
        r"freeze 0 to 2",
    ):
        validation.validate_config(_config(init_from=str(parent_dir), freeze_d_layers=3))
    with pytest.raises(ValueError, match="spectral_norm"):
        config = _config(init_from=str(parent_dir), freeze_d_layers=1)
        config.model.spectral_norm = True
        validation.validate_config(config)
    # The parent's own train directory, a checkpoint prefix and an export all resolve.
    validation.validate_config(_config(init_from=str(parent_dir / "train"), freeze_d_layers=2))
    prefix = parent_dir / "train" / "checkpoints" / "ckpt-10"
    resolved = fine_tune.resolve_parent(str(prefix))
    assert (resolved.kind, resolved.step, resolved.path) == (fine_tune.KIND_CHECKPOINT, 10, prefix)
    # A run may not initialise from its own train directory, nor --force it aside first. (On a
    # copy: should the refusal break, the module's parent run stays intact for the other tests.)
    own = pathlib.Path(shutil.copytree(parent_dir, tmp_path / "own"))
    with pytest.raises(fine_tune.FineTuneError, match="this run's own"):
        loop.run_train(_config(init_from=str(own)), own)
    with pytest.raises(fine_tune.FineTuneError, match="this run's own"):
        runner.Runner(_config(init_from=str(own)), own, force=True).run(["train"])
    assert not list(own.glob("train.replaced-*"))
    assert tf.train.latest_checkpoint(str(own / "train" / "checkpoints")).endswith(f"ckpt-{STEPS}")


def test_a_resumed_fine_tuning_run_keeps_its_own_checkpoints(parent, blobs, tmp_path, monkeypatch):
    parent_dir, parent_weights = parent
    config = _child_data_config(_config(init_from=str(parent_dir), steps=10), blobs)
    child = tmp_path / "child"
    runner.Runner(config, child).run(["ingest", "train"])
    spy = _Spy(monkeypatch)
    config.train.steps = 20
    runner.Runner(config, child).run(["train"])
    assert spy.start["step"] == 10
    assert not _same(spy.start["generator"], parent_weights["generator"])
    summary = json.loads((child / "train" / "manifest.json").read_text())["summary"]
    assert summary["init_from"]["path"] == str(parent_dir / "train" / "checkpoints" / "ckpt-20")
    assert pathlib.Path(summary["latest_checkpoint"]).name == "ckpt-20"
