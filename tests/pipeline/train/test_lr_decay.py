"""train.lr_decay_fraction: both learning rates hold, then fall along a cosine to 0 over the
last fraction of train.steps, counted in each optimizer's own updates (D's n_critic), and a
restored checkpoint continues the schedule where it was."""

import numpy as np
import pytest
import tensorflow as tf

from configs import smoke
from pipeline.train import build, validation

BASE = 1e-3


def test_zero_keeps_the_constant_rate_as_given():
    assert build.learning_rate(BASE, 100, 0.0) == BASE


def test_the_rate_holds_then_falls_along_a_cosine_to_zero():
    schedule = build.learning_rate(BASE, 100, 0.25)
    rates = np.array([float(schedule(i)) for i in range(101)])
    np.testing.assert_allclose(rates[:76], BASE, rtol=1e-6)
    assert rates[87] > BASE / 2 > rates[88]  # halfway through the decay (87.5)
    assert np.all(np.diff(rates[75:]) < 0)
    assert rates[100] == pytest.approx(0.0, abs=1e-12)


def test_an_optimizer_with_several_updates_per_step_decays_over_the_same_steps():
    one = build.learning_rate(BASE, 100, 0.25)
    three = build.learning_rate(BASE, 100, 0.25, updates_per_step=3)
    for step in (0, 75, 80, 90, 99):
        assert float(three(3 * step)) == pytest.approx(float(one(step)), rel=1e-5)


def _model(config):
    model = build.build_gan(
        config,
        resolution=config.data.resolution,
        channels=config.data.channels,
        num_classes=0,
    )
    return model


def _config(n_critic=1):
    config = smoke.get_config()
    config.train.update(steps=4, lr_decay_fraction=0.5, n_critic=n_critic, strategy="default")
    return config


@pytest.mark.parametrize("n_critic", [1, 2])
def test_training_uses_the_schedule_and_a_restored_run_continues_it(tmp_path, n_critic):
    config = _config(n_critic)
    model = _model(config)
    images = tf.random.stateless_uniform(
        [config.train.batch_size, 16, 16, 1], seed=[0, 1], minval=-1.0, maxval=1.0
    )
    step = tf.function(model.train_step)
    rates = []
    for _ in range(3):
        step(images)
        rates.append(float(model.g_optimizer.learning_rate))
    # 4 steps, the last half decaying: after 2 updates the rate is still the base, after 3
    # it is halfway down the cosine.
    g = config.train.g_learning_rate
    assert rates[1] == pytest.approx(g, rel=1e-6)
    assert rates[2] == pytest.approx(g / 2, rel=1e-5)
    assert float(model.d_optimizer.learning_rate) == pytest.approx(
        config.train.d_learning_rate / 2, rel=1e-5
    )
    path = model.checkpoint().save(str(tmp_path / "ckpt"))
    restored = _model(config)
    restored.checkpoint().restore(path)
    assert float(restored.g_optimizer.learning_rate) == pytest.approx(rates[2], rel=1e-6)
    assert int(restored.d_optimizer.iterations) == 3 * n_critic


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_a_fraction_outside_zero_to_one_is_refused_by_name(bad):
    config = smoke.get_config()
    config.train.lr_decay_fraction = bad
    with pytest.raises(ValueError, match="train.lr_decay_fraction must be in"):
        validation.validate_config(config)
