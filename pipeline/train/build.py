"""Train stage: the compiled GAN (`build_gan`) and the fixed inputs it is shown while it
trains: the sample grids' noise or conditions, and the conditions an image-to-image G's
BatchNorm standing statistics are estimated on."""

import keras
import numpy as np
import tensorflow as tf

from gan_keras import images as gan_images
from gan_keras import tasks
from gan_keras.data import input_pipeline, records
from gan_keras.models import architectures
from gan_keras.tasks import conditions as task_conditions
from gan_keras.training import ada, image_to_image
from gan_keras.training import gan as gan_lib


def build_gan(
    config,
    *,
    resolution: int,
    channels: int,
    num_classes: int,
    adversarial_weight: float | None = None,
) -> gan_lib.GAN:
    """Networks, optimizers and the compiled GAN; call under the strategy scope.

    `adversarial_weight` overrides task.adversarial_weight (0: the L1-only reference)."""
    keras.utils.set_random_seed(config.train.seed)
    generator, discriminator = architectures.build_networks(
        config, resolution=resolution, channels=channels, num_classes=num_classes
    )
    t = config.train
    if tasks.is_image_to_image(config.task):
        model = image_to_image.ImageToImageGAN(
            generator,
            discriminator,
            l1_weight=config.task.l1_weight,
            adversarial_weight=(
                config.task.adversarial_weight if adversarial_weight is None else adversarial_weight
            ),
            ema_half_life_images=t.ema_half_life_images,
            ema_rampup=t.ema_rampup,
            seed=t.seed,
        )
    else:
        model = gan_lib.GAN(
            generator,
            discriminator,
            latent_dim=config.model.latent_dim,
            num_classes=num_classes,
            ema_half_life_images=t.ema_half_life_images,
            ema_rampup=t.ema_rampup,
            seed=t.seed,
        )

    def adam(lr, updates_per_step=1):
        opt = keras.optimizers.Adam(
            learning_rate=learning_rate(lr, t.steps, t.lr_decay_fraction, updates_per_step),
            beta_1=t.beta_1,
            beta_2=t.beta_2,
        )
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            opt = keras.optimizers.LossScaleOptimizer(opt)
        return opt

    model.compile(
        adam(t.g_learning_rate),
        adam(t.d_learning_rate, updates_per_step=t.n_critic),
        loss=t.loss,
        n_critic=t.n_critic,
        gp_weight=t.gp_weight,
        r1_gamma=t.r1_gamma,
        diffaugment_policy=t.diffaugment,
        **gan_lib.regularisation_options(t),
        **ada.options(t),
    )
    return model


def learning_rate(base: float, steps: int, decay_fraction: float, updates_per_step: int = 1):
    """`base`, or with `decay_fraction` > 0 a schedule (Keras' CosineDecay) that holds `base`
    for the first 1 - decay_fraction of `steps` train steps, then falls along a cosine to 0
    at the last step. `updates_per_step` is the optimizer's updates per train step (D's
    n_critic), since a schedule counts the optimizer's own iterations. The schedule is a
    function of those iterations, which checkpoints keep, so a resumed run continues it."""
    if not decay_fraction:
        return base
    total = int(steps) * int(updates_per_step)
    decay = max(1, round(total * float(decay_fraction)))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=base,
        decay_steps=decay,
        alpha=0.0,
        warmup_target=base,  # a "warm-up" from base to base: the hold
        warmup_steps=total - decay,
    )


class GridSampler:
    """Fixed noise for sample grids, so grids are comparable across steps."""

    def __init__(self, config, num_classes: int):
        n = config.train.num_sample_images
        self.num_classes = num_classes
        if num_classes:
            # One row per class, at least 8 samples each to show its variety.
            cols = max(8, -(-n // num_classes))
            self.rows = num_classes
            self.labels = tf.constant(np.repeat(np.arange(num_classes), cols), tf.int32)
            n = num_classes * cols
        else:
            self.rows = None
            self.labels = None
        self.z = tf.random.stateless_normal(
            [n, config.model.latent_dim], seed=[config.train.seed, 7919]
        )

    def grid(self, model: gan_lib.GAN) -> np.ndarray:
        fake = model.sample(self.z, self.labels)
        return gan_images.make_grid(gan_images.to_uint8(fake), rows=self.rows)


class TaskGridSampler:
    """Fixed conditions (from the fixed real images) for image-to-image sample grids: rows of
    condition | output | real. `z` and `labels` are both the conditions, which is what
    ImageToImageGAN.sample and .discriminate take in those places."""

    def __init__(self, config, fixed_real_float):
        conditions = task_conditions.fixed_conditions(config.task, fixed_real_float, _GRID_SEED)
        self.z = self.labels = tf.constant(conditions)
        self.real = fixed_real_float
        self.rows = None

    def grid(self, model) -> np.ndarray:
        fake = tf.cast(model.sample(self.z), tf.float32)
        preview = image_to_image.preview_condition(self.z, self.real.shape[1:])
        columns = tf.stack([preview, fake, self.real], axis=1)  # [n, 3, H, W, C]
        triplets = tf.reshape(columns, [-1, *self.real.shape[1:]])
        per_row = 3 * max(1, min(4, int(self.real.shape[0]) // 4 or 1))
        return gan_images.make_grid(
            gan_images.to_uint8(triplets), rows=-(-int(triplets.shape[0]) // per_row)
        )


# Seeds the sample grids' conditions apart from the training stream's (index < 2**40).
_GRID_SEED = 1 << 40
# An image-to-image G's BatchNorm statistics are re-estimated on this many training
# conditions (seeded apart from the grids' and training's) before it samples or is saved.
STANDING_STATISTICS_IMAGES = 4096
_STANDING_SEED = 3 << 40


def standing_conditions(config, ingest_dir) -> np.ndarray:
    images, _ = input_pipeline.read_split(
        ingest_dir,
        records.TRAIN,
        STANDING_STATISTICS_IMAGES,
        resolution=config.data.resolution,
        channels=config.data.channels,
    )
    return task_conditions.fixed_conditions(
        config.task, gan_images.to_float(images), _STANDING_SEED
    )
