"""StyleGAN2 generator (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN",
CVPR 2020), built for the data like the DCGAN in gan_keras.models.dcgan.

One concern, kept whole (over 500 lines): one architecture's layers and builder.

    z [B, latent_dim] (+ label) --mapping--> w [B, w_dim] --broadcast--> ws [B, num_ws, w_dim]
    ws --synthesis--> images [B, R, R, C]

- Mapping network: z (and, for conditional models, an embedded label, as StyleGAN2-ADA does)
  normalised to unit second moment, then `mapping_layers` dense layers with a 0.01 learning-rate
  multiplier. It also holds `w_avg`, the running mean of w that truncation pulls towards; the
  GAN's train step updates it (gan_keras.training.gan) and it is checkpointed with the generator.
- Synthesis network: a learned 4x4 constant, then per resolution two 3x3 modulated convolutions
  (the first after a bilinear 2x upsampling) with weight demodulation, per-pixel noise scaled by
  a learned strength, and a skip-connected 1x1 toRGB whose outputs are upsampled and summed.
  Layer k of the synthesis reads ws[:, k]: convolution i reads ws[:, i], each block's toRGB
  reads the index after its convolutions (the next block's first convolution shares it), so
  num_ws = number of convolutions + 1, and "layers < crossover" in style mixing means
  ws[:, :crossover].
- Equalised learning rate everywhere: weights are stored as N(0, 1) / lr_multiplier and scaled
  by lr_multiplier / sqrt(fan_in) when used, so Adam's per-parameter step sizes are balanced.

Modulated convolution. Convolving x with per-sample weights w'_ijk = s_i w_ijk and
demodulating by sigma_j = sqrt(sum_ik w'_ijk^2) equals, because both factors are per-sample
scalars per input or output channel:  conv(x * s, w) * (1 / sigma). That is the form used
here (NHWC, one shared-weight `tf.nn.conv2d`), since TensorFlow's CPU kernels do not run the
grouped convolution the fused per-sample form needs. Tests check it against a per-sample
computation of the definition.

No BatchNorm anywhere, so the EMA generator needs no re-estimated statistics; its `w_avg` and
constant noise buffers are copied from the live generator (StyleGAN2-ADA copies buffers too).

Noise inputs: at inference (and whenever no noise is passed) every layer adds its own fixed
noise image (StyleGAN2's noise_mode='const'), so a SavedModel's `sample(seed)` is
reproducible. Training passes fresh noise drawn by the GAN from its stateless, per-replica
sliced random streams, which keeps 1-replica and N-replica training identical.

Images pass a final tanh so the generator keeps the pipeline's [-1, 1] contract (StyleGAN2
itself clamps a linear output; genforce's reimplementation offers the same `final_tanh`).
"""

import math

import keras
import tensorflow as tf
from keras import layers, ops

from gan_keras.models import dcgan

MAPPING_LR_MULTIPLIER = 0.01
# The running mean of w moves this much of the way to each batch's mean per step (StyleGAN2).
W_AVG_BETA = 0.995
_ACTIVATION_GAIN = math.sqrt(2.0)  # keeps the leaky ReLU's output at unit second moment
MAPPING_LAYER_NAME = "mapping"
SYNTHESIS_LAYER_NAME = "synthesis"


def normalize_second_moment(x, axis=-1, eps=1e-8):
    """x / sqrt(mean(x^2)): z and label embeddings enter the mapping at unit scale."""
    return x * ops.rsqrt(ops.mean(ops.square(x), axis=axis, keepdims=True) + eps)


def _lrelu(x):
    return tf.nn.leaky_relu(x, 0.2) * _ACTIVATION_GAIN


def modulated_conv2d(x, weight, styles, *, demodulate: bool = True, eps: float = 1e-8):
    """StyleGAN2's modulated convolution in the non-fused NHWC form.

    x [B, H, W, I], weight [k, k, I, O], styles [B, I] -> [B, H, W, O] ("SAME" padding).
    Equals convolving each sample with its own weights s_i * w_ijk, divided (when
    `demodulate`) by sqrt(sum over k, i of (s_i * w_ijk)^2 + eps) per output channel j.
    """
    styles = ops.cast(styles, x.dtype)
    weight = ops.cast(weight, x.dtype)
    y = tf.nn.conv2d(x * styles[:, None, None, :], weight, strides=1, padding="SAME")
    if demodulate:
        # sum_{k,i} (s_i w_kij)^2 = sum_i s_i^2 * (sum_k w_kij^2): one [B, I] x [I, O] product.
        sigma_sq = ops.matmul(ops.square(styles), ops.sum(ops.square(weight), axis=(0, 1)))
        y = y * ops.rsqrt(sigma_sq + eps)[:, None, None, :]
    return y


