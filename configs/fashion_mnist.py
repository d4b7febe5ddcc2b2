"""The default demo: full Fashion-MNIST (70,000 28x28 images) from Debian's
dataset-fashion-mnist package, a DCGAN trained for a few minutes on a CPU."""

from configs import default


def get_config():
    config = default.get_config()
    config.data.source = "idx:/usr/share/datasets/fashion-mnist"
    config.data.resolution = 28
    config.data.channels = 1
    # IDX files carry no class names.
    config.data.label_names = (
        "T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot"
    )
    # Chosen with `python -m benchmarks.quality` (docs/results.md, "Time to quality"):
    # the article's 32x32 DCGAN geometry (one more layer per network than
    # 7 -> 14 -> 28) at half its widths, 8x the article's learning rate, and
    # an EMA generator with a ramped half-life.
    config.model.network_resolution = 32
    config.model.latent_dim = 64
    config.model.g_width = 32
    config.model.d_width = 32
    config.model.batch_norm_momentum = 0.9
    config.train.batch_size = 64
    config.train.g_learning_rate = 1.6e-3
    config.train.d_learning_rate = 1.6e-3
    # 3,500 steps x 64 = 224k images: under 300 s of training on this 2-core machine.
    config.train.steps = 3500
    config.train.checkpoint_every = 500
    config.train.sample_every = 500
    config.train.eval_every = 500
    config.train.ema_half_life_images = 10_000.0
    config.train.ema_rampup = 0.05
    config.evaluate.num_samples = 5000
    # The judge (the domain classifier the in-training evaluation, the evaluate
    # stage and benchmarks.quality share): 5 epochs reach 0.90 test accuracy
    # (1 epoch: 0.87) in about 3 minutes on 2 CPU cores, once per workdir.
    config.evaluate.classifier_epochs = 5
    return config
