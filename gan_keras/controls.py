"""Controllable generation: truncation, interpolation, projection and latent edits.

The in-graph functions (`truncate`, `slerp`, `interpolation_weights`,
`project`, `edit`, `psnr_uint8`, `to_uint8`) use only TensorFlow ops, so they
run inside ``tf.function`` and the exported SavedModel's signatures (see
gan_keras.export.sampling_model), where Python control flow and Keras optimizers are not
available. Argument checks are ``tf.debugging`` assertions, which fail with
``InvalidArgumentError`` at run time.

The edit directions are computed once, eagerly with numpy, when a generator is
exported (`build_directions`):

* SeFa (Shen & Zhou, "Closed-Form Factorization of Latent Semantics in GANs",
  CVPR 2021): the first layer maps z linearly, y = A z (+ b), so the unit
  latent directions that change y most are the top eigenvectors of A^T A.
  No labels or training are needed.
* Named extra directions (for example "towards class X", fitted later with a
  classifier), given as vectors.

Every direction is stored with the length of one standard deviation of the latents
along it (`direction_scales`: unit norm in z, whose prior is N(0, I)), so an edit
strength counts standard deviations in either space.

Generators with a mapping network (gan_keras.models.stylegan2) are controlled in w-space
(`ControlSpace`): truncation pulls towards their tracked `w_avg`, projection fits w
(starting from `w_avg`, as StyleGAN2's projector does) and edits move w, along SeFa
directions of the synthesis layers' style weights (SeFa's StyleGAN variant). z -> w is
non-linear, so a straight line in z is a curve in w, and w is where StyleGAN, GANSpace and
SeFa found the disentangled directions. They also get a `style_mix` signature
(`style_mix_images`, `add_style_mix_endpoint`).
"""

import math

import keras
import numpy as np
import tensorflow as tf

from gan_keras.models import stylegan2

# The DCGAN's prior is N(0, I): its mean latent, the truncation centre, is 0.
GAUSSIAN_MEAN_LATENT = 0.0
DEFAULT_SEFA_DIRECTIONS = 8
SEFA_KIND = "sefa"
CLASS_KIND = "class"

# Projection defaults (Adam on z with a cosine-decayed learning rate).
PROJECT_RESTARTS = 4
PROJECT_LEARNING_RATE = 0.1
_ADAM_BETA_1 = 0.9
_ADAM_BETA_2 = 0.999
_ADAM_EPSILON = 1e-8


def to_uint8(images: tf.Tensor) -> tf.Tensor:
    """In-graph twin of gan_keras.images.to_uint8: round((x + 1) * 127.5), clipped."""
    images = tf.cast(images, tf.float32)
    return tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


