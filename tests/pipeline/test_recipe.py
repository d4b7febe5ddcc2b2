"""The automatic recipe (configs/auto.py, pipeline.recipe): each data-dependent field chosen from
the ingest statistics with a reason, the user's settings kept, and the run records it."""

import json

import pytest
from helpers import run_pipeline

from configs import auto, fashion_mnist
from pipeline import recipe
from pipeline import workdir as workdir_layout


def _stats(train, eval_=250, channels=3):
    return {"splits": {"train": {"count": train}, "eval": {"count": eval_}}, "channels": channels}


def _auto(**data):
    config = auto.get_config()
    config.data.source = "folder:/images"
    for key, value in data.items():
        config.data[key] = value
    return config


def test_every_placeholder_is_chosen_with_a_reason():
    config = _auto()
    assert recipe.is_auto(config) and recipe.unset_fields(config)
    resolved, choices = recipe.resolve(config, _stats(1531, 375))
    assert recipe.unset_fields(resolved) == []
    assert {c.field for c in choices} == {
        f"{section}.{field}" for section, fields in auto.CHOSEN.items() for field in fields
    }
    assert all(c.reason and not c.overridden for c in choices)
    assert resolved.train.ada_target == 0.0  # measured: no better at 224k images
    assert resolved.evaluate.num_samples == 500  # at least 500, else the eval split's size
    # The demo's recipe is kept where the data does not matter.
    assert resolved.train.g_learning_rate == 1.6e-3


def test_length_is_224k_images_or_three_passes_in_steps_of_500():
    resolved, _ = recipe.resolve(_auto(), _stats(1531))
    assert resolved.train.steps == 3500
    resolved, _ = recipe.resolve(_auto(), _stats(200_000))
    assert resolved.train.steps == 9500  # 3 x 200k / 64 = 9,375, rounded up to 500s
    assert resolved.evaluate.classifier_min_steps == 0  # a large folder: the judge's epochs


def test_geometry_follows_the_data():
    resolved, _ = recipe.resolve(_auto(resolution=28, channels=1), _stats(60_000, channels=1))
    assert resolved.model.network_resolution == 32
    assert (resolved.model.g_width, resolved.model.d_width) == (32, 32)  # grey: the demo's
    resolved, choices = recipe.resolve(_auto(resolution=64), _stats(5_000))
    assert (resolved.model.network_resolution, resolved.model.g_width) == (0, 64)
    assert "a guess" in {c.field: c.reason for c in choices}["model.g_width"]


def test_a_colour_folder_at_32x32_averages_g_over_more_images_than_the_demo():
    resolved, choices = recipe.resolve(_auto(), _stats(1531))
    train = resolved.train
    assert (train.ema_half_life_images, train.ema_rampup) == recipe.COLOUR_EMA == (30_000, 0.1)
    reason = {c.field: c.reason for c in choices}["train.ema_half_life_images"]
    assert "Noto Emoji" in reason and "Oxygen icons" in reason
    # Grey images and 64x64 keep the demo's, which is configs/fashion_mnist.py's.
    demo = fashion_mnist.get_config().train
    assert recipe.DEMO_EMA == (demo.ema_half_life_images, demo.ema_rampup)
    for config, stats in (
        (_auto(resolution=28, channels=1), _stats(60_000, channels=1)),
        (_auto(resolution=64), _stats(5_000)),
    ):
        train = recipe.resolve(config, stats)[0].train
        assert (train.ema_half_life_images, train.ema_rampup) == recipe.DEMO_EMA
    # The user's own EMA is kept.
    config = _auto()
    config.train.ema_rampup = 0.0
    assert recipe.resolve(config, _stats(1531))[0].train.ema_rampup == 0.0


