"""Train stage: the GAN under a tf.distribute strategy, fed by tf.data from the
ingest stage's records, logging to TensorBoard and checkpointing.

One loop serves every strategy: `strategy.run(gan.train_step, ...)` inside a
`tf.function` over `strategy.distribute_datasets_from_function`. (Keras 3's
`Model.fit` fails under MultiWorkerMirroredStrategy, keras-team/keras#20585;
`GAN.fit` still works for library users on one machine.)

Outputs under <workdir>/train/: checkpoints/ (G, D, both optimizers, the EMA
generator and the step, via tf.train.CheckpointManager), logs/ (TensorBoard)
and samples/step_NNNNNNN.png (scaled up for viewing; 1:1 in samples/raw/).

With `train.eval_every` > 0 the stage also scores the generator an export
would hold every `eval_every` steps and at the last step (`InTrainingEvaluator`:
FD and KID with the evaluate stage's judge, cached in <workdir>/judge/), logs
eval/frechet_distance and eval/kid_mean, and keeps the checkpoint with the
lowest FD in best/ (one checkpoint, plus best.json). `pipeline.checkpoints.
load_generator` then restores that one instead of the latest.

The stage's hooks for the runner (pipeline.stages): `validate_config(config)`,
`run(context)`, `prepare(context, previous, current)` (resume or refuse) and
`is_chief_process(config)`.
"""

import datetime
import json
import os
import pathlib
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from gan_keras import images as gan_images
from gan_keras import tasks
from gan_keras.data import input_pipeline, records
from gan_keras.models import dcgan
from gan_keras.progress import format_duration
from gan_keras.registry import Registry
from gan_keras.training import gan as gan_lib
from gan_keras.training import image_to_image, losses
from gan_keras.training.diffaugment import parse_policy
from pipeline import checkpoints, classes, runner, stages
from pipeline import judge as judge_lib
from pipeline import workdir as workdir_layout
from pipeline.train import fine_tune
from pipeline.train.in_training_eval import BestCheckpoint, InTrainingEvaluator

# train.strategy names -> strategy constructors. MultiWorkerMirroredStrategy reads its
# cluster from the TF_CONFIG environment variable.
STRATEGIES = Registry("train.strategy")
STRATEGIES.register("mirrored", tf.distribute.MirroredStrategy)
STRATEGIES.register("multi_worker", tf.distribute.MultiWorkerMirroredStrategy)
STRATEGIES.register("default", tf.distribute.get_strategy)


