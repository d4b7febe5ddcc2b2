"""Sample-quality metrics on feature vectors, in float64 numpy.

All functions take features already extracted (see `feature_extractors`), so
they are independent of the network that produced them:

- `frechet_distance`: the FID formula (Heusel et al. 2017) on any features.
- `kernel_inception_distance`: unbiased MMD^2 with the cubic polynomial kernel
  (Binkowski et al. 2018), averaged over random subsets.
- `classifier_score`: the Inception Score formula (Salimans et al. 2016) on any
  classifier's softmax outputs.
- `precision_recall`: improved precision and recall (Kynkaanniemi et al. 2019).
- `feature_scores`: the ones above that compare a fake set with a real one, together: what
  the evaluate stage, the in-training evaluation and the benchmarks report.
"""

import numpy as np

# Distance blocks are at most this many float64 entries (~64 MB), so 10k x 10k
# (or larger) sets never materialise a full pairwise matrix.
_MAX_BLOCK_ENTRIES = 8_000_000


def _as_features(features, name: str, min_rows: int = 2) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a [N, D] array, got shape {x.shape}")
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows, got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _check_same_dim(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")


def gaussian_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and unbiased covariance [D, D] of [N, D] features (float64)."""
    x = _as_features(features, "features")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a (numerically) positive semi-definite matrix."""
    sym = (matrix + matrix.T) / 2.0
    eigvals, eigvecs = np.linalg.eigh(sym)
    # Round-off makes tiny eigenvalues of rank-deficient covariances negative.
    eigvals = np.clip(eigvals, 0.0, None)
    return (eigvecs * np.sqrt(eigvals)) @ eigvecs.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr(sqrtm(sigma1 @ sigma2)) for PSD sigma1, sigma2.

    sigma1 @ sigma2 is not symmetric, so a general sqrtm (Schur based) can give
    complex parts or fail on singular covariances. It is similar to the PSD
    matrix S1^(1/2) sigma2 S1^(1/2), whose eigenvalues are real and >= 0, so
    the trace is the sum of their square roots, with eigh only.
    """
    root1 = _psd_sqrt(sigma1)
    inner = root1 @ sigma2 @ root1
    eigvals = np.linalg.eigvalsh((inner + inner.T) / 2.0)
    return float(np.sum(np.sqrt(np.clip(eigvals, 0.0, None))))


def frechet_distance_from_statistics(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2))."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = (
        np.atleast_2d(sigma1).astype(np.float64),
        np.atleast_2d(sigma2).astype(np.float64),
    )
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(
            f"statistics shapes disagree: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} "
            f"vs {sigma2.shape}"
        )
    diff = mu1 - mu2
    value = (
        diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    )
    # The exact value is >= 0; round-off can leave a tiny negative.
    return float(max(value, 0.0))


def frechet_distance(features_a, features_b) -> float:
    """Frechet distance between Gaussians fitted to two [N, D] feature sets."""
    a = _as_features(features_a, "features_a")
    b = _as_features(features_b, "features_b")
    _check_same_dim(a, b)
    return frechet_distance_from_statistics(*gaussian_statistics(a), *gaussian_statistics(b))


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    m = x.shape[0]
    k_xx = _polynomial_kernel(x, x)
    k_yy = _polynomial_kernel(y, y)
    k_xy = _polynomial_kernel(x, y)
    # Unbiased: the diagonals (k(x_i, x_i)) are excluded from the within-set means.
    sum_xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    sum_yy = (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(sum_xx + sum_yy - 2.0 * k_xy.mean())


def kernel_inception_distance(
    features_a, features_b, num_subsets: int = 10, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3; (mean, std) over subsets.

    Each subset draws `subset_size` rows without replacement from each set
    (capped at the smaller set size), as in the KID reference implementation.
    """
    a = _as_features(features_a, "features_a")
    b = _as_features(features_b, "features_b")
    _check_same_dim(a, b)
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be >= 1, got {num_subsets}")
    if subset_size < 2:
        raise ValueError(f"subset_size must be >= 2, got {subset_size}")
    m = min(subset_size, a.shape[0], b.shape[0])
    rng = np.random.default_rng(seed)
    values = np.array(
        [
            _mmd2_unbiased(
                a[rng.choice(a.shape[0], m, replace=False)],
                b[rng.choice(b.shape[0], m, replace=False)],
            )
            for _ in range(num_subsets)
        ]
    )
    return float(values.mean()), float(values.std())


def classifier_score(probs, splits: int = 1) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) of [N, K] class probabilities; (mean, std) over splits.

    With a K-class classifier it lies in [1, K]: 1 when every sample gets the
    same prediction, K when predictions are confident and classes balanced.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1:
        raise ValueError(f"probs must be a non-empty [N, K] array, got shape {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("probs must be finite and non-negative")
    if not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("probs rows must sum to 1 (pass softmax outputs, not logits)")
    if not 1 <= splits <= p.shape[0]:
        raise ValueError(f"splits must be in [1, {p.shape[0]}], got {splits}")
    p = p / p.sum(axis=1, keepdims=True)
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(axis=0, keepdims=True)
        # 0 * log(0) = 0: where p(y|x) = 0 the term vanishes (and p(y) > 0 where p(y|x) > 0).
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0)
        scores.append(np.exp(terms.sum(axis=1).mean()))
    scores = np.array(scores)
    return float(scores.mean()), float(scores.std())