def uint8_to_float(images: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]; `to_uint8` maps the result back exactly."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def psnr_uint8(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """PSNR in dB per image of two uint8 batches [N, H, W, C] (peak 255; +inf if identical)."""
    diff = tf.cast(a, tf.float32) - tf.cast(b, tf.float32)
    mse = tf.reduce_mean(tf.square(diff), axis=tf.range(1, tf.rank(diff)))
    return 10.0 * tf.math.log(255.0**2 / mse) / math.log(10.0)


# --- truncation and interpolation ---------------------------------------------


def truncate(z: tf.Tensor, psi, mean_latent=GAUSSIAN_MEAN_LATENT) -> tf.Tensor:
    """The truncation trick: mean + psi * (z - mean), psi in [0, 1].

    psi = 1 returns z unchanged (bit for bit with mean 0); psi = 0 returns the
    mean latent for every sample.
    """
    z = tf.convert_to_tensor(z, tf.float32)
    psi = checked_truncation(psi)
    mean_latent = tf.cast(mean_latent, tf.float32)
    return mean_latent + psi * (z - mean_latent)


def checked_truncation(psi) -> tf.Tensor:
    """psi as float32, once an in-graph check has found it in [0, 1]."""
    psi = tf.convert_to_tensor(psi, tf.float32)
    checks = [
        tf.debugging.assert_greater_equal(psi, 0.0, message="truncation must be in [0, 1]"),
        tf.debugging.assert_less_equal(psi, 1.0, message="truncation must be in [0, 1]"),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(psi)


class ControlSpace:
    """The latent space a generator's controls act in: truncation, projection and edits.

    ``name`` "z" (the DCGAN: the prior's latents, mean 0) or "w" (a generator with a
    mapping network: one w for every synthesis layer, mean the tracked `w_avg`); ``dim``
    its size. Conditional generators take their label in `from_z` (w carries the class)
    and, in z-space, again in `images`.
    """

    def __init__(self, generator: keras.Model, latent_dim: int):
        self.generator = generator
        self.style = stylegan2.StyleParts.of(generator)
        self.name = "z" if self.style is None else "w"
        self.dim = int(latent_dim) if self.style is None else self.style.mapping.w_dim

    @property
    def labelled_images(self) -> bool:
        """Whether `images` needs the label (z-space of a conditional generator)."""
        return self.style is None and len(self.generator.inputs) > 1

    def from_z(self, z, label=None) -> tf.Tensor:
        """The latents of prior draws `z` in this space: z itself, or w = mapping(z, label)."""
        z = tf.convert_to_tensor(z, tf.float32)
        if self.style is None:
            return z
        return tf.cast(self.style.map(z, label), tf.float32)

    def truncate(self, latents, psi) -> tf.Tensor:
        """mean + psi * (latents - mean), psi in [0, 1] (checked): towards 0 in z, w_avg in w."""
        if self.style is None:
            return truncate(latents, psi)
        return self.style.truncate(
            tf.convert_to_tensor(latents, tf.float32), checked_truncation(psi)
        )

    def projection_starts(self, draws, label=None) -> tf.Tensor:
        """`project`'s starting latents for prior draws [B, latent_dim]: an all-zero draw
        starts at the space's mean (0, or w_avg as in StyleGAN2's projector), others at
        their latents in this space."""
        draws = tf.convert_to_tensor(draws, tf.float32)
        if self.style is None:
            return draws
        at_mean = tf.reduce_all(tf.equal(draws, 0.0), axis=1, keepdims=True)
        w_avg = tf.cast(self.style.mapping.w_avg, tf.float32)[None]
        return tf.where(at_mean, w_avg, self.from_z(draws, label))

    def images(self, latents, label=None) -> tf.Tensor:
        """Float32 images in [-1, 1] of latents in this space, inference mode."""
        if self.style is None:
            inputs = latents if label is None else [latents, label]
            return tf.cast(self.generator(inputs, training=False), tf.float32)
        return self.style.synthesize(self.style.broadcast(latents))


def truncated_images(generator: keras.Model, z, psi, label=None) -> tf.Tensor:
    """Float images of latents `z` (and labels) truncated by psi in [0, 1], inference mode.

    With a mapping network (StyleGAN2) the truncation is in w-space, towards the tracked
    `w_avg` (StyleGAN's truncation trick: w-space is where the average is meaningful);
    otherwise in z-space towards the prior's mean, i.e. G(truncate(z, psi)).
    """
    space = ControlSpace(generator, int(tf.convert_to_tensor(z).shape[-1]))
    return space.images(space.truncate(space.from_z(z, label), psi), label)


def style_mix_images(generator: keras.Model, z_coarse, z_fine, crossover, label=None):
    """The style-mixing grid [len(z_coarse) * len(z_fine), H, W, C] float, row-major: image
    (i, j) takes the styles of layers < crossover (ws rows, see gan_keras.models.stylegan2) from
    z_coarse[i] and the rest from z_fine[j]. `label`: one class for every image (or None)."""
    style = stylegan2.StyleParts(generator)
    crossover = tf.convert_to_tensor(crossover, tf.int32)
    checks = [
        tf.debugging.assert_non_negative(crossover, message="crossover must be >= 0"),
        tf.debugging.assert_less_equal(
            crossover, style.num_ws, message=f"crossover must be <= num_ws={style.num_ws}"
        ),
    ]
    rows, cols = tf.shape(z_coarse)[0], tf.shape(z_fine)[0]

    def map_all(z):
        labels = None if label is None else tf.fill([tf.shape(z)[0]], label)
        return style.broadcast(style.map(z, labels))

    with tf.control_dependencies(checks):
        ws_coarse = tf.repeat(map_all(z_coarse), cols, axis=0)  # row i, repeated per column
        ws_fine = tf.tile(map_all(z_fine), [rows, 1, 1])  # columns 0..cols-1, per row
        return style.synthesize(stylegan2.mix_styles(ws_coarse, ws_fine, crossover))


def interpolation_weights(steps) -> tf.Tensor:
    """[steps] float32 from exactly 0 to exactly 1; steps >= 2."""
    steps = tf.convert_to_tensor(steps, tf.int32)
    check = tf.debugging.assert_greater_equal(
        steps, 2, message="interpolation steps must be >= 2 (the two end points)"
    )
    with tf.control_dependencies([check]):
        # i / (steps - 1) is exact at both ends, unlike an accumulated linspace.
        return tf.cast(tf.range(steps), tf.float32) / tf.cast(steps - 1, tf.float32)


def slerp(z_a: tf.Tensor, z_b: tf.Tensor, steps) -> tf.Tensor:
    """Spherical interpolation of two latents [latent_dim] -> [steps, latent_dim].

    Gaussian latents concentrate near a sphere; a straight line between two of
    them passes through the low-norm interior, which the generator rarely saw
    in training. Row 0 is `z_a` and the last row `z_b`, exactly. Nearly
    parallel (or anti-parallel, or zero) latents have no well-defined great
    circle, so those fall back to linear interpolation.
    """
    z_a = tf.convert_to_tensor(z_a, tf.float32)
    z_b = tf.convert_to_tensor(z_b, tf.float32)
    t = interpolation_weights(steps)[:, None]
    norm_a = tf.norm(z_a)
    norm_b = tf.norm(z_b)
    unit_a = z_a / tf.maximum(norm_a, 1e-12)
    unit_b = z_b / tf.maximum(norm_b, 1e-12)
    # 2 * atan2(|a - b|, |a + b|) is accurate at small angles, where acos(a . b) is not.
    omega = 2.0 * tf.atan2(tf.norm(unit_a - unit_b), tf.norm(unit_a + unit_b))
    sin_omega = tf.sin(omega)
    degenerate = tf.logical_or(sin_omega < 1e-4, tf.minimum(norm_a, norm_b) < 1e-12)

    def linear():
        return (1.0 - t) * z_a + t * z_b

    def spherical():
        return (tf.sin((1.0 - t) * omega) / sin_omega) * z_a + (tf.sin(t * omega) / sin_omega) * z_b

    path = tf.cond(degenerate, linear, spherical)
    # The formulas are exact at t = 0 and 1 only up to rounding of sin(omega)/sin(omega);
    # the end points are meant to be the given latents, so set them.
    return tf.concat([z_a[None], path[1:-1], z_b[None]], axis=0)


# --- projection -----------------------------------------------------------------


def project(
    generator_fn,
    images_float: tf.Tensor,
    steps,
    *,
    latent_dim: int,
    label=None,
    num_restarts: int = PROJECT_RESTARTS,
    learning_rate: float = PROJECT_LEARNING_RATE,
    seed: int = 0,
    feature_fn=None,
    feature_weight: float = 1.0,
    start_fn=None,
) -> dict:
    """Finds latents whose generated images match `images_float` ([N, H, W, C] in [-1, 1]).

    `generator_fn(z, label)` (label None when unconditional) returns float
    images. Each image is fitted from `num_restarts` starting points, the mean
    latent 0 and random normal draws (fixed by `seed` and the same for every
    image, so an image's result does not depend on the batch it came in), by
    `steps` steps of Adam on z with a cosine-decayed learning rate, minimising
    the per-image pixel MSE plus `feature_weight` times the MSE of
    `feature_fn(images)` when given. The Adam update is written out with
    tensors, since a Keras optimizer cannot live in a SavedModel signature.
    `start_fn(draws, labels)` maps the starting draws [R * N, latent_dim] to the
    latents fitted (default: the draws, fitting z); `ControlSpace.projection_starts`
    fits w from w_avg and the draws' w.

    Returns {"z": [N, latent_dim], "images_float": reconstructions, "psnr":
    [N] dB of the uint8 reconstruction against the uint8 target}; the best
    restart (lowest final loss) per image.
    """
    if num_restarts < 1:
        raise ValueError(f"num_restarts must be >= 1, got {num_restarts}")
    target = tf.convert_to_tensor(images_float, tf.float32)
    steps = tf.convert_to_tensor(steps, tf.int32)
    steps_check = tf.debugging.assert_non_negative(steps, message="projection steps must be >= 0")
    num_images = tf.shape(target)[0]

    # Restart r of image i is row r * N + i.
    starts = tf.concat(
        [
            tf.zeros([1, latent_dim], tf.float32),
            tf.random.stateless_normal([num_restarts - 1, latent_dim], seed=[seed, 2]),
        ],
        axis=0,
    )
    z0 = tf.repeat(starts, num_images, axis=0)
    labels = (
        None if label is None else tf.tile(tf.convert_to_tensor(label, tf.int32), [num_restarts])
    )
    if start_fn is not None:
        z0 = tf.convert_to_tensor(start_fn(z0, labels), tf.float32)
    targets = tf.tile(target, [num_restarts, 1, 1, 1])
    target_features = None if feature_fn is None else feature_fn(targets)

    def losses(z):
        images = tf.cast(generator_fn(z, labels), tf.float32)
        per_image = tf.reduce_mean(tf.square(images - targets), axis=[1, 2, 3])
        if feature_fn is not None:
            features = tf.reshape(feature_fn(images) - target_features, [tf.shape(z)[0], -1])
            per_image += feature_weight * tf.reduce_mean(tf.square(features), axis=1)
        return per_image, images

    total_steps = tf.cast(tf.maximum(steps, 1), tf.float32)

    def body(i, z, m, v):
        with tf.GradientTape() as tape:
            tape.watch(z)
            per_image, _ = losses(z)
            # Summed, so each candidate's gradient is its own loss's.
            loss = tf.reduce_sum(per_image)
        grad = tape.gradient(loss, z)
        step = tf.cast(i + 1, tf.float32)
        m = _ADAM_BETA_1 * m + (1.0 - _ADAM_BETA_1) * grad
        v = _ADAM_BETA_2 * v + (1.0 - _ADAM_BETA_2) * tf.square(grad)
        m_hat = m / (1.0 - tf.pow(_ADAM_BETA_1, step))
        v_hat = v / (1.0 - tf.pow(_ADAM_BETA_2, step))
        # Cosine decay: large early steps to find the basin, small late ones to settle in it.
        rate = learning_rate * 0.5 * (1.0 + tf.cos(math.pi * tf.cast(i, tf.float32) / total_steps))
        z = z - rate * m_hat / (tf.sqrt(v_hat) + _ADAM_EPSILON)
        return i + 1, z, m, v

    with tf.control_dependencies([steps_check]):
        zeros = tf.zeros_like(z0)
        _, z, _, _ = tf.while_loop(
            lambda i, *_: i < steps, body, [tf.constant(0, tf.int32), z0, zeros, zeros]
        )
    per_image, images = losses(z)
    best = tf.argmin(
        tf.reshape(per_image, [num_restarts, num_images]), axis=0, output_type=tf.int32
    )
    rows = best * num_images + tf.range(num_images)
    reconstructions = tf.gather(images, rows)
    return {
        "z": tf.gather(z, rows),
        "images_float": reconstructions,
        "psnr": psnr_uint8(to_uint8(reconstructions), to_uint8(target)),
    }


# --- edit directions --------------------------------------------------------------


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


# --- StyleGAN2 exports ----------------------------------------------------------------

STYLE_MIX_SIGNATURE = "style_mix"


def style_model_info(generator: keras.Model, signatures: list[str]) -> dict:
    """What model_info.json adds for a generator with a mapping network (else nothing): the
    `style_mix` signature, `num_ws` (the crossover's range) and where truncation happens."""
    if not stylegan2.has_mapping_network(generator):
        return {}
    return {
        "signatures": [*signatures, STYLE_MIX_SIGNATURE],
        "num_ws": stylegan2.StyleParts(generator).num_ws,
        "truncation_space": "w",
    }


def add_style_mix_endpoint(archive, generator: keras.Model, latent_dim: int, num_classes: int):
    """Adds `style_mix` to a keras.export.ExportArchive of a generator with a mapping network.

    Inputs: ``seeds_coarse`` int64 [R], ``seeds_fine`` int64 [C], ``crossover`` int32 scalar in
    [0, num_ws] (and ``label`` int32 scalar for conditional models: every image's class).
    Outputs: ``images`` uint8 [R * C, H, W, C] and ``images_float``, row-major: image i * C + j
    takes the styles of layers < crossover from seed seeds_coarse[i] and the rest from
    seeds_fine[j], where a seed's latent is the ``sample`` signature's for that seed (so
    crossover = num_ws repeats ``sample(1, seeds_coarse[i])`` along row i and crossover = 0
    repeats ``sample(1, seeds_fine[j])`` down column j).
    """
    if not stylegan2.has_mapping_network(generator):
        return

    def seed_latents(seeds):
        # Exactly the `sample` signature's latent of each seed: stateless_normal(seed=[s, 0]).
        return tf.map_fn(
            lambda s: tf.random.stateless_normal([latent_dim], tf.stack([s, tf.zeros_like(s)])),
            seeds,
            fn_output_signature=tf.float32,
        )

    def grid(seeds_coarse, seeds_fine, crossover, label=None):
        images = style_mix_images(
            generator, seed_latents(seeds_coarse), seed_latents(seeds_fine), crossover, label
        )
        images = tf.cast(images, tf.float32)
        return {"images": to_uint8(images), "images_float": images}

    specs = [
        tf.TensorSpec([None], tf.int64, name="seeds_coarse"),
        tf.TensorSpec([None], tf.int64, name="seeds_fine"),
        tf.TensorSpec([], tf.int32, name="crossover"),
    ]
    if num_classes:

        def style_mix(seeds_coarse, seeds_fine, crossover, label):
            checks = [
                tf.debugging.assert_non_negative(label, message="label must be >= 0"),
                tf.debugging.assert_less(
                    label, num_classes, message=f"label must be < num_classes={num_classes}"
                ),
            ]
            with tf.control_dependencies(checks):
                label = tf.identity(label)
            return grid(seeds_coarse, seeds_fine, crossover, label)

        specs.append(tf.TensorSpec([], tf.int32, name="label"))
    else:

        def style_mix(seeds_coarse, seeds_fine, crossover):
            return grid(seeds_coarse, seeds_fine, crossover)

    archive.add_endpoint(STYLE_MIX_SIGNATURE, style_mix, input_signature=specs)
