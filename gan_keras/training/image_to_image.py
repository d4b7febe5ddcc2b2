"""Image-to-image GANs (pix2pix, Isola et al., 2017): the GAN whose batches pair a condition
with its target image (its U-Net and PatchGAN are gan_keras.models.pix2pix).

The condition (a low-resolution image, a masked image plus its mask, an edge
map; gan_keras.tasks derives it from the stored image) goes through a U-Net to
an image of the target's size; D sees (condition, image) pairs and answers per
patch. G's loss is `adversarial_weight` x the adversarial loss (any of
gan_keras.training.losses, averaged over patches) + `l1_weight` x the L1 distance to
the target; `adversarial_weight` = 0 is the L1-only reference model of the
same architecture. The training step is GAN.train_step: same update order,
per-replica randomness, global-batch loss scaling and EMA.
"""

import keras
import tensorflow as tf

from gan_keras.training import gan as gan_lib


@keras.saving.register_keras_serializable(package="gan_keras")
class ImageToImageGAN(gan_lib.GAN):
    """GAN on ((condition, image), label) batches; the label is ignored.

    G maps the batch's own conditions (no latent noise: as in pix2pix, whose
    dropout noise the generator learns to ignore), D sees (condition, image)
    pairs, and G's per-example loss adds `l1_weight` x mean |G(c) - image|.
    """

    def __init__(
        self,
        generator,
        discriminator,
        *,
        l1_weight: float,
        adversarial_weight: float,
        seed: int = 0,
        ema_half_life_images: float = 0.0,
        ema_rampup: float = 0.0,
        **kwargs,
    ):
        super().__init__(
            generator,
            discriminator,
            latent_dim=1,
            num_classes=0,
            seed=seed,
            ema_half_life_images=ema_half_life_images,
            ema_rampup=ema_rampup,
            **kwargs,
        )
        if l1_weight < 0 or adversarial_weight < 0 or l1_weight + adversarial_weight <= 0:
            raise ValueError(
                f"task.l1_weight={l1_weight} and task.adversarial_weight="
                f"{adversarial_weight} must be >= 0, not both 0"
            )
        self.l1_weight = float(l1_weight)
        self.adversarial_weight = float(adversarial_weight)

    def compile(self, *args, **kwargs):
        for key, field in (("diffaugment_policy", "diffaugment"), ("ada_target", "ada_target")):
            if kwargs.get(key):
                raise ValueError(
                    f"train.{field} is not supported for image-to-image tasks "
                    "(the condition and the image would need the same transform)"
                )
        super().compile(*args, **kwargs)
        if self.adversarial_weight == 0:
            # The L1-only model never consults D: it keeps only G's trackers.
            self.trackers = {name: self.trackers[name] for name in ("g_loss", "g_grad_norm")}
        self.trackers["l1"] = keras.metrics.Mean(name="l1")

    def train_step(self, data):
        if self.adversarial_weight > 0:
            return super().train_step(data)
        return self._reconstruction_step(data)

    def _reconstruction_step(self, data):
        """The L1-only model's step: G's update alone.

        G takes no noise here, so D's updates never reach G's trajectory when the
        adversarial weight is 0; skipping them gives the same generator (a test
        checks) at about 60% of the GAN step's cost.
        """
        real_images, condition = self._unpack(data)
        local_batch = tf.shape(real_images)[0]
        global_batch = local_batch * tf.distribute.get_replica_context().num_replicas_in_sync
        step = tf.cast(self.g_optimizer.iterations, tf.int64)
        with tf.GradientTape() as tape:
            fake_images = self.generator(condition, training=True)
            per_example = self._reconstruction_loss(fake_images, real_images)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            scaled_loss = self.g_optimizer.scale_loss(loss)
        variables = self.generator.trainable_variables
        grad_norm = self._apply(self.g_optimizer, tape.gradient(scaled_loss, variables), variables)
        if self.ema_generator is not None:
            with tf.control_dependencies([grad_norm]):
                self._update_ema(step, global_batch)
        mean_loss = tf.reduce_mean(per_example)
        outputs = {"g_loss": mean_loss, "l1": mean_loss, "g_grad_norm": grad_norm}
        for name, tracker in self.trackers.items():
            tracker.update_state(outputs[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _unpack(self, data):
        (condition, images), _ = data
        return tf.cast(images, self.compute_dtype), tf.cast(condition, self.compute_dtype)

    def _generator_inputs(self, step, critic, local_batch, real_condition):
        return real_condition, real_condition

    def _discriminate(self, images, condition, training):
        return tf.cast(self.discriminator([condition, images], training=training), tf.float32)

    def _reconstruction_loss(self, fake_images, real_images):
        difference = tf.abs(tf.cast(fake_images, tf.float32) - tf.cast(real_images, tf.float32))
        return self.l1_weight * tf.reduce_mean(difference, axis=[1, 2, 3])

    def set_standing_conditions(self, conditions) -> None:
        """Training conditions [N, h, w, c] that `refresh_sampling_batch_norm` runs G on."""
        self._standing_conditions = tf.constant(conditions, self.compute_dtype)
        self._sampling_statistics_step = None

    def refresh_sampling_batch_norm(self, num_batches: int = 16, batch_size: int = 256) -> None:
        """Re-estimates G's BatchNorm statistics on the standing conditions (in batches of
        `batch_size`, at most `num_batches`), so they are those of G's current weights
        (gan.standing_batch_norm). Conditions come from the data, so this needs
        `set_standing_conditions` first (the train stage calls it); without them, a no-op for
        the raw G and an error for an EMA copy with BatchNorm, whose copied statistics belong
        to no weights.
        Only G's moving statistics change: training-mode steps never read them."""
        conditions = getattr(self, "_standing_conditions", None)
        step = int(self.step.numpy())
        if conditions is None:
            if self.ema_generator is not None and gan_lib.batch_norm_layers(self.ema_generator):
                # The EMA copy's moving statistics were never those of its weights.
                raise ValueError(
                    "an image-to-image EMA generator with BatchNorm samples only after "
                    "set_standing_conditions(...) (its statistics are re-estimated on them)"
                )
            return
        if self._sampling_statistics_step == step:
            return
        total = min(int(conditions.shape[0]), num_batches * batch_size)
        batches = (conditions[i : i + batch_size] for i in range(0, total, batch_size))
        gan_lib.standing_batch_norm(self.sampling_generator, batches)
        self._sampling_statistics_step = step

    def sample(self, condition, labels=None):
        """Images in [-1, 1] for `condition` from the sampling generator, inference mode."""
        self.refresh_sampling_batch_norm()
        return self.sampling_generator(condition, training=False)

    def translate(self, condition):
        return self.sample(condition)


def preview_condition(conditions, image_shape):
    """Conditions drawn at the image's size and channels, for condition | output | real grids:
    low-resolution images upsampled (nearest, so the pixels show), a 1-channel rendering
    repeated over the image's channels, an inpainting condition's masked image (hole in grey)."""
    height, width, channels = (int(d) for d in image_shape)
    conditions = tf.cast(conditions, tf.float32)
    preview = conditions[..., :channels]
    if preview.shape[-1] != channels:
        preview = tf.repeat(preview, channels, axis=-1)
    if tuple(preview.shape[1:3]) != (height, width):
        preview = tf.image.resize(preview, [height, width], method="nearest")
    return preview
