"""The article's DCGAN, reproduced faithfully in Keras: the quality benchmark's outside reference.

Deliberately independent of `gan_keras` (its own networks, data feed and
train step), so that a bug or a recipe change in the project cannot move the
reference. It follows the PyTorch DCGAN the article describes:

- G: z (100) -> ConvTranspose 256 (4x4, stride 1, valid) -> 128 -> 64 -> C
  (4x4, stride 2), BatchNorm + ReLU between, tanh out: 32x32 images.
- D: Conv 64 (4x4, stride 2, no BatchNorm) -> 128 -> 256 (BatchNorm,
  LeakyReLU 0.2) -> Conv 1 (4x4, valid): one logit.
- No biases; weights N(0, 0.02), BatchNorm scale N(1, 0.02), offset 0.
  BatchNorm as PyTorch's defaults: momentum 0.1 (Keras 0.9), epsilon 1e-5.
- Binary cross-entropy from logits; Adam 2e-4, beta_1 0.5; batch 64.
- Per iteration, as in the PyTorch tutorial: D on a real batch and on a
  generated batch (separate passes), then G on that same generated batch
  through the updated D, with labels "real".
- Data: the images padded with -1 to the network's size, reshuffled every
  epoch; samples are cropped back to the data's size for the judge.

Other data sizes: the network's size is the smallest 4 x 2^n that holds the
images (28x28 Fashion-MNIST -> 32x32 with 2 pixels of padding per side, as
the article does; 32x32 colour images as they are), with one stride-2 layer
per doubling in each network. The widths stay 64 next to the images and
double towards 4x4, capped at 512: at 64x64 this is the PyTorch tutorial's
own DCGAN (G 512 -> 256 -> 128 -> 64, D 64 -> 128 -> 256 -> 512). Channels
are the data's (1 or 3). At 28x28x1 nothing differs from the article's
network, bit for bit.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

LATENT_DIM = 100
BATCH_SIZE = 64
WIDTH_NEXT_TO_IMAGES = 64  # the tutorial's ngf = ndf
MAX_WIDTH = 512  # the tutorial's ngf * 8, at 4x4 in its 64x64 network


def network_size(resolution: int) -> int:
    """The smallest 4 x 2^n (n >= 1) that holds `resolution` x `resolution` images."""
    size = 8
    while size < resolution:
        size *= 2
    return size


def _widths(size: int) -> list[int]:
    """Widths of the stride-2 layers from the images inwards (D's order; G's reversed)."""
    num_layers = size.bit_length() - 1 - 2  # log2(size / 4)
    return [min(WIDTH_NEXT_TO_IMAGES * 2**i, MAX_WIDTH) for i in range(num_layers)]


def _conv_init():
    return keras.initializers.RandomNormal(0.0, 0.02)


def _batch_norm():
    return layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5, gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02)
    )


def build_generator(size: int = 32, channels: int = 1) -> keras.Model:
    widths = _widths(size)[::-1]
    z = keras.Input((LATENT_DIM,))
    x = layers.Reshape((1, 1, LATENT_DIM))(z)
    x = layers.Conv2DTranspose(
        widths[0], 4, strides=1, padding="valid", use_bias=False, kernel_initializer=_conv_init()
    )(x)
    x = layers.ReLU()(_batch_norm()(x))
    for filters in widths[1:]:
        x = layers.Conv2DTranspose(
            filters, 4, strides=2, padding="same", use_bias=False, kernel_initializer=_conv_init()
        )(x)
        x = layers.ReLU()(_batch_norm()(x))
    x = layers.Conv2DTranspose(
        channels, 4, strides=2, padding="same", use_bias=False, kernel_initializer=_conv_init()
    )(x)
    return keras.Model(z, layers.Activation("tanh")(x), name="article_generator")


def build_discriminator(size: int = 32, channels: int = 1) -> keras.Model:
    widths = _widths(size)
    images = keras.Input((size, size, channels))
    x = layers.Conv2D(
        widths[0], 4, strides=2, padding="same", use_bias=False, kernel_initializer=_conv_init()
    )(images)
    x = layers.LeakyReLU(0.2)(x)
    for filters in widths[1:]:
        x = layers.Conv2D(
            filters, 4, strides=2, padding="same", use_bias=False, kernel_initializer=_conv_init()
        )(x)
        x = layers.LeakyReLU(0.2)(_batch_norm()(x))
    x = layers.Conv2D(
        1, 4, strides=1, padding="valid", use_bias=False, kernel_initializer=_conv_init()
    )(x)
    return keras.Model(images, layers.Flatten()(x), name="article_discriminator")


class ArticleDCGAN:
    """Trains the article's DCGAN on uint8 [N, H, H, C] images (square, C = 1 or 3);
    `images_per_step` is the batch."""

    images_per_step = BATCH_SIZE

    def __init__(self, train_images: np.ndarray, seed: int):
        _, height, width, channels = train_images.shape
        if height != width:
            raise ValueError(f"the article's DCGAN takes square images, got {height}x{width}")
        self.resolution = height
        size = network_size(height)
        # The images sit in the middle of the network's canvas; an odd margin puts its extra
        # pixel after them.
        self._offset = (size - height) // 2
        keras.utils.set_random_seed(seed)
        self.generator = build_generator(size, channels)
        self.discriminator = build_discriminator(size, channels)
        self.g_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
        self.d_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
        self.bce = keras.losses.BinaryCrossentropy(from_logits=True)
        before, after = self._offset, size - height - self._offset
        padded = np.pad(
            train_images.astype(np.float32) / 127.5 - 1.0,
            ((0, 0), (before, after), (before, after), (0, 0)),
            constant_values=-1.0,
        )
        data = (
            tf.data.Dataset.from_tensor_slices(padded)
            .shuffle(len(padded), seed=seed, reshuffle_each_iteration=True)
            .batch(BATCH_SIZE, drop_remainder=True)
            .repeat()
            .prefetch(tf.data.AUTOTUNE)
        )
        self._iterator = iter(data)
        self._seed = seed

    @tf.function
    def _step(self, real):
        z = tf.random.normal([BATCH_SIZE, LATENT_DIM])
        ones, zeros = tf.ones([BATCH_SIZE, 1]), tf.zeros([BATCH_SIZE, 1])
        # G runs once per iteration (its BatchNorm statistics update once), as in the tutorial.
        with tf.GradientTape() as g_tape:
            fake = self.generator(z, training=True)
            with tf.GradientTape() as d_tape:
                d_loss = self.bce(ones, self.discriminator(real, training=True)) + self.bce(
                    zeros, self.discriminator(tf.stop_gradient(fake), training=True)
                )
            d_vars = self.discriminator.trainable_variables
            self.d_opt.apply_gradients(zip(d_tape.gradient(d_loss, d_vars), d_vars, strict=True))
            g_loss = self.bce(ones, self.discriminator(fake, training=True))
        g_vars = self.generator.trainable_variables
        self.g_opt.apply_gradients(zip(g_tape.gradient(g_loss, g_vars), g_vars, strict=True))

    @tf.function
    def _steps(self, num_steps):
        for _ in tf.range(num_steps):
            self._step(next(self._iterator))

    def train(self, num_steps: int) -> None:
        self._steps(tf.constant(num_steps))

    def samples(self, num: int, seed: int, batch_size: int = 500) -> np.ndarray:
        """uint8 [num, H, H, C] (the training images' shape) in inference mode (BatchNorm
        moving statistics)."""
        z = tf.random.stateless_normal([num, LATENT_DIM], [seed, 1])
        out = [
            self.generator(z[i : i + batch_size], training=False) for i in range(0, num, batch_size)
        ]
        crop = slice(self._offset, self._offset + self.resolution)
        images = np.concatenate([o.numpy() for o in out])[:, crop, crop, :]
        return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)

    raw_samples = samples