def test_ada_turns_on_for_a_run_of_more_than_250_passes_over_the_folder():
    # The recipe's own length: 224k images is 146 passes over 1,531 emoji, 219 over 1,021 icons.
    for n in (1531, 1021, 200_000):
        resolved, _ = recipe.resolve(_auto(), _stats(n))
        assert resolved.train.ada_target == 0.0, n
    # A user who trains three times as long (672k images, where D memorised the emoji) gets ADA.
    config = _auto()
    config.train.steps = 10_500
    resolved, choices = recipe.resolve(config, _stats(1531))
    assert resolved.train.ada_target == recipe.ADA_TARGET == 0.6
    assert "439 passes" in {c.field: c.reason for c in choices}["train.ada_target"]
    # Passes count the run's batch: the same steps at batch 32 are half as many passes.
    config.train.batch_size = 32
    assert recipe.resolve(config, _stats(1531))[0].train.ada_target == 0.0
    # Just over and just under the threshold.
    config.train.batch_size = 64
    config.train.steps = 6000  # 384,000 images
    assert recipe.resolve(config, _stats(1535))[0].train.ada_target == 0.6  # 250.2 passes
    assert recipe.resolve(config, _stats(1536))[0].train.ada_target == 0.0  # 250.0 passes
    # The user's own choice is kept either way.
    config.train.ada_target = 0.0
    assert recipe.resolve(config, _stats(1000))[0].train.ada_target == 0.0


def test_on_fashion_mnist_the_recipe_trains_exactly_the_demo():
    config = _auto(resolution=28, channels=1)
    resolved, _ = recipe.resolve(config, _stats(60_000, 10_000, channels=1))
    demo = fashion_mnist.get_config()
    for section in ("model", "train"):
        chosen = {k: v for k, v in resolved[section].items() if k != "recipe"}
        assert chosen == {k: v for k, v in demo[section].items() if k != "recipe"}, section
    assert resolved.evaluate.num_samples == demo.evaluate.num_samples


def test_a_colour_folder_gets_the_wider_generator_measured_on_noto_emoji():
    resolved, choices = recipe.resolve(_auto(), _stats(1531))
    assert (resolved.model.g_width, resolved.model.d_width) == (64, 32)
    assert "Noto Emoji" in {c.field: c.reason for c in choices}["model.g_width"]
    grey, _ = recipe.resolve(_auto(channels=1), _stats(1531, channels=1))
    assert (grey.model.g_width, grey.model.d_width) == (32, 32)


def test_a_users_setting_is_kept_and_said_to_be():
    config = _auto()
    config.train.steps = 1234
    resolved, choices = recipe.resolve(config, _stats(1531))
    assert resolved.train.steps == 1234
    [steps] = [c for c in choices if c.field == "train.steps"]
    assert steps.overridden and "kept" in recipe.log_lines([steps])[0]


def test_a_placeholder_without_a_rule_is_refused_naming_it():
    config = _auto()
    config.train.beta_1 = None
    with pytest.raises(ValueError, match="train.beta_1"):
        recipe.resolve(config, _stats(1531))


@pytest.mark.slow
def test_a_run_resolves_after_ingest_logs_and_records_the_recipe(tmp_path):
    workdir = tmp_path / "work"
    result = run_pipeline(
        workdir,
        "--stages=ingest,train",
        "--config.data.source=digits",
        "--config.data.resolution=16",
        "--config.data.channels=1",
        "--config.train.steps=20",
        "--config.train.eval_every=0",
        "--config.train.batch_size=32",
        config="configs/auto.py",
    )
    record = json.loads((workdir / recipe.RECIPE_FILE).read_text())
    chosen = {c["field"]: c for c in record["choices"]}
    assert chosen["train.steps"] == {
        "field": "train.steps",
        "value": 20,
        "reason": "set in the config or on the command line",
        "overridden": True,
    }
    assert chosen["train.ada_target"]["value"] == 0.0
    assert "recipe: train.ada_target=0.0" in result.stderr
    train = json.loads((workdir_layout.train_dir(workdir) / "manifest.json").read_text())
    assert train["summary"]["final_step"] == 20  # the kept setting is what trained
