"""The GAN as a subclassed `keras.Model` whose `train_step` does one
adversarial update: `n_critic` discriminator updates, then one generator update.

One concern, kept whole (over 500 lines): the adversarial update and the state it carries
(EMA generator, w_avg, regulariser schedules), which change together.

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
  generator samples or is saved, `refresh_sampling_batch_norm` re-estimates them
  by running it in training mode on fresh noise.

StyleGAN2 generators (gan_keras.models.stylegan2: a mapping network z -> w and a synthesis network
ws -> images) train through the same steps, with what StyleGAN2 adds:
- style mixing: with probability `style_mixing_prob` an update's fakes take the styles of layers
  >= a random crossover from a second latent (one crossover per update, the same on every
  replica), so neighbouring layers' styles cannot rely on each other;
- fresh per-pixel noise for every synthesis layer, from the same sliced stateless streams;
- `w_avg`, the running mean of w (beta W_AVG_BETA per step, over the global batch), which
  truncation in w-space pulls towards; the EMA generator gets a copy, as StyleGAN2-ADA copies
  buffers;
- optional path-length regularisation (`pl_weight`, every `pl_every` steps, scaled by it).
Lazy R1 (`r1_every`: the penalty on every r1_every-th step, scaled by r1_every) works for
every architecture; r1_every=1 is the plain R1 of every step.
"""

import math

import keras
import tensorflow as tf

from gan_keras.models import stylegan2
from gan_keras.training import ada, diffaugment, losses

# Stream ids that make the noise of each random draw in a step distinct.
_Z, _LABEL, _GP_EPS, _AUG_REAL, _AUG_FAKE = range(5)
# StyleGAN2's draws: the second latent and crossover of style mixing, the synthesis noise,
# the path-length regulariser's image-space noise.
_MIX, _NOISE, _PATH_LENGTH = 5, 6, 7
# Seed counters: 8 draws per update, 8 updates (n_critic + 1) per step.
_DRAWS_PER_UPDATE = 8
MAX_N_CRITIC = 7


