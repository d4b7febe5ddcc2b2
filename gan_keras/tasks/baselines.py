"""Classical baselines, the outside references the evaluation compares G with:
`bicubic_upsample` (super_resolution), `classical_fill` (inpainting: harmonic
fill). Translation has none; `baseline` says so.
"""

import warnings

import numpy as np
import tensorflow as tf

from gan_keras.tasks import TASKS, task_field

# classical_fill solves this many images at a time.
_FILL_CHUNK = 256


def bicubic_upsample(condition, scale: int) -> np.ndarray:
    """float32 numpy [N, H, W, C] in [-1, 1]: conditions [N, H/s, W/s, C] resized up by
    `scale` with bicubic interpolation (tf.image.resize, half-pixel centres), clipped."""
    condition = tf.convert_to_tensor(condition, tf.float32)
    h, w = condition.shape[1], condition.shape[2]
    big = tf.image.resize(condition, [h * scale, w * scale], method="bicubic")
    return tf.clip_by_value(big, -1.0, 1.0).numpy()


def _neighbour_sum(u: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Sum over the 4-neighbours q of p of inside[q] * u[q]; zero beyond the image."""
    v = u * inside
    out = np.zeros_like(u)
    out[:, 1:] += v[:, :-1]
    out[:, :-1] += v[:, 1:]
    out[:, :, 1:] += v[:, :, :-1]
    out[:, :, :-1] += v[:, :, 1:]
    return out


def classical_fill(
    condition, *, tol: float = 1e-7, max_iterations: int | None = None
) -> np.ndarray:
    """Harmonic (membrane) inpainting: float32 numpy [N, H, W, C] from inpainting
    conditions [N, H, W, C + 1].

    Inside the hole every pixel is the mean of its 4 neighbours (the discrete Laplace
    equation), the known pixels being the boundary condition; at the image border
    missing neighbours are left out (zero normal derivative). Solved to convergence
    by conjugate gradients on the hole pixels, vectorised over images and channels
    (float64; relative residual < `tol`; an affine image is filled exactly).
    Images with no known pixel are filled with 0 (mid grey).
    """
    condition = np.asarray(condition)
    if condition.ndim != 4 or condition.shape[-1] < 2:
        raise ValueError(
            f"classical_fill expects inpainting conditions [N, H, W, C + 1], got "
            f"shape {condition.shape}"
        )
    # In chunks, so a whole eval split does not hold a dozen float64 copies at once.
    return np.concatenate(
        [
            _harmonic_fill(condition[i : i + _FILL_CHUNK].astype(np.float64), tol, max_iterations)
            for i in range(0, len(condition), _FILL_CHUNK)
        ]
        or [condition[..., :-1]]
    ).astype(np.float32)


def _harmonic_fill(condition: np.ndarray, tol: float, max_iterations: int | None) -> np.ndarray:
    known_pixels = condition[..., :-1]
    hole = condition[..., -1:] >= 0.5  # [N, H, W, 1]
    hole_c = np.broadcast_to(hole, known_pixels.shape).astype(np.float64)
    keep_c = 1.0 - hole_c
    n, h, w, _ = known_pixels.shape
    ones = np.ones_like(hole_c)
    degree = _neighbour_sum(ones, ones)  # 4 inside, 3 on edges, 2 in corners

    # A x = b on hole pixels: A u = degree * u - sum of hole neighbours' u.
    def apply(u):
        return hole_c * (degree * u - _neighbour_sum(u, hole_c))

    known = known_pixels * keep_c
    b = hole_c * _neighbour_sum(known, keep_c)
    x = np.zeros_like(b)
    r = b - apply(x)
    p = r.copy()
    axes = (1, 2)
    rr = np.sum(r * r, axis=axes, keepdims=True)
    stop = (tol**2) * np.maximum(np.sum(b * b, axis=axes, keepdims=True), 1e-30)
    if max_iterations is None:
        max_iterations = 10 * (h + w) + 100
    active = rr > stop
    for _ in range(max_iterations):
        if not np.any(active):
            break
        ap = apply(p)
        pap = np.sum(p * ap, axis=axes, keepdims=True)
        alpha = np.where(active, rr / np.where(pap > 0, pap, 1.0), 0.0)
        x += alpha * p
        r -= alpha * ap
        rr_new = np.sum(r * r, axis=axes, keepdims=True)
        beta = np.where(active, rr_new / np.where(rr > 0, rr, 1.0), 0.0)
        p = r + beta * p
        rr = rr_new
        active = rr > stop
    if np.any(active):
        warnings.warn(
            f"classical_fill: {int(np.sum(np.any(active, axis=(1, 2, 3))))} of {n} "
            f"images did not converge in {max_iterations} iterations",
            stacklevel=3,
        )
    no_known = ~np.any(~hole, axis=(1, 2, 3))
    x[no_known] = 0.0
    filled = known + hole_c * x
    return np.clip(filled, -1.0, 1.0)


def baseline(task_config, condition) -> np.ndarray:
    """The classical baseline's prediction [N, H, W, C] (float32 numpy in [-1, 1]) for
    conditions [N, ...]: bicubic upsampling (super_resolution) or harmonic fill
    (inpainting).

    Translation has no classical baseline — nothing classical maps edges or luminance
    back to an image — so its reference is the L1-only model (task.adversarial_weight
    = 0); it and `generate` raise ValueError.
    """
    task = TASKS.get(task_field(task_config, "name"))
    if task.name == "super_resolution":
        return bicubic_upsample(condition, int(task_field(task_config, "scale")))
    if task.name == "inpainting":
        return classical_fill(condition)
    raise ValueError(
        f"task.name={task.name!r} has no classical baseline"
        + (
            " (its reference is the L1-only model, task.adversarial_weight=0)"
            if task.name == "translation"
            else ""
        )
    )
