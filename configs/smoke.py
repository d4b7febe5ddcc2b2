"""Smoke test: scikit-learn's bundled 8x8 digits upscaled to 16x16, a tiny
model, the whole pipeline in well under two minutes on a CPU."""

from configs import default


def get_config():
    config = default.get_config()
    config.data.source = "digits"
    config.data.resolution = 16
    config.data.channels = 1
    config.data.eval_fraction = 0.2
    config.data.num_shards = 2
    config.model.latent_dim = 16
    config.model.g_width = 16
    config.model.d_width = 16
    config.train.steps = 300
    config.train.batch_size = 32
    config.train.shuffle_buffer = 2000
    config.train.checkpoint_every = 100
    config.train.sample_every = 100
    config.train.log_every = 50
    config.train.ema_half_life_images = 3200.0
    config.train.ema_rampup = 0.05
    config.train.num_sample_images = 16
    config.evaluate.num_samples = 500
    config.evaluate.classifier_epochs = 2
    config.evaluate.classifier_min_steps = 150
    config.evaluate.kid_subsets = 5
    config.evaluate.kid_subset_size = 100
    # The controls' measurements in about 5 s: fewer, shorter projections.
    config.evaluate.projection_images = 64
    config.evaluate.projection_steps = 50
    # The detector of this model's samples in a few seconds (its 5-pass bound is ~220 steps).
    config.evaluate.detector_steps = 100
    return config
