"""Latent edits and their directions: `edit` (in-graph) and the directions an export
stores (`build_directions`, eager numpy, once per export).

* SeFa (Shen & Zhou, "Closed-Form Factorization of Latent Semantics in GANs",
  CVPR 2021): the first layer maps z linearly, y = A z (+ b), so the unit
  latent directions that change y most are the top eigenvectors of A^T A
  (`sefa_directions`); for a generator with a mapping network, of the synthesis
  layers' style weights (`style_affine_weight`). No labels or training are needed.
* Named extra directions (for example "towards class X", fitted later with a
  classifier), given as vectors.

Every direction is stored with the length of one standard deviation of the latents
along it (`direction_scales`), so an edit strength counts standard deviations.
"""

import keras
import numpy as np
import tensorflow as tf

from gan_keras.controls.latent_space import ControlSpace
from gan_keras.models import stylegan2

DEFAULT_SEFA_DIRECTIONS = 8
SEFA_KIND = "sefa"
CLASS_KIND = "class"


def edit(z: tf.Tensor, directions: tf.Tensor, direction_index, strength) -> tf.Tensor:
    """z + strength * directions[direction_index]; the index must be in range."""
    z = tf.convert_to_tensor(z, tf.float32)
    directions = tf.convert_to_tensor(directions, tf.float32)
    index = tf.convert_to_tensor(direction_index, tf.int32)
    count = tf.shape(directions)[0]
    checks = [
        tf.debugging.assert_non_negative(index, message="direction must be >= 0"),
        tf.debugging.assert_less(
            index, count, message="direction index out of range: must be < the number of directions"
        ),
    ]
    with tf.control_dependencies(checks):
        return z + tf.cast(strength, tf.float32) * tf.gather(directions, index)


def first_layer_z_weight(generator: keras.Model, latent_dim: int) -> np.ndarray | None:
    """The matrix A^T [latent_dim, units] of the first Dense layer's map from z, if z enters one.

    Recognised: z fed straight into a Dense layer, or concatenated with other
    inputs (the label embedding of networks.build_generator's conditional
    "embedding" mode) just before it; the rows of the kernel that multiply z
    are then the map from z. None for other wirings.
    """
    z_input = generator.inputs[0]
    dense = next(
        (layer for layer in generator.layers if isinstance(layer, keras.layers.Dense)), None
    )
    if dense is None:
        return None
    try:
        dense_input = dense.input
    except (AttributeError, ValueError):  # a layer called more than once has no single input
        return None
    kernel = np.asarray(dense.kernel.numpy(), np.float64)
    if dense_input is z_input:
        return kernel if kernel.shape[0] == latent_dim else None
    producer = dense_input._keras_history.operation  # the layer whose output feeds the Dense
    if not isinstance(producer, keras.layers.Concatenate) or producer.axis not in (-1, 1):
        return None
    offset = 0
    for part in producer.input:
        if part is z_input:
            rows = kernel[offset : offset + latent_dim]
            return rows if rows.shape[0] == latent_dim else None
        offset += int(part.shape[-1])
    return None


def _jacobian_gram_at_mean(generator: keras.Model, latent_dim: int) -> np.ndarray:
    """J^T J of the whole generator at z = 0 (label 0 if conditional), J = d images / d z.

    For a generator whose first layer is not a recognisable Dense, this is the
    same quadratic form SeFa uses, taken from the generator's linearisation
    at the mean latent instead of from its first layer's weights.
    """
    z0 = tf.zeros([latent_dim, latent_dim], tf.float32)
    conditional = len(generator.inputs) > 1
    # One batch: row i carries the tangent e_i, so the JVP's row i is J e_i.
    with tf.autodiff.ForwardAccumulator(z0, tf.eye(latent_dim)) as accumulator:
        if conditional:
            images = generator([z0, tf.zeros([latent_dim], tf.int32)], training=False)
        else:
            images = generator(z0, training=False)
    columns = np.asarray(accumulator.jvp(images), np.float64).reshape(latent_dim, -1)
    return columns @ columns.T


