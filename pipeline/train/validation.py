"""Train stage: the checks of the model, train and task sections (`validate_config`), done
before any work. They read the file system (train.init_from's parent) but train nothing."""

import numpy as np

from gan_keras import tasks
from gan_keras.models import architectures, dcgan
from gan_keras.training import ada, losses
from gan_keras.training import gan as gan_lib
from gan_keras.training.diffaugment import parse_policy
from pipeline import judge as judge_lib
from pipeline.train import fine_tune
from pipeline.train.strategies import STRATEGIES


def validate_config(config) -> None:
    """Checks the model and train sections without doing any work."""
    t, m, d = config.train, config.model, config.data
    STRATEGIES.check(t.strategy)
    losses.LOSSES.check(t.loss)
    for field in (
        "steps",
        "batch_size",
        "n_critic",
        "checkpoint_every",
        "keep_checkpoints",
        "sample_every",
        "log_every",
        "num_sample_images",
        "shuffle_buffer",
    ):
        if int(t[field]) < 1:
            raise ValueError(f"train.{field} must be >= 1, got {t[field]}")
    for field in ("g_learning_rate", "d_learning_rate"):
        if not t[field] > 0:
            raise ValueError(f"train.{field} must be > 0, got {t[field]}")
    if not 0 <= t.lr_decay_fraction < 1:
        raise ValueError(
            f"train.lr_decay_fraction must be in [0, 1) (0: constant), got {t.lr_decay_fraction!r}"
        )
    for field in ("beta_1", "beta_2"):
        if not 0 <= t[field] < 1:
            raise ValueError(f"train.{field} must be in [0, 1), got {t[field]}")
    gan_lib.check_ema_settings(t.ema_half_life_images, t.ema_rampup)
    for field, minimum, meaning in (
        ("eval_every", 0, " (0 turns in-training evaluation off)"),
        ("eval_num_samples", 2, ""),
    ):
        value = t[field]
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
            raise ValueError(
                f"train.{field} must be an integer >= {minimum}{meaning}, got {value!r}"
            )
    if t.eval_every > 0:
        # The in-training evaluation trains or loads the evaluate stage's judge.
        judge_lib.validate_judge_config(config)
    if t.r1_gamma < 0 or t.gp_weight < 0:
        raise ValueError("train.r1_gamma and train.gp_weight must be >= 0")
    parse_policy(t.diffaugment)
    _validate_augmentation(t)
    gan_lib.check_n_critic(t.n_critic)
    if t.loss == "wgan_gp" and m.d_norm == "batch":
        # The gradient penalty is per example; BatchNorm couples the examples
        # of a batch and invalidates it (Gulrajani et al., 2017, section 4).
        raise ValueError("train.loss='wgan_gp' needs model.d_norm 'layer' or 'none', not 'batch'")
    if t.r1_gamma > 0 and t.r1_every > 1 and m.d_norm == "batch" and m.sync_batch_norm:
        # Lazy R1 runs D inside a tf.cond; synchronised BatchNorm's cross-replica reduction is
        # a merge_call, which TensorFlow cannot run in a cond branch (measured: both workers
        # of a multi-worker run fail at the first step).
        raise ValueError(
            f"train.r1_every={t.r1_every} (lazy R1) cannot run with model.sync_batch_norm=True "
            "and model.d_norm='batch': set train.r1_every=1, model.d_norm='none' or 'layer' "
            "(StyleGAN2's D has no normalisation), or model.sync_batch_norm=False"
        )
    dcgan.check_network_resolution(d.resolution, m.network_resolution)
    if not 0 <= m.batch_norm_momentum < 1:
        raise ValueError(
            f"model.batch_norm_momentum must be in [0, 1), got {m.batch_norm_momentum}"
        )
    if m.latent_dim < 1 or m.g_width < 1 or m.d_width < 1:
        raise ValueError("model.latent_dim, model.g_width and model.d_width must be >= 1")
    if d.resolution not in dcgan.SUPPORTED_RESOLUTIONS:
        raise ValueError(
            f"data.resolution={d.resolution}: the DCGAN networks support "
            f"{dcgan.SUPPORTED_RESOLUTIONS}"
        )
    dcgan.G_NORMS.check(m.g_norm)
    dcgan.D_NORMS.check(m.d_norm)
    dcgan.CONDITIONINGS.check(m.conditioning)
    architectures.validate_architecture_config(config)
    gan_lib.regularisation_options(t)
    tasks.validate_task_config(config.task, resolution=d.resolution, channels=d.channels)
    if tasks.is_image_to_image(config.task):
        _check_image_to_image_config(config)
    _check_fine_tune_config(config)


