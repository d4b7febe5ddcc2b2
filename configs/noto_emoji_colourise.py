"""Colourisation of artwork: 32x32 Noto Emoji (Apache License 2.0) from grayscale to RGB,
the image-to-image translation task on colour data. Install the images first:

    bash scripts/install_emoji.sh      # 1,906 emoji in 9 category folders -> data/noto-emoji

The GAN and its L1-only reference share the pix2pix U-Net and PatchGAN of the Fashion-MNIST
task configs (configs/fashion_mnist_image_to_image.py); the evaluate stage scores both on the
eval split's grayscale renderings, beside the real-data floor."""

from configs import fashion_mnist_image_to_image, noto_emoji


def get_config():
    config = fashion_mnist_image_to_image.get_config("translation")
    noto_emoji.use_noto_emoji_data(config)
    config.task.source = "grayscale"
    config.train.steps = 1500
    config.evaluate.num_samples = 375  # the whole eval split
    return config