def upsample2x(x):
    """Bilinear 2x upsampling: with half-pixel centres, StyleGAN2's [1, 3, 3, 1] upsampling filter
    in the interior (at the border edge pixels are repeated instead of zero-padded)."""
    height, width = x.shape[1], x.shape[2]
    return ops.cast(tf.image.resize(x, (2 * height, 2 * width), method="bilinear"), x.dtype)


@keras.saving.register_keras_serializable(package="gan_keras")
class EqualizedDense(layers.Layer):
    """A dense layer with an equalised learning rate (and an optional lr multiplier)."""

    def __init__(self, units, *, lr_multiplier=1.0, bias_init=0.0, activation="linear", **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.lr_multiplier = float(lr_multiplier)
        self.bias_init = float(bias_init)
        self.activation = activation

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        self.kernel = self.add_weight(
            shape=(fan_in, self.units),
            initializer=keras.initializers.RandomNormal(stddev=1.0 / self.lr_multiplier),
            name="kernel",
        )
        self.bias = self.add_weight(
            shape=(self.units,),
            initializer=keras.initializers.Constant(self.bias_init / self.lr_multiplier),
            name="bias",
        )
        self.weight_gain = self.lr_multiplier / math.sqrt(fan_in)

    def call(self, x):
        kernel = ops.cast(self.kernel, x.dtype) * self.weight_gain
        y = ops.matmul(x, kernel) + ops.cast(self.bias, x.dtype) * self.lr_multiplier
        return _lrelu(y) if self.activation == "lrelu" else y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "lr_multiplier": self.lr_multiplier,
            "bias_init": self.bias_init,
            "activation": self.activation,
        }