def batch_norm_layers(model: keras.Model) -> list:
    """Every BatchNormalization layer inside `model`, nested models included."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def standing_batch_norm(generator: keras.Model, batches) -> None:
    """Sets `generator`'s BatchNorm moving statistics to the average of the batch statistics
    its current weights produce on `batches` (an iterable of generator inputs).

    BigGAN's "standing statistics": the moving averages kept during training mix statistics
    of many past weights, which no longer match the weights being sampled (measured on the
    image-to-image GAN: FD 0.71 -> 0.65 on edges -> image, 0.90 -> 0.81 on inpainting once
    re-estimated). Batch i enters each layer's moving average with weight 1/(i+1), so the
    result is a plain average and the first batch replaces the stale statistics entirely.
    A no-op for a generator without BatchNorm.
    """
    norms = batch_norm_layers(generator)
    if not norms:  # e.g. StyleGAN2
        return
    momenta = [layer.momentum for layer in norms]
    try:
        for i, inputs in enumerate(batches):
            for layer in norms:
                layer.momentum = i / (i + 1)
            generator(inputs, training=True)
    finally:
        for layer, momentum in zip(norms, momenta, strict=True):
            layer.momentum = momentum


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


def regularisation_options(train_config) -> dict:
    """The compile options of train.r1_every, style_mixing_prob, pl_weight and pl_every,
    validated (ValueError naming the field); configs without them get the defaults."""
    options = {
        "r1_every": train_config.get("r1_every", 1),
        "style_mixing_prob": train_config.get("style_mixing_prob", 0.9),
        "pl_weight": train_config.get("pl_weight", 0.0),
        "pl_every": train_config.get("pl_every", 4),
    }
    for field in ("r1_every", "pl_every"):
        value = options[field]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"train.{field} must be an integer >= 1, got {value!r}")
    if not 0 <= options["style_mixing_prob"] <= 1:
        raise ValueError(
            f"train.style_mixing_prob must be in [0, 1], got {options['style_mixing_prob']}"
        )
    if not options["pl_weight"] >= 0:
        raise ValueError(f"train.pl_weight must be >= 0 (0: off), got {options['pl_weight']}")
    return options


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
        # The mapping and synthesis parts of a StyleGAN2 generator (None for the DCGAN).
        self.style = stylegan2.StyleParts.of(generator)
        self.ema_style = None
        # The step at which the EMA generator's BatchNorm statistics were last
        # re-estimated (None: never, or stale).
        self._sampling_statistics_step = None
        if self.ema_half_life_images > 0:
            self.ema_generator = keras.models.clone_model(generator)
            self.ema_generator.set_weights(generator.get_weights())
            self.ema_style = stylegan2.StyleParts.of(self.ema_generator)
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
        r1_every: int = 1,
        style_mixing_prob: float = 0.9,
        pl_weight: float = 0.0,
        pl_every: int = 4,
        ada_target: float = 0.0,
        ada_interval: int = ada.DEFAULT_INTERVAL,
        ada_speed_images: float = ada.DEFAULT_SPEED_IMAGES,
    ):
        losses.LOSSES.check(loss)
        check_n_critic(n_critic)
        regularisation_options(
            dict(
                r1_every=r1_every,
                style_mixing_prob=style_mixing_prob,
                pl_weight=pl_weight,
                pl_every=pl_every,
            )
        )
        if pl_weight > 0 and self.style is None:
            raise ValueError(
                "train.pl_weight > 0 needs a generator with a mapping network "
                "(model.architecture='stylegan2')"
            )
        # Keras drives callbacks from `self.optimizer.iterations`; G's optimizer
        # steps once per train_step, so it is the step counter.
        super().compile(optimizer=g_optimizer, jit_compile=jit_compile)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.loss_name = loss
        self.n_critic = int(n_critic)
        self.gp_weight = float(gp_weight)
        self.r1_gamma = float(r1_gamma)
        self.r1_every = int(r1_every)
        self.style_mixing_prob = float(style_mixing_prob)
        self.pl_weight = float(pl_weight)
        self.pl_every = int(pl_every)
        # The running mean of path lengths the penalty pulls towards (checkpointed).
        self.pl_mean = (
            tf.Variable(0.0, trainable=False, name="pl_mean") if self.pl_weight > 0 else None
        )
        self.augment_policy = diffaugment.parse_policy(diffaugment_policy)
        # Adaptive augmentation (gan_keras.training.ada): p and the sum and count of
        # sign(D(real)) since its last update, identical on every replica (checkpointed).
        self.ada_target = float(ada_target)
        self.ada_p = self.ada_signs = None
        if self.ada_target > 0:
            if self.augment_policy:
                raise ValueError(
                    "train.ada_target > 0 and train.diffaugment both augment D's inputs: "
                    "choose one (set train.diffaugment='' or train.ada_target=0)"
                )
            ada.check_settings(self.ada_target, ada_interval, ada_speed_images)
            self.ada_interval = int(ada_interval)
            self.ada_speed_images = float(ada_speed_images)
            first = tf.VariableAggregation.ONLY_FIRST_REPLICA
            self.ada_p = tf.Variable(0.0, trainable=False, name="ada_p", aggregation=first)
            self.ada_signs = tf.Variable(
                [0.0, 0.0], trainable=False, name="ada_signs", aggregation=first
            )
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
            # r_t = E[sign(D(real))], the ADA paper's overfitting heuristic (training health).
            "d_real_sign": mean(name="d_real_sign"),
            "d_grad_norm": mean(name="d_grad_norm"),
            "g_grad_norm": mean(name="g_grad_norm"),
        }
        if loss == "wgan_gp":
            self.trackers["gradient_penalty"] = mean(name="gradient_penalty")
        if self.r1_gamma > 0:
            self.trackers["r1_penalty"] = mean(name="r1_penalty")
        if self.pl_weight > 0:
            self.trackers["pl_penalty"] = mean(name="pl_penalty")
        if self.ada_p is not None:
            self.trackers["ada_p"] = mean(name="ada_p")

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
        if self.ada_p is not None:
            return self._adaptive_augment(images, step, critic, stream)
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

    def _adaptive_augment(self, images, step, critic, stream):
        """ADA's pipeline at the current p; skipped entirely while p = 0."""
        local_batch = tf.shape(images)[0]
        base_seed = self._seed(step, critic, stream)

        def random_fn(key, shape, dtype, distribution):
            seed = tf.random.experimental.stateless_fold_in(base_seed, key)
            draw = (
                tf.random.stateless_uniform
                if distribution == "uniform"
                else tf.random.stateless_normal
            )
            return self._replica_slice(lambda n: draw([n, *shape], seed, dtype=dtype), local_batch)

        p = self.ada_p.value()
        return tf.cond(p > 0, lambda: ada.augment(images, p, random_fn), lambda: images)

    def _accumulate_real_signs(self, real_logits):
        """Adds this update's sum and count of sign(D(real)) over the global batch."""
        signs = tf.sign(tf.stop_gradient(real_logits))
        totals = tf.stack([tf.reduce_sum(signs), tf.cast(tf.size(signs), tf.float32)])
        ctx = tf.distribute.get_replica_context()
        if ctx.num_replicas_in_sync > 1:
            totals = ctx.all_reduce(tf.distribute.ReduceOp.SUM, totals)
        return self.ada_signs.assign_add(totals)

    def _update_ada_p(self, step, global_batch):
        """Every ada_interval steps: p += sign(r_t - target) x images / ada_speed_images."""
        due = (step + 1) % self.ada_interval == 0
        signs = self.ada_signs.value()
        r_t = signs[0] / tf.maximum(signs[1], 1.0)
        adjust = ada.p_adjustment(
            r_t, self.ada_target, global_batch * self.ada_interval, self.ada_speed_images
        )
        p = self.ada_p.value()
        new_p = tf.where(due, tf.clip_by_value(p + adjust, 0.0, 1.0), p)
        with tf.control_dependencies([self.ada_p.assign(new_p)]):
            return self.ada_signs.assign(tf.where(due, tf.zeros_like(signs), signs))

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

    def _generate(self, generator_inputs, step, critic, local_batch):
        """G's images for one update: the generator's forward pass, or for a mapping network its
        (style-mixed) styles through the synthesis with fresh noise."""
        if self.style is None:
            return self.generator(generator_inputs, training=True)
        ws, _ = self._training_styles(generator_inputs, step, critic, local_batch)
        return self._synthesize(ws, step, critic, local_batch)

    def _training_styles(self, generator_inputs, step, critic, local_batch):
        """(ws [B, num_ws, w_dim] with style mixing, the unmixed w [B, w_dim]) for an update."""
        z, labels = generator_inputs if self.num_classes else (generator_inputs, None)
        w = self.style.map(z, labels, training=True)
        ws = self.style.broadcast(w)
        if self.style_mixing_prob > 0:
            seed = self._seed(step, critic, _MIX)
            z_mix = self._replica_slice(
                lambda n: tf.random.stateless_normal(
                    [n, self.latent_dim], tf.random.experimental.stateless_fold_in(seed, 0)
                ),
                local_batch,
            )
            # One crossover per update, not sliced: every replica mixes at the same layer.
            draw = tf.random.stateless_uniform(
                [2], tf.random.experimental.stateless_fold_in(seed, 1)
            )
            num_ws = self.style.num_ws
            crossover = 1 + tf.cast(tf.floor(draw[0] * (num_ws - 1)), tf.int32)  # 1..num_ws-1
            crossover = tf.where(draw[1] < self.style_mixing_prob, crossover, num_ws)
            ws_mix = self.style.broadcast(self.style.map(z_mix, labels, training=True))
            ws = stylegan2.mix_styles(ws, ws_mix, crossover)
        return ws, w

    def _synthesize(self, ws, step, critic, local_batch):
        """Synthesis of `ws` with fresh per-pixel noise from the update's own stream."""
        seed = self._seed(step, critic, _NOISE)
        noise = [
            self._replica_slice(
                lambda n, i=i, shape=shape: tf.random.stateless_normal(
                    [n, *shape], tf.random.experimental.stateless_fold_in(seed, i)
                ),
                local_batch,
            )
            for i, shape in enumerate(self.style.synthesis.noise_shapes)
        ]
        return self.style.synthesize(ws, noise, training=True)

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
        if self.ada_p is not None:
            with tf.control_dependencies(list(g_out.values())):
                self._update_ada_p(step, global_batch)
            g_out["ada_p"] = self.ada_p.value()

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
        fake_images = tf.stop_gradient(self._generate(generator_inputs, step, critic, local_batch))
        real_in = self._augment(real_images, step, critic, _AUG_REAL)
        fake_in = self._augment(fake_images, step, critic, _AUG_FAKE)
        out = {}
        with tf.GradientTape() as tape:
            if self.r1_gamma > 0 and self.r1_every > 1:
                # Lazy R1: on every r1_every-th step only, r1_every times as strong.
                real_logits, r1 = tf.cond(
                    step % self.r1_every == 0,
                    lambda: self._real_logits_and_r1(
                        real_in, real_labels, self.r1_gamma * self.r1_every
                    ),
                    lambda: (
                        self._discriminate(real_in, real_labels, training=True),
                        tf.zeros([local_batch], tf.float32),
                    ),
                )
            elif self.r1_gamma > 0:
                real_logits, r1 = self._real_logits_and_r1(real_in, real_labels, self.r1_gamma)
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
        out["d_real_sign"] = tf.reduce_mean(tf.sign(real_logits))
        if self.ada_p is not None:
            with tf.control_dependencies([self._accumulate_real_signs(real_logits)]):
                out["d_real_sign"] = tf.identity(out["d_real_sign"])
        return out

    def _real_logits_and_r1(self, real_in, real_labels, gamma):
        """(D's logits on the real images, R1 = gamma/2 |grad_x D(x)|^2 per example)."""
        with tf.GradientTape() as r1_tape:
            r1_tape.watch(real_in)
            real_logits = self._discriminate(real_in, real_labels, training=True)
        r1_grads = r1_tape.gradient(real_logits, real_in)
        r1 = 0.5 * gamma * tf.reduce_sum(tf.square(tf.cast(r1_grads, tf.float32)), axis=[1, 2, 3])
        return real_logits, r1

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
            if self.style is None:
                fake_images = self.generator(generator_inputs, training=True)
            else:
                ws, w = self._training_styles(generator_inputs, step, self.n_critic, local_batch)
                fake_images = self._synthesize(ws, step, self.n_critic, local_batch)
            fake_in = self._augment(fake_images, step, self.n_critic, _AUG_FAKE)
            fake_logits = self._discriminate(fake_in, labels, training=True)
            per_example = _per_example(
                losses.generator_loss(self.loss_name, fake_logits), local_batch
            )
            reconstruction = self._reconstruction_loss(fake_images, real_images)
            if reconstruction is not None:
                per_example = self.adversarial_weight * per_example + reconstruction
                out["l1"] = tf.reduce_mean(reconstruction)
            total = per_example
            if self.pl_weight > 0:
                pl = self._path_length_penalty(ws, step, local_batch, global_batch)
                total = total + pl
                out["pl_penalty"] = tf.reduce_mean(pl)
            loss = tf.nn.compute_average_loss(total, global_batch_size=global_batch)
            scaled_loss = self.g_optimizer.scale_loss(loss)
        variables = self.generator.trainable_variables
        grads = tape.gradient(scaled_loss, variables)
        grad_norm = self._apply(self.g_optimizer, grads, variables)
        if self.style is not None:
            with tf.control_dependencies([self._update_w_avg(w, global_batch)]):
                grad_norm = tf.identity(grad_norm)
        return {**out, "g_loss": tf.reduce_mean(per_example), "g_grad_norm": grad_norm}

    def _cross_replica_mean(self, per_example, global_batch):
        """The global-batch mean of a per-example quantity [B, ...] (no gradient)."""
        ctx = tf.distribute.get_replica_context()
        total = tf.reduce_sum(tf.stop_gradient(tf.cast(per_example, tf.float32)), axis=0)
        if ctx.num_replicas_in_sync > 1:
            total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, total)
        return total / tf.cast(global_batch, tf.float32)

    def _update_w_avg(self, w, global_batch):
        """w_avg <- lerp(mean of this step's w over the global batch, w_avg, beta)."""
        w_avg = self.style.mapping.w_avg
        batch_mean = self._cross_replica_mean(w, global_batch)
        return w_avg.assign(batch_mean + stylegan2.W_AVG_BETA * (w_avg.value - batch_mean))

    def _path_length_penalty(self, ws, step, local_batch, global_batch):
        """StyleGAN2's path-length penalty per example on every pl_every-th step (else 0).

        The length is |J_w^T y| for y ~ N(0, I) / sqrt(H W) in image space (averaged over the
        ws rows), pulled towards its running mean `pl_mean` (decay 0.01, over the global batch),
        weighted by pl_weight x pl_every so the lazy penalty keeps its average strength.
        """
        is_due = step % self.pl_every == 0

        def lengths():
            with tf.GradientTape() as pl_tape:
                pl_tape.watch(ws)
                images = self._synthesize(ws, step, self.n_critic, local_batch)
                height, width = images.shape[1], images.shape[2]
                seed = self._seed(step, self.n_critic, _PATH_LENGTH)
                noise = self._replica_slice(
                    lambda n: tf.random.stateless_normal([n, *images.shape[1:]], seed),
                    local_batch,
                ) / math.sqrt(height * width)
                projected = tf.reduce_sum(images * noise)
            grads = tf.cast(pl_tape.gradient(projected, ws), tf.float32)
            return tf.sqrt(tf.reduce_mean(tf.reduce_sum(tf.square(grads), axis=2), axis=1))

        path_lengths = tf.cond(is_due, lengths, lambda: tf.zeros([local_batch], tf.float32))
        updated = self.pl_mean + 0.01 * (
            self._cross_replica_mean(path_lengths, global_batch) - self.pl_mean
        )
        pl_mean = self.pl_mean.assign(tf.where(is_due, updated, self.pl_mean))
        penalty = tf.square(path_lengths - tf.stop_gradient(pl_mean))
        return tf.where(is_due, self.pl_weight * self.pl_every * penalty, 0.0)

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
        if self.style is not None:
            # A buffer, not a weight: copied (StyleGAN2-ADA), after this step's update.
            self.ema_style.mapping.w_avg.assign(self.style.mapping.w_avg.value)

    def refresh_sampling_batch_norm(self, num_batches: int = 16, batch_size: int = 256) -> None:
        """Re-estimates the EMA generator's BatchNorm statistics on its own weights.

        BigGAN's "standing statistics" (`standing_batch_norm`) over `num_batches`
        batches of fresh noise. A no-op without EMA or BatchNorm, and when the
        statistics are already those of the current step.
        """
        if self.ema_generator is None:
            return
        step = int(self.step.numpy())
        if self._sampling_statistics_step == step:
            return

        def batches():
            for i in range(num_batches):
                seed = tf.constant([self.seed, 0x5EED + i], tf.int64)
                z = tf.random.stateless_normal([batch_size, self.latent_dim], seed)
                if not self.num_classes:
                    yield z
                    continue
                labels = tf.random.stateless_uniform(
                    [batch_size], seed + 1, 0, self.num_classes, dtype=tf.int32
                )
                yield [z, labels]

        standing_batch_norm(self.ema_generator, batches())
        self._sampling_statistics_step = step

    # --------------------------------------------------------------- sampling
    def sample(self, z, labels=None):
        """Float images in [-1, 1] from the sampling generator, inference mode."""
        self.refresh_sampling_batch_norm()
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
        if self.pl_mean is not None:
            items["pl_mean"] = self.pl_mean
        if self.ada_p is not None:
            items["ada_p"] = self.ada_p
            items["ada_signs"] = self.ada_signs
        return tf.train.Checkpoint(**items)
