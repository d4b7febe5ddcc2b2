"""Metrics on distributions whose answers are known in closed form."""

import numpy as np
import pytest
import scipy.linalg

from gan_keras.evaluation import feature_scores


def _sqrtm_reference_fd(a, b):
    """The pytorch-fid computation, as an independent reference."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_distance_matches_scipy_sqrtm_on_random_features():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 16))
    b = rng.normal(size=(400, 16)) @ rng.normal(size=(16, 16)) * 0.5 + 0.3
    assert feature_scores.frechet_distance(a, b) == pytest.approx(
        _sqrtm_reference_fd(a, b), rel=1e-8
    )


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    # Exact statistics: the formula reduces to ||mu1-mu2||^2 + sum (s1 + s2 - 2 sqrt(s1 s2)).
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    got = feature_scores.frechet_distance_from_statistics(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_of_samples_converges_to_closed_form():
    rng = np.random.default_rng(1)
    n = 200_000
    a = rng.normal(size=(n, 2)) * np.array([1.0, 2.0])
    b = rng.normal(size=(n, 2)) * np.array([3.0, 1.0]) + np.array([1.0, 0.0])
    expected = 1.0 + (1 + 9 - 2 * 3) + (4 + 1 - 2 * 2)
    assert feature_scores.frechet_distance(a, b) == pytest.approx(expected, rel=0.02)


def test_frechet_distance_handles_singular_covariances():
    # Fewer samples than dimensions: rank-deficient covariances, where a plain
    # sqrtm can return complex or NaN values.
    rng = np.random.default_rng(2)
    a = rng.normal(size=(10, 64))
    value = feature_scores.frechet_distance(a, a.copy())
    assert np.isfinite(value)
    assert value == pytest.approx(0.0, abs=1e-6)
    b = rng.normal(size=(10, 64)) + 1.0
    assert feature_scores.frechet_distance(a, b) > 10.0


def test_frechet_distance_rejects_bad_input():
    with pytest.raises(ValueError, match="feature dimensions differ"):
        feature_scores.frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="NaN"):
        feature_scores.frechet_distance(np.full((5, 3), np.nan), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="at least 2 rows"):
        feature_scores.frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


def test_kid_is_near_zero_for_same_distribution_and_positive_when_shifted():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(2000, 32)), rng.normal(size=(2000, 32))
    same_mean, same_std = feature_scores.kernel_inception_distance(
        a, b, num_subsets=10, subset_size=500, seed=0
    )
    assert abs(same_mean) < 3 * same_std + 1e-3
    shifted, _ = feature_scores.kernel_inception_distance(
        a, b + 0.5, num_subsets=10, subset_size=500, seed=0
    )
    assert shifted > 0.05
    assert shifted > 20 * abs(same_mean)


def test_kid_is_unbiased():
    # The unbiased estimator averages to ~0 on equal distributions even with
    # tiny subsets, where the biased one would be clearly positive.
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(4000, 8)), rng.normal(size=(4000, 8))
    mean, std = feature_scores.kernel_inception_distance(
        a, b, num_subsets=400, subset_size=10, seed=1
    )
    assert abs(mean) < 3 * std / np.sqrt(400)


def test_kid_is_reproducible_with_seed():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(300, 4)), rng.normal(size=(300, 4)) + 0.1
    assert feature_scores.kernel_inception_distance(
        a, b, 5, 50, seed=7
    ) == feature_scores.kernel_inception_distance(a, b, 5, 50, seed=7)


def test_classifier_score_uniform_vs_confident_predictions():
    k = 10
    uniform = np.full((100, k), 1.0 / k)
    assert feature_scores.classifier_score(uniform)[0] == pytest.approx(1.0)
    confident_balanced = np.eye(k)[np.arange(100) % k]
    assert feature_scores.classifier_score(confident_balanced)[0] == pytest.approx(k)
    # Confident but always the same class (mode collapse): score 1.
    confident_single = np.eye(k)[np.zeros(100, dtype=int)]
    assert feature_scores.classifier_score(confident_single)[0] == pytest.approx(1.0)


def test_classifier_score_splits_give_mean_and_std():
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(1000, 5)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    mean, std = feature_scores.classifier_score(probs, splits=10)
    assert 1.0 < mean < 5.0
    assert std > 0.0
    with pytest.raises(ValueError, match="sum to 1"):
        feature_scores.classifier_score(np.abs(logits))


def test_precision_recall_identical_sets_are_one():
    rng = np.random.default_rng(7)
    a = rng.normal(size=(500, 8))
    precision, recall = feature_scores.precision_recall(a, a.copy(), k=3)
    assert precision == pytest.approx(1.0)
    assert recall == pytest.approx(1.0)


def test_precision_recall_disjoint_sets_are_zero():
    rng = np.random.default_rng(8)
    a = rng.normal(size=(500, 8))
    b = rng.normal(size=(500, 8)) + 100.0
    assert feature_scores.precision_recall(a, b, k=3) == (0.0, 0.0)


def test_precision_recall_mode_collapse_has_high_precision_and_no_recall():
    rng = np.random.default_rng(9)
    real = rng.normal(size=(1000, 8))
    # Every fake is the same (realistic) sample: on the real manifold, no diversity.
    fake = np.repeat(real[:1] + 0.01, 1000, axis=0)
    precision, recall = feature_scores.precision_recall(real, fake, k=3)
    assert precision == pytest.approx(1.0)
    assert recall < 0.01


def test_precision_recall_half_coverage():
    # Fakes cover only one of two real clusters: precision ~1, recall ~0.5.
    rng = np.random.default_rng(10)
    real = np.concatenate([rng.normal(size=(500, 4)), rng.normal(size=(500, 4)) + 50.0])
    fake = rng.normal(size=(1000, 4))
    precision, recall = feature_scores.precision_recall(real, fake, k=3)
    assert precision > 0.9
    assert 0.45 < recall < 0.55
    # The real radii, computed once for several fake sets, give the same answer.
    radii = feature_scores.knn_radii(real, 3)
    assert feature_scores.precision_recall(real, fake, k=3, real_radii=radii) == (precision, recall)
    with pytest.raises(ValueError, match="one radius per real row"):
        feature_scores.precision_recall(real, fake, k=3, real_radii=radii[:10])


def test_precision_recall_blocked_computation_matches_dense(monkeypatch):
    rng = np.random.default_rng(11)
    real, fake = rng.normal(size=(300, 6)), rng.normal(size=(250, 6)) * 1.3
    dense = feature_scores.precision_recall(real, fake, k=5)
    # Force many small blocks; the answer must not depend on the blocking.
    monkeypatch.setattr(feature_scores, "_MAX_BLOCK_ENTRIES", 1000)
    assert feature_scores.precision_recall(real, fake, k=5) == dense
    d = ((real[:, None] - real[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    np.testing.assert_allclose(
        feature_scores.knn_radii(real, 5), np.sort(d, axis=1)[:, 4], rtol=1e-9, atol=1e-9
    )