def _check_fine_tune_config(config) -> None:
    """train.init_from, init_optimizer and freeze_d_layers: the parent exists and can provide
    what is asked; the frozen layers exist. Reads the file system, trains nothing."""
    t, m = config.train, config.model
    freeze = t.freeze_d_layers
    if not isinstance(freeze, (int, np.integer)) or isinstance(freeze, bool) or freeze < 0:
        raise ValueError(f"train.freeze_d_layers must be an integer >= 0, got {freeze!r}")
    if not isinstance(t.init_optimizer, bool):
        raise ValueError(f"train.init_optimizer must be True or False, got {t.init_optimizer!r}")
    if not t.init_from:
        if t.init_optimizer or freeze:
            raise ValueError(
                "train.init_optimizer and train.freeze_d_layers need train.init_from (a run to "
                "start from): frozen random layers would never learn"
            )
        return
    parent = fine_tune.resolve_parent(t.init_from)
    fine_tune.check_parent_options(parent, init_optimizer=t.init_optimizer, freeze_d_layers=freeze)
    if freeze:
        if m.spectral_norm:
            # Keras's SpectralNormalization rewrites its kernel in training mode whatever its
            # trainable flag says, so a frozen layer would still change.
            raise ValueError(
                "train.freeze_d_layers > 0 with model.spectral_norm=True: spectrally normalised "
                "layers renormalise their weights while training even when frozen"
            )
        # The number of classes changes no layer's place in D; any count builds the same layers.
        _, discriminator = architectures.build_networks(
            config,
            resolution=config.data.resolution,
            channels=config.data.channels,
            num_classes=max(2, int(m.num_classes)) if m.conditional else 0,
        )
        fine_tune.check_freeze_count(discriminator, int(freeze))


def _check_image_to_image_config(config) -> None:
    """What an image-to-image task cannot combine with (yet), by field."""
    t, m = config.train, config.model
    if m.conditional:
        raise ValueError(
            f"model.conditional=True with task.name={config.task.name!r}: image-to-image "
            "models are conditioned on images, not class labels"
        )
    if t.diffaugment:
        raise ValueError(
            f"train.diffaugment={t.diffaugment!r} with task.name={config.task.name!r}: "
            "the condition and the image would need the same transform; set it to ''"
        )
    if t.get("ada_target", 0.0):
        raise ValueError(
            f"train.ada_target={t.ada_target} with task.name={config.task.name!r}: "
            "the condition and the image would need the same transform; set it to 0"
        )
    if t.eval_every:
        raise ValueError(
            f"train.eval_every={t.eval_every} with task.name={config.task.name!r}: "
            "in-training evaluation scores sampled images; image-to-image models are "
            "scored by the evaluate stage (set train.eval_every=0)"
        )


def _validate_augmentation(train_config) -> None:
    """train.ada_* (gan_keras.training.ada), and that only one augmentation is on."""
    options = ada.options(train_config)
    if options["ada_target"] == 0:
        return
    ada.check_settings(options["ada_target"], options["ada_interval"], options["ada_speed_images"])
    if train_config.diffaugment:
        raise ValueError(
            f"train.ada_target={options['ada_target']} and train.diffaugment="
            f"{train_config.diffaugment!r} both augment D's inputs: choose one"
        )
