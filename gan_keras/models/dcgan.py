"""DCGAN generator and discriminator (Radford et al., 2015), built for the data.

Resolutions: 28 (MNIST-like: 7 -> 14 -> 28) and every power of two from 16 to
256 (4 -> 8 -> ... -> R). The classic DCGAN code's generator emits 32x32 while
its data is 64x64; here both networks are built from the data's resolution and
channels, and `check_image_shape` fails clearly when records and config differ.

Conditional models: G takes a label through an embedding concatenated to z or
through conditional BatchNorm; D is a projection discriminator (Miyato &
Koyama, 2018): logit = psi(h) + <embed(y), h>.
"""

import keras
from keras import layers, ops

from gan_keras.registry import Registry

SUPPORTED_RESOLUTIONS = (16, 28, 32, 64, 128, 256)
MAX_WIDTH_MULTIPLIER = 8

# The names the model config may use; validators and builders check these tables.


def _batch_norm(*, sync_batch_norm: bool, momentum: float) -> layers.Layer:
    return layers.BatchNormalization(synchronized=sync_batch_norm, momentum=momentum)


def _layer_norm(*, sync_batch_norm: bool, momentum: float) -> layers.Layer:
    del sync_batch_norm, momentum  # per example: nothing to synchronise or average
    return layers.LayerNormalization(axis=[1, 2, 3])


# Norm name -> layer factory (None: no normalisation, and convolutions get biases).
# G's "batch" becomes conditional BatchNorm under that conditioning (build_generator).
G_NORMS = Registry("model.g_norm")
G_NORMS.register("batch", _batch_norm)
G_NORMS.register("none", None)
# D's "batch" is refused with wgan_gp: its gradient penalty is per example.
D_NORMS = Registry("model.d_norm")
D_NORMS.register("batch", _batch_norm)
D_NORMS.register("layer", _layer_norm)
D_NORMS.register("none", None)
CONDITIONINGS = Registry("model.conditioning")
CONDITIONINGS.register("embedding", "a label embedding concatenated to z")
CONDITIONINGS.register("conditional_batch_norm", "per-class BatchNorm scale and offset")


def normalize(
    table: Registry, name: str, h, *, sync_batch_norm: bool = False, momentum: float = 0.99
):
    """`h` through the normalisation `name` of `table` (G_NORMS or D_NORMS)."""
    make = table.get(name)
    return h if make is None else make(sync_batch_norm=sync_batch_norm, momentum=momentum)(h)


def weight_init():
    """DCGAN's N(0, 0.02) for conv and dense weights; a fresh initializer per layer.

    Its seed is drawn when called, after `keras.utils.set_random_seed(train.seed)`,
    so initial weights follow the seed and differ between layers. (A shared
    module-level instance would draw one unseeded seed at import for every layer.)
    """
    return keras.initializers.RandomNormal(stddev=0.02)


def _geometry(resolution: int) -> tuple[int, int]:
    """(starting spatial size, number of 2x upsamplings) for a resolution."""
    if resolution not in SUPPORTED_RESOLUTIONS:
        raise ValueError(
            f"model resolution {resolution} is not supported; use one of {SUPPORTED_RESOLUTIONS}"
        )
    if resolution == 28:
        return 7, 2
    n_up = resolution.bit_length() - 1 - 2  # log2(R) - log2(4)
    return 4, n_up


def check_network_resolution(resolution: int, network_resolution: int) -> int:
    """The size the networks are built for: the data's (network_resolution 0) or a larger one.

    28x28 data through the 32x32 DCGAN (network_resolution=32) is how the
    DCGAN paper's code and the article train on MNIST-like data: one more
    layer in each network than the 7 -> 14 -> 28 geometry has.
    """
    if not network_resolution or network_resolution == resolution:
        _geometry(resolution)
        return resolution
    if network_resolution not in SUPPORTED_RESOLUTIONS:
        raise ValueError(
            f"model.network_resolution={network_resolution} is not supported; use 0 or one of "
            f"{SUPPORTED_RESOLUTIONS}"
        )
    if network_resolution < resolution or (network_resolution - resolution) % 2:
        raise ValueError(
            f"model.network_resolution={network_resolution} must be 0, or at least "
            f"data.resolution={resolution} with an even difference (centre padding)"
        )
    return network_resolution


