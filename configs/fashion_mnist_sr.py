"""x4 super-resolution on Fashion-MNIST (7x7 -> 28x28); the evaluate stage compares the GAN
and its L1-only reference with bicubic upsampling."""

from configs import fashion_mnist_image_to_image


def get_config():
    config = fashion_mnist_image_to_image.get_config("super_resolution")
    config.task.scale = 4
    return config
