"""Edges -> image translation on Fashion-MNIST (Sobel edge maps, as pix2pix's edges2shoes);
nothing classical maps edges back to an image, so the L1-only model is the reference."""

from configs import fashion_mnist_image_to_image


def get_config():
    config = fashion_mnist_image_to_image.get_config("translation")
    config.task.source = "edges"
    return config