def layer_width(base: int, level: int) -> int:
    """Channels at `level`: doubling per level, capped at MAX_WIDTH_MULTIPLIER x base."""
    return base * min(2**level, MAX_WIDTH_MULTIPLIER)


@keras.saving.register_keras_serializable(package="gan_keras")
class ConditionalBatchNormalization(layers.Layer):
    """BatchNorm whose scale and offset are looked up from the class label."""

    def __init__(self, num_classes, synchronized=False, momentum=0.99, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.synchronized = synchronized
        self.momentum = momentum
        self.norm = layers.BatchNormalization(
            center=False, scale=False, synchronized=synchronized, momentum=momentum
        )

    def build(self, input_shape):
        x_shape, _ = input_shape
        channels = x_shape[-1]
        self.norm.build(x_shape)
        self.gamma = layers.Embedding(self.num_classes, channels, embeddings_initializer="ones")
        self.beta = layers.Embedding(self.num_classes, channels, embeddings_initializer="zeros")
        self.gamma.build((None,))
        self.beta.build((None,))

    def call(self, inputs, training=None):
        x, label = inputs
        x = self.norm(x, training=training)
        gamma = self.gamma(label)[:, None, None, :]
        beta = self.beta(label)[:, None, None, :]
        return x * ops.cast(gamma, x.dtype) + ops.cast(beta, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "synchronized": self.synchronized,
            "momentum": self.momentum,
        }


@keras.saving.register_keras_serializable(package="gan_keras")
class ProjectionLogit(layers.Layer):
    """<embed(y), h>, the class term of a projection discriminator."""

    def __init__(self, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes

    def build(self, input_shape):
        h_shape, _ = input_shape
        self.embedding = layers.Embedding(
            self.num_classes, h_shape[-1], embeddings_initializer=weight_init()
        )
        self.embedding.build((None,))

    def call(self, inputs):
        h, label = inputs
        return ops.sum(ops.cast(self.embedding(label), h.dtype) * h, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 1)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def build_generator(
    *,
    resolution: int,
    channels: int,
    latent_dim: int,
    width: int = 64,
    norm: str = "batch",
    sync_batch_norm: bool = False,
    batch_norm_momentum: float = 0.99,
    num_classes: int = 0,
    conditioning: str = "embedding",
    network_resolution: int = 0,
    name: str = "generator",
) -> keras.Model:
    """z [B, latent_dim] (and label [B] when num_classes > 0) -> images in [-1, 1].

    `network_resolution` > resolution builds the network for that size and
    crops its output's centre (see `check_network_resolution`).
    """
    data_resolution = resolution
    resolution = check_network_resolution(resolution, network_resolution)
    G_NORMS.check(norm)
    CONDITIONINGS.check(conditioning)
    start, n_up = _geometry(resolution)
    z_in = keras.Input((latent_dim,), name="z")
    inputs = [z_in]
    label_in = None
    x = z_in
    if num_classes:
        label_in = keras.Input((), dtype="int32", name="label")
        inputs.append(label_in)
        if conditioning == "embedding":
            embedded = layers.Embedding(num_classes, latent_dim, name="label_embedding")(label_in)
            x = layers.Concatenate()([z_in, embedded])
    use_cbn = bool(num_classes) and conditioning == "conditional_batch_norm"

    def normalize_g(h):
        if norm != "none" and use_cbn:
            return ConditionalBatchNormalization(
                num_classes, synchronized=sync_batch_norm, momentum=batch_norm_momentum
            )([h, label_in])
        return normalize(
            G_NORMS, norm, h, sync_batch_norm=sync_batch_norm, momentum=batch_norm_momentum
        )

    channels0 = layer_width(width, n_up - 1)
    x = layers.Dense(
        start * start * channels0, use_bias=norm == "none", kernel_initializer=weight_init()
    )(x)
    x = layers.Reshape((start, start, channels0))(x)
    x = layers.ReLU()(normalize_g(x))
    for level in reversed(range(n_up - 1)):
        x = layers.Conv2DTranspose(
            layer_width(width, level),
            4,
            strides=2,
            padding="same",
            use_bias=norm == "none",
            kernel_initializer=weight_init(),
        )(x)
        x = layers.ReLU()(normalize_g(x))
    x = layers.Conv2DTranspose(
        channels, 4, strides=2, padding="same", kernel_initializer=weight_init()
    )(x)
    if resolution != data_resolution:
        x = layers.Cropping2D((resolution - data_resolution) // 2)(x)
    # tanh in float32 so mixed-precision samples still span [-1, 1] exactly.
    images = layers.Activation("tanh", dtype="float32", name="images")(x)
    return keras.Model(inputs if num_classes else z_in, images, name=name)


def build_discriminator(
    *,
    resolution: int,
    channels: int,
    width: int = 64,
    norm: str = "batch",
    sync_batch_norm: bool = False,
    batch_norm_momentum: float = 0.99,
    spectral_norm: bool = False,
    num_classes: int = 0,
    network_resolution: int = 0,
    name: str = "discriminator",
) -> keras.Model:
    """images [B, R, R, C] (and label [B]) -> one logit per image, float32.

    `network_resolution` > R pads the images' borders with -1 (black) to that
    size before the network (see `check_network_resolution`).
    """
    data_resolution = resolution
    resolution = check_network_resolution(resolution, network_resolution)
    D_NORMS.check(norm)
    _, n_down = _geometry(resolution)

    def sn(layer):
        return layers.SpectralNormalization(layer) if spectral_norm else layer

    def normalize_d(h):
        return normalize(
            D_NORMS, norm, h, sync_batch_norm=sync_batch_norm, momentum=batch_norm_momentum
        )

    image_in = keras.Input((data_resolution, data_resolution, channels), name="images")
    inputs = [image_in]
    x = image_in
    if resolution != data_resolution:
        # Pad with -1, the value of black in [-1, 1]: shift, zero-pad, shift back.
        x = layers.Rescaling(1.0, offset=1.0)(x)
        x = layers.ZeroPadding2D((resolution - data_resolution) // 2)(x)
        x = layers.Rescaling(1.0, offset=-1.0)(x)
    # DCGAN: no normalisation on the first layer.
    x = sn(layers.Conv2D(width, 4, strides=2, padding="same", kernel_initializer=weight_init()))(x)
    x = layers.LeakyReLU(0.2)(x)
    for level in range(1, n_down):
        x = sn(
            layers.Conv2D(
                layer_width(width, level),
                4,
                strides=2,
                padding="same",
                use_bias=norm == "none",
                kernel_initializer=weight_init(),
            )
        )(x)
        x = layers.LeakyReLU(0.2)(normalize_d(x))
    h = layers.Flatten()(x)
    logit = sn(layers.Dense(1, kernel_initializer=weight_init()))(h)
    if num_classes:
        label_in = keras.Input((), dtype="int32", name="label")
        inputs.append(label_in)
        logit = layers.Add()([logit, ProjectionLogit(num_classes)([h, label_in])])
    logit = layers.Activation("linear", dtype="float32", name="logit")(logit)
    return keras.Model(inputs if num_classes else image_in, logit, name=name)


def discriminator_from_config(
    model_config, *, resolution: int, channels: int, num_classes: int = 0
) -> keras.Model:
    """The DCGAN discriminator from the `model` config section (StyleGAN2's D too)."""
    return build_discriminator(
        resolution=resolution,
        channels=channels,
        width=model_config.d_width,
        norm=model_config.d_norm,
        sync_batch_norm=model_config.sync_batch_norm,
        batch_norm_momentum=model_config.batch_norm_momentum,
        spectral_norm=model_config.spectral_norm,
        num_classes=num_classes,
        network_resolution=model_config.network_resolution,
    )


def networks_from_config(model_config, *, resolution: int, channels: int, num_classes: int = 0):
    """The DCGAN generator and discriminator from the `model` config section."""
    generator = build_generator(
        resolution=resolution,
        channels=channels,
        latent_dim=model_config.latent_dim,
        width=model_config.g_width,
        norm=model_config.g_norm,
        sync_batch_norm=model_config.sync_batch_norm,
        batch_norm_momentum=model_config.batch_norm_momentum,
        num_classes=num_classes,
        conditioning=model_config.conditioning,
        network_resolution=model_config.network_resolution,
    )
    return generator, discriminator_from_config(
        model_config, resolution=resolution, channels=channels, num_classes=num_classes
    )