class TrainingDivergedError(RuntimeError):
    """A loss became NaN or infinite."""


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
    dcgan.check_architecture_config(config)
    gan_lib.regularisation_options(t)
    tasks.check_task_config(config.task, resolution=d.resolution, channels=d.channels)
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
        _, discriminator = checkpoints.build_networks(
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
    if t.eval_every:
        raise ValueError(
            f"train.eval_every={t.eval_every} with task.name={config.task.name!r}: "
            "in-training evaluation scores sampled images; image-to-image models are "
            "scored by the evaluate stage (set train.eval_every=0)"
        )


_STRATEGIES = {}


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The process's strategy of that kind, created on first use.

    One instance per process: a second MirroredStrategy restarts collective
    instance keys, which can collide with the first one's.
    """
    create = STRATEGIES.get(name)
    if name not in _STRATEGIES:
        _STRATEGIES[name] = create()
    return _STRATEGIES[name]


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def is_chief_process(config) -> bool:
    """Whether this process is the chief, decided from TF_CONFIG before any strategy exists.

    Lets callers (the runner) leave shared files in the workdir to the chief
    without starting TensorFlow's cluster; agrees with `is_chief`.
    """
    if config.train.strategy != "multi_worker":
        return True
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task, cluster = tf_config.get("task") or {}, tf_config.get("cluster") or {}
    if not task.get("type") or task["type"] == "chief":
        return True
    return task["type"] == "worker" and int(task.get("index", 0)) == 0 and "chief" not in cluster


def _check_workers_start_together(strategy, start: int, chief_ckpt_dir) -> None:
    """Fails when the workers of a cluster restored different steps.

    Non-chief workers restore from the chief's checkpoint directory; if they
    cannot see it (no shared filesystem) they would silently train different
    models in lock step. Every worker checks sum(s) and sum(s^2) over replicas,
    which equal N*start and N*start^2 only if all started at `start`.
    """
    n = strategy.num_replicas_in_sync
    local = tf.constant([start, start * start], tf.float64)
    total = strategy.reduce(
        tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.identity(local)), axis=None
    )
    if not np.array_equal(total.numpy(), [n * start, n * start * start]):
        raise RuntimeError(
            f"the workers resumed from different steps (this one: {start}, mean over replicas: "
            f"{float(total[0]) / n:g}); every worker must read the chief's checkpoints in "
            f"{chief_ckpt_dir}: "
            "put the workdir on a filesystem that all workers share"
        )


def _mixed_precision_policy() -> str:
    # float16 needs loss scaling and fast fp16 kernels (GPUs); bfloat16 is the
    # safe choice on CPUs and TPUs.
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"


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
    generator, discriminator = checkpoints.build_networks(
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

    def adam(lr):
        opt = keras.optimizers.Adam(learning_rate=lr, beta_1=t.beta_1, beta_2=t.beta_2)
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            opt = keras.optimizers.LossScaleOptimizer(opt)
        return opt

    model.compile(
        adam(t.g_learning_rate),
        adam(t.d_learning_rate),
        loss=t.loss,
        n_critic=t.n_critic,
        gp_weight=t.gp_weight,
        r1_gamma=t.r1_gamma,
        diffaugment_policy=t.diffaugment,
        **gan_lib.regularisation_options(t),
    )
    return model


class _Sampler:
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


class _TaskSampler:
    """Fixed conditions (from the fixed real images) for image-to-image sample grids: rows of
    condition | output | real. `z` and `labels` are both the conditions, which is what
    ImageToImageGAN.sample and .discriminate take in those places."""

    def __init__(self, config, fixed_real_float):
        conditions = tasks.fixed_conditions(config.task, fixed_real_float, _GRID_SEED)
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


def _standing_conditions(config, ingest_dir) -> np.ndarray:
    images, _ = input_pipeline.read_split(
        ingest_dir,
        records.TRAIN,
        STANDING_STATISTICS_IMAGES,
        resolution=config.data.resolution,
        channels=config.data.channels,
    )
    return tasks.fixed_conditions(config.task, gan_images.to_float(images), _STANDING_SEED)


def _flat_hparams(config) -> dict:
    flat = {}
    for section in ("data", "model", "train", "task"):
        for key, value in config[section].items():
            if isinstance(value, (bool, int, float, str)):
                flat[f"{section}.{key}"] = value
    return flat


def run_train(config, workdir, on_checkpoint=stages.no_sync) -> dict:
    """Trains until `train.steps`, resuming from the last checkpoint if any.

    `on_checkpoint()` runs on the chief after each checkpoint is written (the runner
    publishes an object-store workdir's working copy then)."""
    validate_config(config)
    workdir = pathlib.Path(workdir)
    t = config.train
    # MultiWorkerMirroredStrategy must exist before other TF work.
    strategy = make_strategy(t.strategy)
    chief = is_chief(strategy)
    ingest_dir = workdir_layout.ingest_dir(workdir)
    train_dir = workdir_layout.train_dir(workdir)
    stats = records.check_records_match_config(
        ingest_dir, config.data.resolution, config.data.channels
    )
    train_count = records.split_count(stats, records.TRAIN)
    if train_count < t.batch_size:
        raise ValueError(
            f"train.batch_size={t.batch_size} exceeds the {train_count} training records; "
            "batches drop their remainder, so no full batch could be formed"
        )
    if t.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(
            f"train.batch_size={t.batch_size} (global) is not divisible by the "
            f"{strategy.num_replicas_in_sync} replicas"
        )
    if (
        t.jit_compile
        and strategy.num_replicas_in_sync > 1
        and not tf.config.list_logical_devices("GPU")
    ):
        raise ValueError(
            f"train.jit_compile=True with {strategy.num_replicas_in_sync} replicas on CPUs: "
            "XLA cannot compile "
            "cross-replica collectives on CPU devices (TensorFlow b/194942685); set "
            "train.jit_compile=False "
            "or train on GPUs"
        )
    input_pipeline.verify_shards(ingest_dir, records.TRAIN, train_count)
    num_classes = classes.resolve_num_classes(
        ingest_dir, conditional=config.model.conditional, num_classes=config.model.num_classes
    )
    parent = _resolve_parent(config, workdir)
    # The judge is loaded (or trained, the first time) before the first step, outside the
    # strategy's scope and the mixed-precision policy, exactly as the evaluate stage builds it.
    evaluator = (
        InTrainingEvaluator(config, workdir, num_classes) if t.eval_every > 0 and chief else None
    )

    # Non-chief workers write to a scratch directory they delete afterwards.
    scratch = None if chief else pathlib.Path(tempfile.mkdtemp(prefix="gan-worker-"))
    out_dir = train_dir if chief else scratch
    # (directory under train/, adversarial-weight override): the model, and for image-to-image
    # tasks the L1-only reference of the same architecture and steps.
    models = [("", None)]
    if (
        tasks.is_image_to_image(config.task)
        and config.task.l1_reference
        and config.task.adversarial_weight > 0
    ):
        models.append((checkpoints.L1_REFERENCE_DIR, 0.0))

    previous_policy = keras.mixed_precision.global_policy()
    if t.mixed_precision:
        keras.mixed_precision.set_global_policy(_mixed_precision_policy())
    try:
        summaries = {}
        for model_dir, adversarial_weight in models:
            if model_dir:
                logging.info("Training the L1-only reference model into %s", train_dir / model_dir)
            summaries[model_dir] = _train_model(
                config,
                strategy,
                chief,
                out_dir / model_dir,
                train_dir / model_dir,
                ingest_dir,
                num_classes,
                None if model_dir else evaluator,
                adversarial_weight,
                # The L1-only reference is a baseline trained from scratch.
                None if model_dir else parent,
                on_checkpoint if chief else stages.no_sync,
            )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    summary = summaries.pop("")
    summary.update(summaries)
    summary.update(num_classes=num_classes, replicas=strategy.num_replicas_in_sync, chief=chief)
    return summary


def _resolve_parent(config, workdir) -> fine_tune.Parent | None:
    """train.init_from's parent (None when off); refuses this workdir's own train directory."""
    if not config.train.init_from:
        return None
    parent = fine_tune.resolve_parent(config.train.init_from)
    train_dir = workdir_layout.train_dir(workdir).resolve()
    if parent.train_dir is not None and parent.train_dir.resolve() == train_dir:
        raise fine_tune.FineTuneError(
            f"train.init_from={config.train.init_from!r} is this run's own {train_dir}: a run "
            "resumes from its checkpoints without init_from; to start over from them, move it "
            f"aside (mv {train_dir} {train_dir}.parent) and set train.init_from to that directory"
        )
    return parent


def _train_model(
    config,
    strategy,
    chief,
    out_dir,
    chief_dir,
    ingest_dir,
    num_classes,
    evaluator,
    adversarial_weight,
    parent: fine_tune.Parent | None = None,
    on_checkpoint=stages.no_sync,
) -> dict:
    """Builds (or resumes) one model in `out_dir` (this worker's; `chief_dir` is the chief's) and
    trains it to train.steps; a fresh start from `parent`'s weights when given."""
    t = config.train
    ckpt_dir, samples_dir = out_dir / "checkpoints", out_dir / "samples"
    logs_dir = out_dir / checkpoints.LOGS_DIR
    for d in (ckpt_dir, logs_dir, samples_dir):
        d.mkdir(parents=True, exist_ok=True)
    with strategy.scope():
        model = build_gan(
            config,
            resolution=config.data.resolution,
            channels=config.data.channels,
            num_classes=num_classes,
            adversarial_weight=adversarial_weight,
        )
        # After compile: the optimiser is built over all of D either way (fine_tune explains).
        frozen = fine_tune.freeze_discriminator_layers(
            model.discriminator, t.freeze_d_layers if parent is not None else 0
        )
    if frozen:
        logging.info("[train] froze the discriminator's first layers: %s", ", ".join(frozen))
    checkpoint = model.checkpoint()
    manager = tf.train.CheckpointManager(
        checkpoint, str(ckpt_dir), max_to_keep=t.keep_checkpoints, checkpoint_name="ckpt"
    )
    resume_from = (
        manager.latest_checkpoint
        if chief
        else tf.train.latest_checkpoint(str(chief_dir / "checkpoints"))
    )
    parent_record = None
    if resume_from:
        checkpoint.restore(resume_from).assert_existing_objects_matched()
        if parent is not None:
            logging.info(
                "[train] resuming; train.init_from (%s) initialised this run's first step only",
                parent.init_from,
            )
            parent_record = parent.record()
    elif parent is not None:
        parent_record = fine_tune.initialise(model, parent, config=config)
        parent_record["same_data_as_parent"] = _same_data(parent, ingest_dir)
    keeper = (
        BestCheckpoint(config, strategy, checkpoint, out_dir, evaluator, chief)
        if t.eval_every > 0
        else None
    )
    start = int(model.step.numpy())
    if t.strategy == "multi_worker" and strategy.num_replicas_in_sync > 1:
        _check_workers_start_together(strategy, start, chief_dir / "checkpoints")
    if start:
        logging.info(
            "Resuming from step %d (checkpoint %s)",
            start,
            manager.latest_checkpoint or "of the chief",
        )
    summary = _train_loop(
        config,
        strategy,
        model,
        manager,
        ingest_dir,
        logs_dir,
        samples_dir,
        num_classes,
        start,
        chief,
        keeper,
        on_checkpoint,
    )
    return {**summary, "init_from": parent_record, "frozen_d_layers": frozen}


def _same_data(parent: fine_tune.Parent, ingest_dir) -> bool | None:
    """Whether the parent trained on the data this run ingested (None: cannot tell)."""
    ours = (runner.read_manifest(ingest_dir) or {}).get("output_fingerprint")
    if ours is None or parent.ingest_fingerprint is None:
        return None
    return ours == parent.ingest_fingerprint


def run(context: stages.Context) -> dict:
    """The stage as the runner calls it: `run_train` on the context's workdir."""
    return run_train(context.config, context.workdir, on_checkpoint=context.sync)


# Train fields that may change between runs without invalidating checkpoints:
# raising train.steps continues training from the last checkpoint.
_RESUMABLE_TRAIN_FIELDS = {
    "train.steps",
    "train.log_every",
    "train.sample_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.strategy",
    "train.jit_compile",
    "train.eval_every",
    "train.eval_num_samples",
}


def _default_fields() -> dict:
    """Every field of configs/default.py as the manifest stores it ('section.field': value)."""
    from configs import default

    config = default.get_config()
    flat = {
        f"{section}.{key}": value for section in config for key, value in config[section].items()
    }
    return json.loads(json.dumps(flat, default=str))


def prepare(context: stages.Context, previous: dict | None, current: dict) -> None:
    """Resume when compatible; refuse to mix checkpoints of another model or data."""
    stage_dir = workdir_layout.train_dir(context.workdir)
    if not any((stage_dir / "checkpoints").glob("*.index")):
        return
    if context.force:
        # Before moving anything: init_from must not name the checkpoints about to move.
        _resolve_parent(context.config, context.workdir)
        aside = stage_dir.with_name(f"train.replaced-{datetime.datetime.now():%Y%m%d-%H%M%S}")
        shutil.move(str(stage_dir), str(aside))
        logging.warning(
            "[train] --force: previous training moved to %s; starting from scratch", aside
        )
        return
    if previous is None:
        raise stages.PipelineError(
            f"{stage_dir} holds checkpoints but no manifest.json; "
            "cannot tell what produced them (use --force to start over)"
        )
    old, new = previous.get("config", {}), current["config"]
    defaults = _default_fields()
    # A field the old run's manifest lacks (added in a later version) left at its default
    # value changes nothing: the old run trained with that behaviour.
    changed = [
        k
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k)
        and k not in _RESUMABLE_TRAIN_FIELDS
        and not (k not in old and k in defaults and new.get(k) == defaults[k])
    ]
    if changed:
        raise stages.PipelineError(
            f"{stage_dir} holds checkpoints of a different configuration "
            f"(changed: {', '.join(changed)}); use --force to start training over (the old run is "
            "kept aside) or another --workdir"
        )
    if previous.get("inputs") != current["inputs"]:
        raise stages.PipelineError(
            f"{stage_dir} holds checkpoints trained on different ingested data; "
            "use --force to start training over or another --workdir"
        )


def make_distributed_dataset(config, strategy, ingest_dir, start: int = 0):
    """The train split as the strategy's per-replica batches, shuffled from `start`."""
    t = config.train
    condition_fn = None
    if tasks.is_image_to_image(config.task):

        def condition_fn(image, seed):
            return tasks.degrade(config.task, image, seed)

    def dataset_fn(input_context):
        # Reseeding with the start step keeps a resumed run from replaying the
        # order it already trained on.
        return input_pipeline.make_dataset(
            ingest_dir,
            records.TRAIN,
            resolution=config.data.resolution,
            channels=config.data.channels,
            global_batch_size=t.batch_size,
            shuffle_buffer=t.shuffle_buffer,
            seed=t.seed + start,
            input_context=input_context,
            condition_fn=condition_fn,
            # A resumed run's stream restarts at index 0: fold the start step in.
            condition_seed=config.task.seed + start,
        )

    return strategy.distribute_datasets_from_function(dataset_fn)


def make_train_steps(strategy, model: gan_lib.GAN, *, jit_compile: bool = False):
    """A `tf.function(iterator, num_steps)` running that many distributed train steps.

    Returns the step whose loss was NaN or infinite (stopping there), or -1.
    """

    def replica_step(batch):
        results = model.train_step(batch)
        # The losses (an image-to-image task's L1-only model has no d_loss).
        finite = tf.reduce_all(
            [tf.math.is_finite(results[name]) for name in ("d_loss", "g_loss") if name in results]
        )
        return tf.cast(tf.logical_not(finite), tf.int32)

    if jit_compile:
        replica_step = tf.function(replica_step, jit_compile=True)

    @tf.function
    def run_steps(iterator, num_steps):
        bad_step = tf.constant(-1, tf.int64)
        for _ in tf.range(num_steps):
            nonfinite = strategy.reduce(
                tf.distribute.ReduceOp.SUM,
                strategy.run(replica_step, args=(next(iterator),)),
                axis=None,
            )
            if nonfinite > 0:
                bad_step = tf.cast(model.step, tf.int64)
                break
        return bad_step

    return run_steps


def format_progress(
    step: int,
    total: int,
    elapsed_s: float,
    steps_per_s: float,
    metrics: dict | None = None,
    images_per_s: float | None = None,
) -> str:
    """The train stage's progress line, e.g.
    `step 500/3500 (14%)  d_loss=0.6931  850 img/s  elapsed 0:38  ETA 3:52`.

    The percentage is rounded down (100% only when done); the ETA is the remaining steps at
    `steps_per_s` ("ETA ?" without a rate yet, "done" at the last step)."""
    parts = [f"step {step}/{total} ({100 * step // total if total > 0 else 100}%)"]
    if metrics:
        parts.append("  ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    if images_per_s is not None:
        parts.append(f"{images_per_s:.0f} img/s")
    parts.append(f"elapsed {format_duration(elapsed_s)}")
    if step >= total:
        parts.append("done")
    elif 0 < steps_per_s < float("inf"):
        parts.append(f"ETA {format_duration((total - step) / steps_per_s)}")
    else:
        parts.append("ETA ?")
    return "  ".join(parts)


def _train_loop(
    config,
    strategy,
    model,
    manager,
    ingest_dir,
    logs_dir,
    samples_dir,
    num_classes,
    start,
    chief,
    keeper: BestCheckpoint | None = None,
    on_checkpoint=stages.no_sync,
) -> dict:
    t = config.train
    total_steps = t.steps
    writer = (
        tf.summary.create_file_writer(str(logs_dir)) if chief else tf.summary.create_noop_writer()
    )
    iterator = iter(make_distributed_dataset(config, strategy, ingest_dir, start))

    run_steps = make_train_steps(strategy, model, jit_compile=t.jit_compile)

    fixed_real, fixed_labels = input_pipeline.read_split(
        ingest_dir,
        records.TRAIN,
        t.num_sample_images,
        resolution=config.data.resolution,
        channels=config.data.channels,
    )
    fixed_real_float = tf.constant(gan_images.to_float(fixed_real))
    fixed_labels = tf.constant(np.clip(fixed_labels, 0, None), tf.int32) if num_classes else None
    if tasks.is_image_to_image(config.task):
        sampler = _TaskSampler(config, fixed_real_float)
        fixed_labels = sampler.labels  # D conditions the real images on their conditions
        model.set_standing_conditions(_standing_conditions(config, ingest_dir))
    else:
        sampler = _Sampler(config, num_classes)

    def save_grid(name, grid):
        # samples/<name> is upscaled for a person to judge; samples/raw/<name> is the grid itself.
        gan_images.save_png(samples_dir / "raw" / name, grid)
        gan_images.save_png(samples_dir / name, gan_images.upscale_for_viewing(grid))

    with writer.as_default():
        if start == 0:
            from tensorboard.plugins.hparams import api as hp

            hp.hparams(_flat_hparams(config))
            real_grid = gan_images.make_grid(fixed_real)
            tf.summary.image("real", real_grid[None], step=0)  # TensorBoard gets the raw grid
            if chief:
                save_grid("real.png", real_grid)

    periods = (t.log_every, t.sample_every, t.checkpoint_every) + (
        (t.eval_every,) if keeper else ()
    )

    def next_event(step):
        return min(total_steps, *((step // every + 1) * every for every in periods))

    step = start
    window_start, window_step = time.perf_counter(), step
    loop_start = window_start
    last_rate, results = 0.0, {}
    for tracker in model.metrics:
        tracker.reset_state()
    while step < total_steps:
        target = next_event(step)
        bad_step = int(run_steps(iterator, tf.constant(target - step)))
        if bad_step >= 0:
            raise TrainingDivergedError(
                f"non-finite loss at step {bad_step}; training stopped. The last good "
                "checkpoint is "
                f"{manager.latest_checkpoint or '(none yet)'}; lower the learning rates or "
                "change the loss"
            )
        step = target
        if step % t.log_every == 0 or step == total_steps:
            now = time.perf_counter()
            elapsed = now - window_start
            last_rate = (step - window_step) * t.batch_size / max(elapsed, 1e-9)
            results = {name: float(tracker.result()) for name, tracker in model.trackers.items()}
            with writer.as_default(step=step):
                for name, value in results.items():
                    tf.summary.scalar(f"train/{name}", value)
                tf.summary.scalar("train/images_per_second", last_rate)
                tf.summary.scalar(
                    "learning_rate/generator", float(model.g_optimizer.learning_rate.numpy())
                )
                tf.summary.scalar(
                    "learning_rate/discriminator", float(model.d_optimizer.learning_rate.numpy())
                )
            logging.info(
                "%s",
                format_progress(
                    step,
                    total_steps,
                    now - loop_start,
                    (step - window_step) / max(elapsed, 1e-9),
                    results,
                    last_rate,
                ),
            )
            for tracker in model.metrics:
                tracker.reset_state()
            window_start, window_step = time.perf_counter(), step
        if step % t.sample_every == 0 or step == total_steps:
            grid = sampler.grid(model)
            with writer.as_default(step=step):
                tf.summary.image("samples", grid[None], step=step)
                fake = model.sample(sampler.z, sampler.labels)
                tf.summary.histogram(
                    "discriminator/logits_real", model.discriminate(fixed_real_float, fixed_labels)
                )
                tf.summary.histogram(
                    "discriminator/logits_fake", model.discriminate(fake, sampler.labels)
                )
            if chief:
                save_grid(f"step_{step:07d}.png", grid)
        if keeper is not None and keeper.due(step, total_steps):
            keeper.evaluate(model, step, writer)
        if step % t.checkpoint_every == 0 or step == total_steps:
            # Every worker saves (the save may need collectives); non-chiefs
            # write into their scratch directory. The sampling generator is saved
            # with BatchNorm statistics of its own weights.
            model.refresh_sampling_batch_norm()
            manager.save(checkpoint_number=step)
            # The logs, samples and best checkpoint so far go out with it.
            writer.flush()
            on_checkpoint()
    writer.flush()
    samples = sorted(samples_dir.glob("step_*.png"))
    return {
        "final_step": int(model.step.numpy()),
        "start_step": start,
        "images_per_second": round(last_rate, 1),
        "latest_checkpoint": manager.latest_checkpoint,
        "latest_samples": str(samples[-1]) if samples else None,
        "last_window_metrics": results,
        **(
            keeper.summary()
            if keeper is not None
            else {"best_step": None, "best_frechet_distance": None, "best_checkpoint": None}
        ),
    }