def _top_eigenvectors(gram: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (eigenvalue-descending) unit eigenvectors [k, n] of a symmetric matrix, and values."""
    values, vectors = np.linalg.eigh(gram)
    order = np.argsort(values)[::-1][:k]
    vectors = vectors[:, order].T
    # Eigenvectors are defined up to sign; fix it so exports are reproducible.
    signs = np.sign(vectors[np.arange(len(order)), np.argmax(np.abs(vectors), axis=1)])
    vectors = vectors * np.where(signs == 0, 1.0, signs)[:, None]
    return vectors, values[order]


def style_affine_weight(generator: keras.Model) -> np.ndarray:
    """[w_dim, sum of input channels]: the style affines' kernels of every synthesis
    convolution of a generator with a mapping network, side by side.

    SeFa's StyleGAN form: styles are y = A w + b, one A per layer, so the w directions that
    move the styles most are the top eigenvectors of sum_l A_l^T A_l. The equalised-lr gains
    are one constant for every affine (all take w), so they do not change the eigenvectors;
    the toRGB affines are left out, as in SeFa (they set colours, not content).
    """
    style = stylegan2.StyleParts(generator)
    kernels = [np.asarray(conv.affine.kernel.numpy(), np.float64) for conv in style.synthesis.convs]
    return np.concatenate(kernels, axis=1)


def sefa_directions_with_info(
    generator: keras.Model, latent_dim: int, k: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """(directions [k, dim] float32, eigenvalues [k], method) for `sefa_directions`; dim is
    the `ControlSpace`'s (w_dim for a generator with a mapping network)."""
    space = ControlSpace(generator, latent_dim)
    if not 1 <= k <= space.dim:
        raise ValueError(f"k must be in [1, {space.name} dimensions={space.dim}], got {k}")
    if space.name == "w":
        weight = style_affine_weight(generator)
        vectors, values = _top_eigenvectors(weight @ weight.T, k)
        return vectors.astype(np.float32), values, "style_affine_layers"
    weight = first_layer_z_weight(generator, latent_dim)
    if weight is not None:
        # Keras kernels are A^T ([in, out] for y = z A^T), so A^T A = kernel @ kernel^T.
        gram, method = weight @ weight.T, "first_dense_layer"
    else:
        gram, method = _jacobian_gram_at_mean(generator, latent_dim), "jacobian_at_mean_latent"
    vectors, values = _top_eigenvectors(gram, k)
    return vectors.astype(np.float32), values, method


def sefa_directions(
    generator: keras.Model, latent_dim: int, k: int = DEFAULT_SEFA_DIRECTIONS
) -> tuple[np.ndarray, list[str]]:
    """SeFa's top-k latent directions: ([k, latent_dim] unit rows, ["sefa_0", ...]).

    Ordered by eigenvalue, largest (the direction that moves the first
    layer's output most) first. Eager numpy; runs once per export.
    """
    vectors, _, _ = sefa_directions_with_info(generator, latent_dim, k)
    return vectors, [f"sefa_{i}" for i in range(len(vectors))]


def build_directions(
    generator: keras.Model,
    latent_dim: int,
    *,
    k: int | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, list[dict]]:
    """All edit directions of an export: SeFa's, then the `extra` named ones (kind "class").

    Returns (vectors [D, latent_dim] float32, unit rows; entries for
    directions.json: {"index", "name", "kind", ...}). `k` defaults to
    min(8, latent_dim). Extra vectors are normalised; "input_norm" keeps
    their given length.
    """
    space = ControlSpace(generator, latent_dim)
    k = min(DEFAULT_SEFA_DIRECTIONS, space.dim) if k is None else k
    vectors, eigenvalues, method = sefa_directions_with_info(generator, latent_dim, k)
    rows = list(vectors)
    entries = [
        {
            "index": i,
            "name": f"sefa_{i}",
            "kind": SEFA_KIND,
            "method": method,
            "eigenvalue": float(eigenvalues[i]),
        }
        for i in range(len(vectors))
    ]
    names = {entry["name"] for entry in entries}
    for name, vector in (extra or {}).items():
        if not isinstance(name, str) or not name or name in names:
            raise ValueError(
                f"direction name {name!r} must be a non-empty string not already "
                f"used (taken: {sorted(names)})"
            )
        vector = np.asarray(vector, np.float64)
        if vector.shape != (space.dim,):
            raise ValueError(
                f"direction {name!r} must have shape ({space.dim},) ({space.name}-space), "
                f"got {vector.shape}"
            )
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(norm) or norm == 0.0:
            raise ValueError(f"direction {name!r} must be finite and non-zero")
        rows.append((vector / norm).astype(np.float32))
        entries.append(
            {"index": len(entries), "name": name, "kind": CLASS_KIND, "input_norm": norm}
        )
        names.add(name)
    rows = np.stack(rows)
    scales = direction_scales(generator, latent_dim, rows)
    if space.name == "w":
        for entry, scale in zip(entries, scales, strict=True):
            entry["w_std"] = float(scale)
    return (rows * scales[:, None]).astype(np.float32), entries


# How many prior draws measure w's spread along each edit direction.
W_SPREAD_SAMPLES = 10_000


def direction_scales(generator: keras.Model, latent_dim: int, unit_vectors) -> np.ndarray:
    """[D] lengths the edit directions are stored with, so a strength counts standard
    deviations of the latents along the direction: 1 in z (the prior is N(0, I)); in w, the
    standard deviation of mapped prior draws along it (fixed seed; GANSpace's unit), since
    w's spread differs by direction and has no closed form."""
    unit_vectors = np.asarray(unit_vectors, np.float64)
    space = ControlSpace(generator, latent_dim)
    if space.name == "z":
        return np.ones(len(unit_vectors))
    z = tf.random.stateless_normal([W_SPREAD_SAMPLES, latent_dim], seed=[0, 3])
    labels = None
    if space.style.mapping.num_classes:
        labels = tf.range(W_SPREAD_SAMPLES) % space.style.mapping.num_classes
    w = np.asarray(space.from_z(z, labels), np.float64)
    return np.std(w @ unit_vectors.T, axis=0)
