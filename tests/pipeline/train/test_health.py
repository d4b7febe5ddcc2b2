"""Training-health detectors (pipeline.train.health) on values built to trip them, and not on
values that should pass."""

import numpy as np
import pytest

from pipeline.train import health


def _reals(n=128, size=16, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 3)).astype(np.float32)


def test_diversity_ratio_is_one_for_real_like_samples_and_zero_for_one_image():
    reals = _reals()
    assert health.diversity_ratio(_reals(seed=1), reals) == pytest.approx(1.0, abs=0.1)
    same = np.repeat(reals[:1], len(reals), axis=0)
    assert health.diversity_ratio(same, reals) == pytest.approx(0.0, abs=1e-6)


def test_nearest_neighbour_distances_downsample_large_images():
    x = np.zeros((3, 64, 64, 1), np.float32)
    x[1] += 1.0
    x[2] += 3.0
    np.testing.assert_allclose(health.nearest_neighbour_distances(x), [16.0, 16.0, 32.0], rtol=1e-6)


def test_overfitting_trips_on_the_held_out_gap_once_and_names_the_fix():
    monitor = health.HealthMonitor()
    # Healthy: D calls train and held-out reals real equally often.
    monitor.observe_discriminator(100, np.ones(100), np.r_[np.ones(90), -np.ones(10)])
    assert monitor.summary()["ok"]
    # Memorised: every train image real, most held-out ones fake.
    out = monitor.observe_discriminator(200, np.ones(100), np.r_[np.ones(40), -np.ones(60)])
    assert out["health/d_overfit_gap"] == pytest.approx(0.6)
    monitor.observe_discriminator(300, np.ones(100), -np.ones(100))
    summary = monitor.summary()
    assert not summary["ok"]
    assert [w["kind"] for w in summary["warnings"]] == ["d_overfitting"]
    assert summary["warnings"][0]["step"] == 200
    assert "ada_target" in summary["warnings"][0]["fix"]


def test_a_confident_d_trips_overfitting_at_a_smaller_gap():
    """r_t alone is not overfitting (a winning D has it high on held-out images too); with r_t
    over OVERFIT_SIGN a gap of OVERFIT_GAP_CONFIDENT is enough."""
    gap_020 = (np.ones(100), np.r_[np.ones(80), -np.ones(20)])
    winning = health.HealthMonitor()
    winning.observe_metrics(100, {"d_real_sign": 0.97})
    winning.observe_discriminator(100, np.ones(100), np.ones(100))
    assert winning.summary()["ok"]
    unsure = health.HealthMonitor()
    unsure.observe_metrics(100, {"d_real_sign": 0.5})
    unsure.observe_discriminator(100, *gap_020)
    assert unsure.summary()["ok"]
    confident = health.HealthMonitor()
    confident.observe_metrics(100, {"d_real_sign": 0.97})
    confident.observe_discriminator(100, *gap_020)
    [warning] = confident.summary()["warnings"]
    assert warning["kind"] == "d_overfitting"
    assert warning["threshold"] == health.OVERFIT_GAP_CONFIDENT


def test_collapse_trips_when_diversity_falls_below_its_best():
    reals = _reals()
    monitor = health.HealthMonitor()
    # Early blobs are not collapse: low diversity that never was higher.
    blobs = reals * 0.01
    monitor.observe_samples(0, blobs, reals)
    assert monitor.summary()["ok"]
    monitor.observe_samples(500, _reals(seed=3), reals)
    assert monitor.summary()["ok"]
    collapsed = np.repeat(reals[:2], len(reals) // 2, axis=0)
    monitor.observe_samples(1000, collapsed, reals)
    assert [w["kind"] for w in monitor.summary()["warnings"]] == ["mode_collapse"]


def test_divergence_trips_on_exploding_gradient_norms():
    monitor = health.HealthMonitor()
    for step, norm in enumerate([1.0, 1.2, 0.9, 1.1]):
        monitor.observe_metrics(step, {"d_grad_norm": norm, "g_grad_norm": norm})
    assert monitor.summary()["ok"]
    out = monitor.observe_metrics(5, {"d_grad_norm": 500.0, "g_grad_norm": 1.0})
    assert out["health/d_grad_norm_ratio"] == pytest.approx(500.0 / 1.05)
    assert monitor.summary()["warnings"][0]["kind"] == "divergence"


def test_the_overfitting_advice_follows_the_runs_ada_and_length():
    """The recipe's own 146-pass emoji run memorises by design and is told ADA would not help
    at that length; a run past 250 passes is told to turn it on; a run with ADA to lower it."""
    from configs import auto

    config = auto.get_config()
    config.train.steps, config.train.ada_target = 3500, 0.0  # 224k images
    short = health.overfitting_fix(config, 1531)  # 146 passes
    assert "146 passes" in short and "pays off for runs past 250" in short
    assert "best in-training FD" in short  # the recipe evaluates every 500 steps
    config.train.steps = 10_500  # 672k images: 439 passes
    long = health.overfitting_fix(config, 1531)
    assert long.startswith("D is memorising the 1,531 training images over 439 passes: turn on")
    config.train.ada_target = 0.6
    assert "lower train.ada_target" in health.overfitting_fix(config, 1531)
    # The monitor warns with the advice it was given.
    monitor = health.HealthMonitor({"d_overfitting": short})
    monitor.observe_discriminator(100, np.ones(100), -np.ones(100))
    assert monitor.summary()["warnings"][0]["fix"] == short
