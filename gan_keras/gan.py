"""The GAN as a subclassed `keras.Model` whose `train_step` does one
adversarial update: `n_critic` discriminator updates, then one generator update.

The same `train_step` serves `GAN.fit` and the pipeline's distributed loop
(`strategy.run(gan.train_step, ...)`), so both paths train identically.

Distribution notes:
- Losses are per-example and averaged over the *global* batch
  (`tf.nn.compute_average_loss`); Keras optimizers then sum gradients across
  replicas, giving the gradient of the global-batch mean.
- Noise is drawn per replica from stateless RNG keyed by (seed, step, purpose):
  every replica computes the global batch's noise and keeps its own slice, so
  one replica at batch B and N replicas at batch B/N see the same noise, and a
  restored run continues the exact noise stream.

EMA generator (StyleGAN2's recipe plus BigGAN's "standing statistics"):
- The average has a half-life in images, not a per-step decay, so it means the
  same at any batch size, and it ramps up: while fewer than
  `half_life / rampup` images have been seen, the half-life is `rampup` times
  the images seen. A fixed 0.999 decay over a short run averages in the
  generator's early, bad weights and makes the export worse than G itself.
- BatchNorm statistics are not averaged or copied from the live generator:
  they belong to G's weights, not to the averaged ones. Before the EMA
  generator samples or is saved, `refresh_ema_batch_norm` re-estimates them
  by running it in training mode on fresh noise.
"""

import keras
import tensorflow as tf

from gan_keras import diffaugment, losses

# Stream ids that make the noise of each random draw in a step distinct.
_Z, _LABEL, _GP_EPS, _AUG_REAL, _AUG_FAKE = range(5)
# Seed counters: 8 draws per update, 8 updates (n_critic + 1) per step.
_DRAWS_PER_UPDATE = 8
MAX_N_CRITIC = 7


def check_n_critic(n_critic) -> None:
    """The one validation of train.n_critic: the per-step random streams are laid out for at
    most MAX_N_CRITIC discriminator updates per generator update."""
    if (
        isinstance(n_critic, bool)
        or not isinstance(n_critic, int)
        or not 1 <= n_critic <= MAX_N_CRITIC
    ):
        raise ValueError(
            f"train.n_critic must be an integer in [1, {MAX_N_CRITIC}], got {n_critic!r}"
        )


def check_ema_settings(half_life_images: float, rampup: float) -> None:
    """The one validation of the EMA's config fields (train.ema_*)."""
    if not half_life_images >= 0:
        raise ValueError(
            f"train.ema_half_life_images must be >= 0 (0 turns EMA off), got {half_life_images}"
        )
    if not 0 <= rampup <= 1:
        raise ValueError(f"train.ema_rampup must be in [0, 1] (0: no ramp-up), got {rampup}")


def _per_example(losses_per_logit, local_batch):
    """Mean over each example's logits: one for an image D, one per patch for a PatchGAN."""
    return tf.reduce_mean(tf.reshape(losses_per_logit, [local_batch, -1]), axis=1)