@keras.saving.register_keras_serializable(package="gan_keras")
class MappingNetwork(layers.Layer):
    """z (and label) -> w [B, w_dim]; holds `w_avg`, the running mean of w."""

    def __init__(
        self,
        *,
        latent_dim,
        w_dim,
        num_layers,
        num_classes=0,
        lr_multiplier=MAPPING_LR_MULTIPLIER,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.latent_dim = int(latent_dim)
        self.w_dim = int(w_dim)
        self.num_layers = int(num_layers)
        self.num_classes = int(num_classes)
        self.lr_multiplier = float(lr_multiplier)
        self.label_embedding = (
            EqualizedDense(self.w_dim, name="label_embedding") if self.num_classes else None
        )
        for i in range(self.num_layers):
            # One attribute per sublayer: tf.train.Checkpoint does not follow Keras's tracked
            # lists, so layers kept only in a list would be left out of checkpoints.
            setattr(
                self,
                f"fc{i}",
                EqualizedDense(
                    self.w_dim, lr_multiplier=self.lr_multiplier, activation="lrelu", name=f"fc{i}"
                ),
            )

    @property
    def dense_layers(self) -> list:
        return [getattr(self, f"fc{i}") for i in range(self.num_layers)]

    def build(self, input_shape):
        width = self.latent_dim
        if self.num_classes:
            self.label_embedding.build((None, self.num_classes))
            width += self.w_dim
        for dense in self.dense_layers:
            dense.build((None, width))
            width = self.w_dim
        # Not trained by gradients: the train step moves it towards each batch's mean w.
        self.w_avg = self.add_weight(
            shape=(self.w_dim,), initializer="zeros", trainable=False, name="w_avg"
        )

    def call(self, inputs):
        if self.num_classes:
            z, label = inputs
            one_hot = ops.one_hot(
                ops.cast(label, "int32"), self.num_classes, dtype=self.compute_dtype
            )
            embedded = normalize_second_moment(self.label_embedding(one_hot))
            x = ops.concatenate(
                [normalize_second_moment(ops.cast(z, self.compute_dtype)), embedded], -1
            )
        else:
            x = normalize_second_moment(ops.cast(inputs, self.compute_dtype))
        for dense in self.dense_layers:
            x = dense(x)
        return x

    def compute_output_shape(self, input_shape):
        z_shape = input_shape[0] if self.num_classes else input_shape
        return (z_shape[0], self.w_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "latent_dim": self.latent_dim,
            "w_dim": self.w_dim,
            "num_layers": self.num_layers,
            "num_classes": self.num_classes,
            "lr_multiplier": self.lr_multiplier,
        }


@keras.saving.register_keras_serializable(package="gan_keras")
class ModulatedLayer(layers.Layer):
    """One synthesis layer: (upsample), modulated conv, (noise), bias, (activation).

    A 3x3 demodulated convolution with noise and leaky ReLU is StyleGAN2's SynthesisLayer;
    a 1x1 one without demodulation, noise and activation is its ToRGBLayer.
    """

    def __init__(
        self,
        filters,
        *,
        kernel_size=3,
        resolution,
        upsample=False,
        demodulate=True,
        use_noise=True,
        activation=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.resolution = int(resolution)
        self.upsample = bool(upsample)
        self.demodulate = bool(demodulate)
        self.use_noise = bool(use_noise)
        self.activation = bool(activation)

    def build(self, input_shape):
        x_shape, w_shape = input_shape
        in_channels = int(x_shape[-1])
        # Styles start at 1 (bias_init=1): the layer begins as a plain convolution.
        self.affine = EqualizedDense(in_channels, bias_init=1.0, name="affine")
        self.affine.build(w_shape)
        self.kernel = self.add_weight(
            shape=(self.kernel_size, self.kernel_size, in_channels, self.filters),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            name="kernel",
        )
        self.bias = self.add_weight(shape=(self.filters,), initializer="zeros", name="bias")
        # Equalised lr for the un-demodulated toRGB; demodulation cancels any weight scale.
        self.weight_gain = 1.0 / math.sqrt(in_channels * self.kernel_size**2)
        if self.use_noise:
            self.noise_strength = self.add_weight(
                shape=(), initializer="zeros", name="noise_strength"
            )
            self.noise_const = self.add_weight(
                shape=(1, self.resolution, self.resolution, 1),
                initializer=keras.initializers.RandomNormal(stddev=1.0),
                trainable=False,
                name="noise_const",
            )

    def call(self, inputs, noise=None):
        x, w = inputs
        if self.upsample:
            x = upsample2x(x)
        styles = self.affine(ops.cast(w, x.dtype))
        if not self.demodulate:
            styles = styles * self.weight_gain
        y = modulated_conv2d(x, self.kernel, styles, demodulate=self.demodulate)
        if self.use_noise:
            noise = self.noise_const if noise is None else noise
            y = y + ops.cast(noise, y.dtype) * ops.cast(self.noise_strength, y.dtype)
        y = y + ops.cast(self.bias, y.dtype)
        return _lrelu(y) if self.activation else y

    def compute_output_shape(self, input_shape):
        x_shape, _ = input_shape
        size = self.resolution
        return (x_shape[0], size, size, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "resolution": self.resolution,
            "upsample": self.upsample,
            "demodulate": self.demodulate,
            "use_noise": self.use_noise,
            "activation": self.activation,
        }


def synthesis_width(width: int, resolution: int, network_resolution: int) -> int:
    """Channels at `resolution`: `width` at the output, doubling per halving (capped, as the DCGAN's
    dcgan.layer_width), like StyleGAN2's channel_base / resolution rule."""
    level = int(math.log2(network_resolution)) - int(math.log2(resolution))
    return dcgan.layer_width(width, level)


@keras.saving.register_keras_serializable(package="gan_keras")
class SynthesisNetwork(layers.Layer):
    """ws [B, num_ws, w_dim] -> images [B, R, R, channels] (before the final tanh)."""

    def __init__(self, *, resolution, channels, width, **kwargs):
        super().__init__(**kwargs)
        self.resolution = int(resolution)
        self.channels = int(channels)
        self.width = int(width)
        if self.resolution < 8 or self.resolution & (self.resolution - 1):
            raise ValueError(
                f"StyleGAN2 synthesis needs a power-of-two resolution >= 8, got {resolution}"
            )
        self.block_resolutions = [2**i for i in range(2, int(math.log2(self.resolution)) + 1)]
        # Sublayers are attributes named here (tf.train.Checkpoint does not follow Keras's
        # tracked lists, so layers kept only in a list would be left out of checkpoints).
        self._conv_names, self._rgb_names, conv_w_index, rgb_w_index = [], [], [], []
        for res in self.block_resolutions:
            filters = synthesis_width(self.width, res, self.resolution)
            first = res == 4
            for i in range(1 if first else 2):
                conv_w_index.append(len(self._conv_names))
                self._conv_names.append(f"conv{res}x{res}_{i}")
                setattr(
                    self,
                    self._conv_names[-1],
                    ModulatedLayer(
                        filters,
                        resolution=res,
                        upsample=not first and i == 0,
                        name=self._conv_names[-1],
                    ),
                )
            rgb_w_index.append(len(self._conv_names))
            self._rgb_names.append(f"to_rgb{res}x{res}")
            setattr(
                self,
                self._rgb_names[-1],
                ModulatedLayer(
                    self.channels,
                    kernel_size=1,
                    resolution=res,
                    demodulate=False,
                    use_noise=False,
                    activation=False,
                    name=f"to_rgb{res}x{res}",
                ),
            )
        # Which ws row each layer reads (see the module docstring).
        self.conv_w_index = conv_w_index
        self.rgb_w_index = rgb_w_index
        self.num_ws = len(self._conv_names) + 1

    @property
    def convs(self) -> list:
        """The modulated 3x3 convolutions, in order (StyleGAN2's SynthesisLayers)."""
        return [getattr(self, name) for name in self._conv_names]

    @property
    def to_rgbs(self) -> list:
        """The toRGB layers, one per resolution."""
        return [getattr(self, name) for name in self._rgb_names]

    @property
    def noise_shapes(self) -> list[tuple[int, int, int]]:
        """[H, W, 1] of the noise image each convolution adds, in order."""
        return [(conv.resolution, conv.resolution, 1) for conv in self.convs]

    def build(self, input_shape):
        w_dim = int(input_shape[-1])
        first_filters = synthesis_width(self.width, 4, self.resolution)
        self.const = self.add_weight(
            shape=(1, 4, 4, first_filters),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            name="const",
        )
        conv_iter = iter(self.convs)
        channels = first_filters
        for res, to_rgb in zip(self.block_resolutions, self.to_rgbs, strict=True):
            for _ in range(1 if res == 4 else 2):
                conv = next(conv_iter)
                conv.build(((None, res, res, channels), (None, w_dim)))
                channels = conv.filters
            to_rgb.build(((None, res, res, channels), (None, w_dim)))

    def call(self, ws, noise=None):
        """`noise`: a list of [B, H, W, 1] tensors (`noise_shapes`), or None for the fixed noise."""
        batch = ops.shape(ws)[0]
        x = ops.tile(ops.cast(self.const, self.compute_dtype), [batch, 1, 1, 1])
        ws = ops.cast(ws, self.compute_dtype)
        image = None
        conv_index = 0
        for res, to_rgb, rgb_index in zip(
            self.block_resolutions, self.to_rgbs, self.rgb_w_index, strict=True
        ):
            for _ in range(1 if res == 4 else 2):
                layer_noise = None if noise is None else noise[conv_index]
                w_index = self.conv_w_index[conv_index]
                x = self.convs[conv_index]((x, ws[:, w_index]), noise=layer_noise)
                conv_index += 1
            rgb = to_rgb((x, ws[:, rgb_index]))
            image = rgb if image is None else upsample2x(image) + rgb
        return image

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.resolution, self.resolution, self.channels)

    def get_config(self):
        return {
            **super().get_config(),
            "resolution": self.resolution,
            "channels": self.channels,
            "width": self.width,
        }


@keras.saving.register_keras_serializable(package="gan_keras")
class BroadcastStyles(layers.Layer):
    """w [B, w_dim] -> ws [B, num_ws, w_dim]: every layer reads the same w unless mixed."""

    def __init__(self, num_ws, **kwargs):
        super().__init__(**kwargs)
        self.num_ws = int(num_ws)

    def call(self, w):
        return ops.repeat(ops.expand_dims(w, 1), self.num_ws, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_ws, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "num_ws": self.num_ws}


def build_generator(
    *,
    resolution: int,
    channels: int,
    latent_dim: int,
    width: int = 32,
    w_dim: int = 128,
    mapping_layers: int = 8,
    num_classes: int = 0,
    network_resolution: int = 0,
    name: str = "generator",
) -> keras.Model:
    """z [B, latent_dim] (and label [B] when num_classes > 0) -> images in [-1, 1].

    `network_resolution` > resolution builds the network for that (power-of-two) size and crops
    its output's centre, as dcgan.build_generator does (28x28 data: network_resolution=32).
    """
    data_resolution = resolution
    resolution = check_resolution(resolution, network_resolution)
    z_in = keras.Input((latent_dim,), name="z")
    inputs = z_in
    if num_classes:
        inputs = [z_in, keras.Input((), dtype="int32", name="label")]
    mapping = MappingNetwork(
        latent_dim=latent_dim,
        w_dim=w_dim,
        num_layers=mapping_layers,
        num_classes=num_classes,
        name=MAPPING_LAYER_NAME,
    )
    synthesis = SynthesisNetwork(
        resolution=resolution, channels=channels, width=width, name=SYNTHESIS_LAYER_NAME
    )
    ws = BroadcastStyles(synthesis.num_ws, name="broadcast_styles")(mapping(inputs))
    x = synthesis(ws)
    if resolution != data_resolution:
        x = layers.Cropping2D((resolution - data_resolution) // 2)(x)
    # tanh in float32 so mixed-precision samples still span [-1, 1] exactly.
    images = layers.Activation("tanh", dtype="float32", name="images")(x)
    return keras.Model(inputs, images, name=name)


def check_resolution(resolution: int, network_resolution: int) -> int:
    """The power-of-two size the synthesis network is built for (ValueError naming the fix)."""
    built = dcgan.check_network_resolution(resolution, network_resolution)
    if built & (built - 1):
        raise ValueError(
            f"model.architecture='stylegan2' needs a power-of-two network size; data.resolution="
            f"{resolution} with model.network_resolution={network_resolution} gives {built} "
            "(for 28x28 data set model.network_resolution=32)"
        )
    return built


def networks_from_config(model_config, *, resolution: int, channels: int, num_classes: int = 0):
    """(StyleGAN2 generator, discriminator): D is the project's DCGAN discriminator (README,
    "StyleGAN2", says why), with its norm, spectral norm and projection conditioning."""
    generator = build_generator(
        resolution=resolution,
        channels=channels,
        latent_dim=model_config.latent_dim,
        width=model_config.g_width,
        w_dim=model_config.w_dim,
        mapping_layers=model_config.mapping_layers,
        num_classes=num_classes,
        network_resolution=model_config.network_resolution,
    )
    return generator, dcgan.discriminator_from_config(
        model_config, resolution=resolution, channels=channels, num_classes=num_classes
    )


def validate_config(config) -> None:
    """The fields model.architecture='stylegan2' reads or cannot combine with (ValueError
    naming the field)."""
    m = config.model
    check_resolution(config.data.resolution, m.network_resolution)
    for field in ("w_dim", "mapping_layers"):
        value = m[field]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"model.{field} must be an integer >= 1, got {value!r}")
    if config.task.name != "generate":
        raise ValueError(
            f"model.architecture='stylegan2' samples from noise; task.name={config.task.name!r} "
            "uses the image-to-image networks (set model.architecture='dcgan')"
        )


# --- the parts of a built generator -------------------------------------------------------


class StyleParts:
    """The mapping and synthesis layers of a generator from `build_generator` (and its crop)."""

    def __init__(self, generator: keras.Model):
        self.generator = generator
        self.mapping: MappingNetwork = generator.get_layer(MAPPING_LAYER_NAME)
        self.synthesis: SynthesisNetwork = generator.get_layer(SYNTHESIS_LAYER_NAME)
        crops = [layer for layer in generator.layers if isinstance(layer, layers.Cropping2D)]
        self.crop = crops[0] if crops else None
        self.num_ws = self.synthesis.num_ws

    @classmethod
    def of(cls, generator: keras.Model) -> "StyleParts | None":
        """The parts when `generator` has a mapping network, else None (e.g. the DCGAN)."""
        return cls(generator) if has_mapping_network(generator) else None

    def map(self, z, labels=None, *, training=False):
        """w [B, w_dim] for z (and labels)."""
        inputs = z if labels is None else [z, labels]
        return self.mapping(inputs, training=training)

    def broadcast(self, w):
        return ops.repeat(ops.expand_dims(w, 1), self.num_ws, axis=1)

    def synthesize(self, ws, noise=None, *, training=False):
        """Images in [-1, 1] (float32) from ws [B, num_ws, w_dim], as the generator makes them."""
        x = self.synthesis(ws, noise=noise, training=training)
        if self.crop is not None:
            x = self.crop(x)
        return tf.tanh(tf.cast(x, tf.float32))

    def truncate(self, w, psi):
        """w_avg + psi * (w - w_avg): truncation in w-space (psi = 1: w itself)."""
        w_avg = tf.cast(self.mapping.w_avg, w.dtype)
        return w_avg + tf.cast(psi, w.dtype) * (w - w_avg)


def has_mapping_network(generator: keras.Model) -> bool:
    try:
        return isinstance(generator.get_layer(MAPPING_LAYER_NAME), MappingNetwork)
    except ValueError:
        return False


def mix_styles(ws_coarse, ws_fine, crossover):
    """ws whose rows < crossover come from `ws_coarse` and the rest from `ws_fine`."""
    num_ws = tf.shape(ws_coarse)[1]
    coarse = tf.range(num_ws) < tf.cast(crossover, tf.int32)
    return tf.where(coarse[None, :, None], ws_coarse, ws_fine)
