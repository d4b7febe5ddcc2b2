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

This module is the stage's `run` hook (pipeline.stages) and the loop itself; the GAN it
trains comes from pipeline.train.build, its strategy from pipeline.train.strategies.
"""

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
from gan_keras.progress import format_duration
from gan_keras.tasks import conditions as task_conditions
from gan_keras.training import gan as gan_lib
from pipeline import checkpoints, classes, runner, stages
from pipeline import workdir as workdir_layout
from pipeline.train import build, fine_tune, health, strategies, validation
from pipeline.train.in_training_eval import BestCheckpoint, InTrainingEvaluator


class TrainingDivergedError(RuntimeError):
    """A loss became NaN or infinite."""


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
    validation.validate_config(config)
    workdir = pathlib.Path(workdir)
    t = config.train
    # MultiWorkerMirroredStrategy must exist before other TF work.
    strategy = strategies.make_strategy(t.strategy)
    chief = strategies.is_chief(strategy)
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
    parent = fine_tune.resolve_parent_for_workdir(config, workdir)
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
        keras.mixed_precision.set_global_policy(strategies.mixed_precision_policy())
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
        model = build.build_gan(
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
        strategies.check_workers_start_together(strategy, start, chief_dir / "checkpoints")
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


def make_distributed_dataset(config, strategy, ingest_dir, start: int = 0):
    """The train split as the strategy's per-replica batches, shuffled from `start`."""
    t = config.train
    condition_fn = None
    if tasks.is_image_to_image(config.task):

        def condition_fn(image, seed):
            return task_conditions.degrade(config.task, image, seed)

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
        sampler = build.TaskGridSampler(config, fixed_real_float)
        fixed_labels = sampler.labels  # D conditions the real images on their conditions
        model.set_standing_conditions(build.standing_conditions(config, ingest_dir))
    else:
        sampler = build.GridSampler(config, num_classes)
    checks = health.TrainingHealth(config, ingest_dir, records.read_stats(ingest_dir), num_classes)

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
                for name, value in checks.on_log(step, results).items():
                    tf.summary.scalar(name, value)
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
                for name, value in checks.on_sample(step, model).items():
                    tf.summary.scalar(name, value)
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
    # Released here, not at the frame's exit: the teardown takes seconds, silent there.
    released = time.perf_counter()
    del iterator, run_steps
    logging.info("[train] input pipeline released in %.1f s", time.perf_counter() - released)
    samples = sorted(samples_dir.glob("step_*.png"))
    return {
        "final_step": int(model.step.numpy()),
        "start_step": start,
        "images_per_second": round(last_rate, 1),
        "latest_checkpoint": manager.latest_checkpoint,
        "latest_samples": str(samples[-1]) if samples else None,
        "last_window_metrics": results,
        "health": checks.summary(),
        "ada_p": round(float(model.ada_p.numpy()), 4) if model.ada_p is not None else None,
        **(
            keeper.summary()
            if keeper is not None
            else {"best_step": None, "best_frechet_distance": None, "best_checkpoint": None}
        ),
    }