@keras.saving.register_keras_serializable(package="gan_keras")
class GAN(keras.Model):
    """Holds G, D (and an EMA copy of G) and their two optimizers."""

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        *,
        latent_dim: int,
        num_classes: int = 0,
        ema_half_life_images: float = 0.0,
        ema_rampup: float = 0.0,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_ema_settings(ema_half_life_images, ema_rampup)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(latent_dim)
        self.num_classes = int(num_classes)
        self.ema_half_life_images = float(ema_half_life_images)
        self.ema_rampup = float(ema_rampup)
        self.seed = int(seed)
        self.ema_generator = None
        # The step at which the EMA generator's BatchNorm statistics were last
        # re-estimated (None: never, or stale).
        self._ema_statistics_step = None
        if self.ema_half_life_images > 0:
            self.ema_generator = keras.models.clone_model(generator)
            self.ema_generator.set_weights(generator.get_weights())
        self.g_optimizer = None
        self.d_optimizer = None

    # ------------------------------------------------------------------ setup
    def compile(
        self,
        g_optimizer: keras.optimizers.Optimizer,
        d_optimizer: keras.optimizers.Optimizer,
        loss: str = "non_saturating",
        *,
        n_critic: int = 1,
        gp_weight: float = 10.0,
        r1_gamma: float = 0.0,
        diffaugment_policy: str = "",
        jit_compile=False,
    ):
        losses.LOSSES.check(loss)
        check_n_critic(n_critic)
        # Keras drives callbacks from `self.optimizer.iterations`; G's optimizer
        # steps once per train_step, so it is the step counter.
        super().compile(optimizer=g_optimizer, jit_compile=jit_compile)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.loss_name = loss
        self.n_critic = int(n_critic)
        self.gp_weight = float(gp_weight)
        self.r1_gamma = float(r1_gamma)
        self.augment_policy = diffaugment.parse_policy(diffaugment_policy)
        # Optimizers must be built under the same strategy scope as the model
        # variables, before the first (traced) step.
        g_optimizer.build(self.generator.trainable_variables)
        d_optimizer.build(self.discriminator.trainable_variables)

        mean = keras.metrics.Mean
        self.trackers = {
            "d_loss": mean(name="d_loss"),
            "g_loss": mean(name="g_loss"),
            "d_real_logit": mean(name="d_real_logit"),
            "d_fake_logit": mean(name="d_fake_logit"),
            "d_grad_norm": mean(name="d_grad_norm"),
            "g_grad_norm": mean(name="g_grad_norm"),
        }
        if loss == "wgan_gp":
            self.trackers["gradient_penalty"] = mean(name="gradient_penalty")
        if self.r1_gamma > 0:
            self.trackers["r1_penalty"] = mean(name="r1_penalty")

    @property
    def metrics(self):
        return list(getattr(self, "trackers", {}).values())

    @property
    def sampling_generator(self) -> keras.Model:
        """The generator that samples and exports use (the EMA one when on)."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    @property
    def step(self):
        return self.g_optimizer.iterations

    def call(self, inputs, training=False):
        return self.sampling_generator(inputs, training=training)

    # ------------------------------------------------------------ randomness
    def _replica_slice(self, draw, local_batch):
        """Draws the global batch with `draw(global_batch)` and keeps this replica's rows."""
        ctx = tf.distribute.get_replica_context()
        num_replicas = ctx.num_replicas_in_sync
        replica_id = tf.cast(ctx.replica_id_in_sync_group, tf.int32)
        full = draw(local_batch * num_replicas)
        return full[replica_id * local_batch : (replica_id + 1) * local_batch]

    def _seed(self, step, critic, stream):
        """A distinct stateless seed per (step, update within the step, draw)."""
        counter = (
            tf.cast(step, tf.int64) * _DRAWS_PER_UPDATE * (MAX_N_CRITIC + 1)
            + critic * _DRAWS_PER_UPDATE
            + stream
        )
        return tf.stack([tf.constant(self.seed, tf.int64), counter])

    def _latents(self, step, critic, local_batch):
        seed = self._seed(step, critic, _Z)
        return self._replica_slice(
            lambda n: tf.random.stateless_normal([n, self.latent_dim], seed), local_batch
        )

    def _fake_labels(self, step, critic, local_batch):
        seed = self._seed(step, critic, _LABEL)
        return self._replica_slice(
            lambda n: tf.random.stateless_uniform([n], seed, 0, self.num_classes, dtype=tf.int32),
            local_batch,
        )

    def _augment(self, images, step, critic, stream):
        if not self.augment_policy:
            return images
        local_batch = tf.shape(images)[0]
        base_seed = self._seed(step, critic, stream)

        def random_fn(key, shape, minval, maxval, dtype):
            seed = tf.random.experimental.stateless_fold_in(base_seed, key)
            return self._replica_slice(
                lambda n: tf.random.stateless_uniform(
                    [n, *shape], seed, minval, maxval, dtype=dtype
                ),
                local_batch,
            )

        return diffaugment.diff_augment(images, self.augment_policy, random_fn)

    # -------------------------------------------------------------- networks
    def _discriminate(self, images, labels, training):
        inputs = [images, labels] if self.num_classes else images
        return tf.cast(self.discriminator(inputs, training=training), tf.float32)

    # ------------------------------------------------------------ train step
    def _unpack(self, data):
        """A batch -> (real images, what D conditions the real images on: labels or None)."""
        if isinstance(data, (tuple, list)):
            real_images, real_labels = data[0], data[1]
        else:
            real_images, real_labels = data, None
        if self.num_classes:
            if real_labels is None:
                raise ValueError("a conditional GAN needs (images, labels) batches")
            real_labels = tf.cast(real_labels, tf.int32)
        return tf.cast(real_images, self.compute_dtype), real_labels if self.num_classes else None

    def _generator_inputs(self, step, critic, local_batch, real_condition):
        """(G's inputs, what D conditions the fakes on) for one update: fresh latents (and
        labels) from the update's own random streams."""
        z = self._latents(step, critic, local_batch)
        if not self.num_classes:
            return z, None
        labels = self._fake_labels(step, critic, local_batch)
        return [z, labels], labels

    def _reconstruction_loss(self, fake_images, real_images):
        """Per-example loss added to G's adversarial one (image-to-image tasks); None here."""
        return None

    def train_step(self, data):
        real_images, real_labels = self._unpack(data)
        local_batch = tf.shape(real_images)[0]
        ctx = tf.distribute.get_replica_context()
        global_batch = local_batch * ctx.num_replicas_in_sync
        step = tf.cast(self.g_optimizer.iterations, tf.int64)

        d_out = {}
        for critic in range(self.n_critic):
            # Each update must finish before the next starts: replicas have to
            # issue their collectives (gradient sums, synchronised BatchNorm)
            # in the same order, and data flow alone does not impose one.
            with tf.control_dependencies(list(d_out.values())):
                d_out = self._discriminator_update(
                    real_images, real_labels, step, critic, local_batch, global_batch
                )
        with tf.control_dependencies(list(d_out.values())):
            g_out = self._generator_update(
                real_images, real_labels, step, local_batch, global_batch
            )
        if self.ema_generator is not None:
            with tf.control_dependencies(list(g_out.values())):
                self._update_ema(step, global_batch)

        # The last critic update's values stand for the step's D side.
        outputs = {**d_out, **g_out}
        for name, tracker in self.trackers.items():
            tracker.update_state(outputs[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _discriminator_update(
        self, real_images, real_labels, step, critic, local_batch, global_batch
    ):
        generator_inputs, fake_labels = self._generator_inputs(
            step, critic, local_batch, real_labels
        )
        fake_images = tf.stop_gradient(self.generator(generator_inputs, training=True))
        real_in = self._augment(real_images, step, critic, _AUG_REAL)
        fake_in = self._augment(fake_images, step, critic, _AUG_FAKE)
        out = {}
        with tf.GradientTape() as tape:
            if self.r1_gamma > 0:
                with tf.GradientTape() as r1_tape:
                    r1_tape.watch(real_in)
                    real_logits = self._discriminate(real_in, real_labels, training=True)
                r1_grads = r1_tape.gradient(real_logits, real_in)
                r1 = (
                    0.5
                    * self.r1_gamma
                    * tf.reduce_sum(tf.square(tf.cast(r1_grads, tf.float32)), axis=[1, 2, 3])
                )
            else:
                real_logits = self._discriminate(real_in, real_labels, training=True)
            fake_logits = self._discriminate(fake_in, fake_labels, training=True)
            per_example = _per_example(
                losses.discriminator_loss(self.loss_name, real_logits, fake_logits), local_batch
            )
            total = per_example
            if self.loss_name == "wgan_gp":
                gp = self._gradient_penalty(
                    real_images, fake_images, real_labels, step, critic, local_batch
                )
                total = total + self.gp_weight * gp
                out["gradient_penalty"] = tf.reduce_mean(gp)
            if self.r1_gamma > 0:
                total = total + r1
                out["r1_penalty"] = tf.reduce_mean(r1)
            loss = tf.nn.compute_average_loss(total, global_batch_size=global_batch)
            scaled_loss = self.d_optimizer.scale_loss(loss)
        variables = self.discriminator.trainable_variables
        grads = tape.gradient(scaled_loss, variables)
        out["d_grad_norm"] = self._apply(self.d_optimizer, grads, variables)
        # Trackers get replica-local means; their variables sum over replicas
        # and count replicas, so results are global-batch means.
        out["d_loss"] = tf.reduce_mean(total)
        out["d_real_logit"] = tf.reduce_mean(real_logits)
        out["d_fake_logit"] = tf.reduce_mean(fake_logits)
        return out

    def _gradient_penalty(self, real_images, fake_images, labels, step, critic, local_batch):
        seed = self._seed(step, critic, _GP_EPS)
        eps = self._replica_slice(
            lambda n: tf.random.stateless_uniform([n, 1, 1, 1], seed), local_batch
        )
        eps = tf.cast(eps, real_images.dtype)
        mixed = eps * real_images + (1.0 - eps) * fake_images
        with tf.GradientTape() as tape:
            tape.watch(mixed)
            logits = self._discriminate(mixed, labels, training=True)
        grads = tf.cast(tape.gradient(logits, mixed), tf.float32)
        norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-12)
        return tf.square(norms - 1.0)

    def _generator_update(self, real_images, real_labels, step, local_batch, global_batch):
        # Noise for G's update comes from its own stream, after the critics'.
        generator_inputs, labels = self._generator_inputs(
            step, self.n_critic, local_batch, real_labels
        )
        out = {}
        with tf.GradientTape() as tape:
            fake_images = self.generator(generator_inputs, training=True)
            fake_in = self._augment(fake_images, step, self.n_critic, _AUG_FAKE)
            fake_logits = self._discriminate(fake_in, labels, training=True)
            per_example = _per_example(
                losses.generator_loss(self.loss_name, fake_logits), local_batch
            )
            reconstruction = self._reconstruction_loss(fake_images, real_images)
            if reconstruction is not None:
                per_example = self.adversarial_weight * per_example + reconstruction
                out["l1"] = tf.reduce_mean(reconstruction)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            scaled_loss = self.g_optimizer.scale_loss(loss)
        variables = self.generator.trainable_variables
        grads = tape.gradient(scaled_loss, variables)
        grad_norm = self._apply(self.g_optimizer, grads, variables)
        return {**out, "g_loss": tf.reduce_mean(per_example), "g_grad_norm": grad_norm}

    def _apply(self, optimizer, grads, variables):
        """Applies gradients; returns the global norm of the global-batch gradient."""
        ctx = tf.distribute.get_replica_context()
        num_replicas = ctx.num_replicas_in_sync
        # Embedding gradients arrive as IndexedSlices; the tables are small.
        grads = [tf.convert_to_tensor(g) for g in grads]
        if num_replicas > 1:
            # Sum once here to measure the true gradient norm, then hand the
            # optimizer 1/N of it: its own cross-replica sum restores the total.
            grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        norm = tf.linalg.global_norm([tf.cast(g, tf.float32) for g in grads])
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            norm = norm / tf.cast(optimizer.dynamic_scale, tf.float32)
        if num_replicas > 1:
            grads = [g / num_replicas for g in grads]
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        # Reading the iteration counter after the update ties `norm` to it.
        with tf.control_dependencies([tf.convert_to_tensor(optimizer.iterations)]):
            return tf.identity(norm)

    def ema_decay(self, step, global_batch):
        """The EMA's per-step decay after `step` steps of `global_batch` images."""
        half_life = tf.constant(self.ema_half_life_images, tf.float32)
        if self.ema_rampup > 0:
            images_seen = tf.cast(step, tf.float32) * tf.cast(global_batch, tf.float32)
            half_life = tf.minimum(half_life, self.ema_rampup * images_seen)
        return tf.pow(0.5, tf.cast(global_batch, tf.float32) / tf.maximum(half_life, 1e-8))

    def _update_ema(self, step, global_batch):
        # Runs in replica context: every replica holds identical G weights
        # after the (all-reduced) update, so each updates its own EMA copy and
        # the copies stay identical without another collective.
        decay = self.ema_decay(step, global_batch)
        for ema_var, var in zip(
            self.ema_generator.trainable_weights, self.generator.trainable_weights, strict=True
        ):
            ema_var.assign(decay * ema_var.value + (1.0 - decay) * var.value)

    def refresh_ema_batch_norm(self, num_batches: int = 16, batch_size: int = 256) -> None:
        """Re-estimates the EMA generator's BatchNorm statistics on its own weights.

        BigGAN's "standing statistics": the moving mean and variance become the
        average over `num_batches` batches of fresh noise of the batch
        statistics the averaged weights produce (a cumulative average through
        each layer's momentum). A no-op without EMA or BatchNorm, and when the
        statistics are already those of the current step.
        """
        if self.ema_generator is None:
            return
        step = int(self.step.numpy())
        if self._ema_statistics_step == step:
            return
        norms = [
            layer
            for layer in self.ema_generator._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)
        ]
        momenta = [layer.momentum for layer in norms]
        try:
            for i in range(num_batches):
                for layer in norms:
                    # Batch i gets weight 1/(i+1): a plain average of all batches,
                    # the first one replacing the stale statistics entirely.
                    layer.momentum = i / (i + 1)
                seed = tf.constant([self.seed, 0x5EED + i], tf.int64)
                z = tf.random.stateless_normal([batch_size, self.latent_dim], seed)
                inputs = z
                if self.num_classes:
                    labels = tf.random.stateless_uniform(
                        [batch_size], seed + 1, 0, self.num_classes, dtype=tf.int32
                    )
                    inputs = [z, labels]
                self.ema_generator(inputs, training=True)
        finally:
            for layer, momentum in zip(norms, momenta, strict=True):
                layer.momentum = momentum
        self._ema_statistics_step = step

    # --------------------------------------------------------------- sampling
    def sample(self, z, labels=None):
        """Float images in [-1, 1] from the sampling generator, inference mode."""
        self.refresh_ema_batch_norm()
        inputs = [z, labels] if self.num_classes else z
        return self.sampling_generator(inputs, training=False)

    def discriminate(self, images, labels=None):
        """D's logits in inference mode."""
        return self._discriminate(images, labels, training=False)

    def checkpoint(self) -> tf.train.Checkpoint:
        """Everything training state consists of, for tf.train.CheckpointManager."""
        items = dict(
            generator=self.generator,
            discriminator=self.discriminator,
            g_optimizer=self.g_optimizer,
            d_optimizer=self.d_optimizer,
        )
        if self.ema_generator is not None:
            items["ema_generator"] = self.ema_generator
        return tf.train.Checkpoint(**items)
