"""Inpainting on Fashion-MNIST (a random box covering a quarter of each image); the
evaluate stage compares the GAN and its L1-only reference with a classical (harmonic) fill."""

from configs import fashion_mnist_image_to_image


def get_config():
    config = fashion_mnist_image_to_image.get_config("inpainting")
    config.task.hole = "random_box"
    config.task.hole_fraction = 0.25
    return config
