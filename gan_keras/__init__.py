"""Keras library for GAN training: networks, the GAN model, losses, tf.data
input, callbacks, metrics and export."""

__version__ = "0.1.0"
