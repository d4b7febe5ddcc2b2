"""The pix2pix networks (Isola et al., 2017): a U-Net generator and a PatchGAN discriminator.

The condition (a low-resolution image, a masked image plus its mask, an edge map;
gan_keras.tasks derives it from the stored image) goes through a U-Net to an image of the
target's size; D sees (condition, image) pairs and answers per patch. The GAN that trains
them is gan_keras.training.image_to_image.
"""

import keras
from keras import layers

from gan_keras import tasks
from gan_keras.models import dcgan
from gan_keras.models.dcgan import layer_width, weight_init
from gan_keras.tasks import conditions

MIN_BOTTLENECK = 4  # the U-Net halves the resolution while it stays >= this and even


def _levels(resolution: int) -> int:
    levels = 0
    while resolution % 2 == 0 and resolution // 2 >= MIN_BOTTLENECK and levels < 5:
        resolution //= 2
        levels += 1
    return levels


def _to_target_size(condition, height: int, width: int):
    """A low-resolution condition upsampled (bicubic) to the target's size; others as they are."""
    if tuple(condition.shape[1:3]) == (height, width):
        return condition
    return layers.Resizing(height, width, interpolation="bicubic", name="upsample_condition")(
        condition
    )


def build_unet_generator(
    *,
    condition_shape,
    image_shape,
    width: int = 64,
    norm: str = "batch",
    sync_batch_norm: bool = False,
    batch_norm_momentum: float = 0.99,
    inpainting: bool = False,
    name: str = "generator",
) -> keras.Model:
    """condition [B, h, w, c] -> image [B, H, W, C] in [-1, 1].

    Encoder: 4x4 stride-2 convolutions down to a bottleneck >= 4 px; decoder:
    transposed convolutions back up, each concatenated with the encoder's
    features of the same size (the U-Net skips that carry the condition's
    detail). For inpainting (condition = masked image + mask channel) the known
    pixels are copied through and only the hole comes from the network.
    """
    height, width_px, channels = image_shape
    condition_in = keras.Input(tuple(condition_shape), name="condition")
    x = _to_target_size(condition_in, height, width_px)
    levels = _levels(height)

    def normalize(h):
        return dcgan.normalize(
            dcgan.G_NORMS,
            norm,
            h,
            sync_batch_norm=sync_batch_norm,
            momentum=batch_norm_momentum,
        )

    x = layers.Conv2D(width, 3, padding="same", kernel_initializer=weight_init())(x)
    x = layers.LeakyReLU(0.2)(x)
    skips = [x]
    for level in range(1, levels + 1):
        x = layers.Conv2D(
            layer_width(width, level),
            4,
            strides=2,
            padding="same",
            use_bias=norm == "none",
            kernel_initializer=weight_init(),
        )(x)
        x = layers.LeakyReLU(0.2)(normalize(x))
        skips.append(x)
    x = layers.Conv2D(
        layer_width(width, levels),
        3,
        padding="same",
        use_bias=norm == "none",
        kernel_initializer=weight_init(),
    )(x)
    x = layers.ReLU()(normalize(x))
    for level in range(levels - 1, -1, -1):
        x = layers.Conv2DTranspose(
            layer_width(width, level),
            4,
            strides=2,
            padding="same",
            use_bias=norm == "none",
            kernel_initializer=weight_init(),
        )(x)
        x = layers.ReLU()(normalize(x))
        x = layers.Concatenate()([x, skips[level]])
    x = layers.Conv2D(channels, 3, padding="same", kernel_initializer=weight_init())(x)
    image = layers.Activation("tanh", dtype="float32")(x)
    if inpainting:
        image = _KeepKnownPixels(name="keep_known_pixels")([image, condition_in])
    image = layers.Activation("linear", dtype="float32", name="image")(image)
    return keras.Model(condition_in, image, name=name)


@keras.saving.register_keras_serializable(package="gan_keras")
class _KeepKnownPixels(layers.Layer):
    """[generated, masked image + mask] -> the masked image outside the hole, generated inside."""

    def call(self, inputs):
        generated, condition = inputs
        return conditions.paste_known(generated, condition)


def build_patch_discriminator(
    *,
    condition_shape,
    image_shape,
    width: int = 64,
    norm: str = "batch",
    sync_batch_norm: bool = False,
    batch_norm_momentum: float = 0.99,
    spectral_norm: bool = False,
    name: str = "discriminator",
) -> keras.Model:
    """[condition, image] -> logits [B, P], one per patch (a PatchGAN).

    Two stride-2 convolutions and a stride-1 one, so each logit sees a patch of
    about a third of a 28-32 px image (pix2pix's 70x70 patches of 256 px are
    about a quarter).
    """
    height, width_px, channels = image_shape
    condition_in = keras.Input(tuple(condition_shape), name="condition")
    image_in = keras.Input(tuple(image_shape), name="images")

    def sn(layer):
        return layers.SpectralNormalization(layer) if spectral_norm else layer

    def normalize(h):
        return dcgan.normalize(
            dcgan.D_NORMS,
            norm,
            h,
            sync_batch_norm=sync_batch_norm,
            momentum=batch_norm_momentum,
        )

    condition = _to_target_size(condition_in, height, width_px)
    x = layers.Concatenate()([condition, image_in])
    x = sn(layers.Conv2D(width, 4, strides=2, padding="same", kernel_initializer=weight_init()))(x)
    x = layers.LeakyReLU(0.2)(x)
    x = sn(
        layers.Conv2D(
            layer_width(width, 1),
            4,
            strides=2,
            padding="same",
            use_bias=norm == "none",
            kernel_initializer=weight_init(),
        )
    )(x)
    x = layers.LeakyReLU(0.2)(normalize(x))
    x = sn(
        layers.Conv2D(
            layer_width(width, 2),
            3,
            padding="same",
            use_bias=norm == "none",
            kernel_initializer=weight_init(),
        )
    )(x)
    x = layers.LeakyReLU(0.2)(normalize(x))
    x = sn(layers.Conv2D(1, 3, padding="same", kernel_initializer=weight_init()))(x)
    logits = layers.Reshape((-1,))(x)
    logits = layers.Activation("linear", dtype="float32", name="logits")(logits)
    return keras.Model([condition_in, image_in], logits, name=name)


def networks_from_config(config, *, resolution: int, channels: int):
    """(U-Net generator, PatchGAN discriminator) for the task's condition (`config.task`) and
    the `model` section's widths and norms."""
    m = config.model
    condition_shape = tasks.condition_shape(config.task, resolution, channels)
    image_shape = (resolution, resolution, channels)
    generator = build_unet_generator(
        condition_shape=condition_shape,
        image_shape=image_shape,
        width=m.g_width,
        norm=m.g_norm,
        sync_batch_norm=m.sync_batch_norm,
        batch_norm_momentum=m.batch_norm_momentum,
        inpainting=config.task.name == "inpainting",
    )
    discriminator = build_patch_discriminator(
        condition_shape=condition_shape,
        image_shape=image_shape,
        width=m.d_width,
        norm=m.d_norm,
        sync_batch_norm=m.sync_batch_norm,
        batch_norm_momentum=m.batch_norm_momentum,
        spectral_norm=m.spectral_norm,
    )
    return generator, discriminator