def _block_rows(num_cols: int) -> int:
    return max(1, _MAX_BLOCK_ENTRIES // max(num_cols, 1))


def _squared_distances(x: np.ndarray, y: np.ndarray, y_sq: np.ndarray) -> np.ndarray:
    x_sq = np.einsum("ij,ij->i", x, x)
    d = x_sq[:, None] + y_sq[None, :] - 2.0 * (x @ y.T)
    return np.maximum(d, 0.0)


def knn_radii(features, k: int = 3) -> np.ndarray:
    """Squared distance from each row to its k-th nearest other row, [N]."""
    x = _as_features(features, "features", min_rows=k + 1)
    x_sq = np.einsum("ij,ij->i", x, x)
    radii = np.empty(x.shape[0])
    step = _block_rows(x.shape[0])
    for start in range(0, x.shape[0], step):
        d = _squared_distances(x[start : start + step], x, x_sq)
        # Each row's own distance is 0, so it must not count as a neighbour;
        # setting it to inf keeps exact duplicates (distance 0) as neighbours.
        rows = np.arange(d.shape[0])
        d[rows, start + rows] = np.inf
        radii[start : start + d.shape[0]] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return radii


def _coverage(manifold: np.ndarray, radii: np.ndarray, queries: np.ndarray) -> float:
    """Fraction of `queries` inside at least one ball (manifold_i, radius_i)."""
    m_sq = np.einsum("ij,ij->i", manifold, manifold)
    inside = np.zeros(queries.shape[0], dtype=bool)
    step = _block_rows(manifold.shape[0])
    for start in range(0, queries.shape[0], step):
        d = _squared_distances(queries[start : start + step], manifold, m_sq)
        inside[start : start + d.shape[0]] = np.any(d <= radii[None, :], axis=1)
    return float(inside.mean())


def precision_recall(
    real_features, fake_features, k: int = 3, real_radii=None
) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019).

    Each set's manifold is the union of balls around its points with radius the
    distance to the k-th nearest neighbour in the same set. Precision: fraction
    of fake samples inside the real manifold (fidelity). Recall: fraction of
    real samples inside the fake manifold (diversity; a mode-collapsed set of
    identical samples has radius 0 and recall ~0).

    `real_radii`: `knn_radii(real_features, k)`, when the caller scores several
    fake sets against the same real set (the costliest part on 10k reals).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    real = _as_features(real_features, "real_features", min_rows=k + 1)
    fake = _as_features(fake_features, "fake_features", min_rows=k + 1)
    _check_same_dim(real, fake)
    if real_radii is None:
        real_radii = knn_radii(real, k)
    elif np.shape(real_radii) != (real.shape[0],):
        raise ValueError(
            f"real_radii must have one radius per real row, got shape {np.shape(real_radii)}"
        )
    precision = _coverage(real, np.asarray(real_radii, np.float64), fake)
    recall = _coverage(fake, knn_radii(fake, k), real)
    return precision, recall


def feature_scores(
    fake_features,
    real_features,
    *,
    kid_subsets: int,
    kid_subset_size: int,
    seed: int,
    pr_k: int | None = None,
    real_radii=None,
    real_statistics=None,
) -> dict:
    """Every score the pipeline reports of a fake set in feature space, against the real set:
    {"frechet_distance", "kid_mean", "kid_std"} and, when `pr_k` is given, "precision" and
    "recall" (k = pr_k). `real_statistics` (`gaussian_statistics(real_features)`) and
    `real_radii` (`knn_radii(real_features, pr_k)`) let a caller that scores many fake sets
    against one real set compute the real side once; the results are the same."""
    if real_statistics is None:
        real_statistics = gaussian_statistics(real_features)
    kid_mean, kid_std = kernel_inception_distance(
        fake_features, real_features, kid_subsets, kid_subset_size, seed=seed
    )
    scores = {
        "frechet_distance": frechet_distance_from_statistics(
            *gaussian_statistics(fake_features), *real_statistics
        ),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
    }
    if pr_k is not None:
        scores["precision"], scores["recall"] = precision_recall(
            real_features, fake_features, k=pr_k, real_radii=real_radii
        )
    return scores
