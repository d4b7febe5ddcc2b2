"""The train stage's in-training evaluation (`train.eval_every` > 0).

`InTrainingEvaluator` scores the generator an export would hold with the
judge the evaluate stage uses (pipeline.judge); `BestCheckpoint` logs each
score and keeps the checkpoint with the lowest FD in <workdir>/train/best/,
which evaluate and export then use (pipeline.checkpoints).
"""

import math
import os
import pathlib
import time

import numpy as np
import tensorflow as tf
from absl import logging

from gan_keras import images as gan_images
from gan_keras.storage import atomic
from gan_keras.training import gan as gan_lib
from pipeline import judge as judge_lib
from pipeline.checkpoints import BEST_DIR, BEST_FILE, read_best_record


class InTrainingEvaluator:
    """Scores the generator an export would hold with the evaluate stage's judge.

    `GAN.sample` gives that generator: the EMA one, with BatchNorm statistics
    re-estimated on its own weights, when EMA is on. The judge comes from
    `pipeline.judge.load_judge` (the domain classifier cached in <workdir>/judge/,
    trained there first if absent), so this stage and the evaluate stage share
    it; the real eval split is embedded once, here. Each call samples
    `train.eval_num_samples` images from fixed latents and returns
    {'frechet_distance', 'kid_mean', 'kid_std', 'num_samples', 'seconds'}.
    """

    def __init__(self, config, workdir, num_classes: int):
        t, ev = config.train, config.evaluate
        start = time.perf_counter()
        real = judge_lib.read_real_data(config, workdir)
        judge = judge_lib.load_judge(config, workdir, real)
        self.scorer = judge_lib.JudgeScorer(config, judge, real.eval_images)
        self.judge_fingerprint = judge.fingerprint
        self.num_samples = int(t.eval_num_samples)
        self.batch_size = int(ev.sample_batch_size)
        self.z = judge_lib.sample_latents(self.num_samples, config.model.latent_dim, ev.seed)
        self.labels = (
            judge_lib.balanced_labels(self.num_samples, num_classes, ev.seed)
            if num_classes
            else None
        )
        logging.info(
            "In-training evaluation: %d samples every %d steps, judge %s (eval accuracy %.4f); "
            "ready in %.1f s",
            self.num_samples,
            t.eval_every,
            self.judge_fingerprint[:12],
            judge.eval_accuracy,
            time.perf_counter() - start,
        )

    def __call__(self, model: gan_lib.GAN) -> dict:
        start = time.perf_counter()
        fake = []
        for i in range(0, self.num_samples, self.batch_size):
            labels = (
                None if self.labels is None else tf.constant(self.labels[i : i + self.batch_size])
            )
            images = model.sample(tf.constant(self.z[i : i + self.batch_size]), labels)
            fake.append(gan_images.to_uint8(tf.cast(images, tf.float32)))
        scores = self.scorer.score(np.concatenate(fake))
        scores["seconds"] = time.perf_counter() - start
        return scores


def _chief_decision(strategy, value: bool) -> bool:
    """The chief's `value` on every worker of a cluster. A collective: every worker calls it at
    the same step, the others passing False."""
    local = tf.constant(1.0 if value else 0.0)
    total = strategy.reduce(
        tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.identity(local)), axis=None
    )
    return float(total) > 0


class BestCheckpoint:
    """In-training evaluations: TensorBoard scalars and a log line each, and the checkpoint with
    the lowest FD in <out>/best/ (its own CheckpointManager, max_to_keep=1) with best.json.

    Only the chief scores and writes; its decision to save is shared with the other workers of a
    cluster, which save into their scratch directories (a save may need collectives). A resumed
    run starts from best.json, so a worse later evaluation never replaces a better earlier one.
    """

    def __init__(
        self, config, strategy, checkpoint, out_dir, evaluator: InTrainingEvaluator | None, chief
    ):
        self.every = int(config.train.eval_every)
        self.strategy, self.evaluator, self.chief = strategy, evaluator, chief
        self.multi_worker = (
            config.train.strategy == "multi_worker" and strategy.num_replicas_in_sync > 1
        )
        self.dir = pathlib.Path(out_dir) / BEST_DIR
        self.manager = tf.train.CheckpointManager(
            checkpoint, str(self.dir), max_to_keep=1, checkpoint_name="ckpt"
        )
        self.best = self._previous_best() if chief else None
        self.seconds = 0.0

    def _previous_best(self) -> dict | None:
        record = read_best_record(self.dir)
        if record is None:
            if self.manager.latest_checkpoint:
                logging.warning(
                    "%s has no matching %s; the next evaluation replaces its checkpoint",
                    self.dir,
                    BEST_FILE,
                )
            return None
        if (record.get("judge_fingerprint"), record.get("num_samples")) != (
            self.evaluator.judge_fingerprint,
            self.evaluator.num_samples,
        ):
            logging.warning(
                "The best checkpoint so far (step %s) was scored with another judge or sample "
                "count; not comparable, so the next evaluation replaces it",
                record.get("step"),
            )
            return None
        logging.info(
            "Best checkpoint so far: step %d, FD %.4g", record["step"], record["frechet_distance"]
        )
        return record

    def due(self, step: int, total_steps: int) -> bool:
        return step % self.every == 0 or step == total_steps

    def evaluate(self, model: gan_lib.GAN, step: int, writer) -> None:
        start = time.perf_counter()
        # Every worker re-estimates the EMA generator's BatchNorm statistics (deterministic), so
        # what the workers save agrees with what the chief scored.
        model.refresh_sampling_batch_norm()
        improved = False
        if self.chief:
            scores = self.evaluator(model)
            fd, kid = scores["frechet_distance"], scores["kid_mean"]
            improved = math.isfinite(fd) and (
                self.best is None or fd < self.best["frechet_distance"]
            )
            with writer.as_default(step=step):
                tf.summary.scalar("eval/frechet_distance", fd)
                tf.summary.scalar("eval/kid_mean", kid)
            logging.info(
                "eval step %d: FD %.4g  KID %.4g  (%d samples, %.1f s)  %s",
                step,
                fd,
                kid,
                scores["num_samples"],
                scores["seconds"],
                "new best"
                if improved
                else f"best: step {self.best['step']}, FD {self.best['frechet_distance']:.4g}",
            )
        if self.multi_worker:
            improved = _chief_decision(self.strategy, improved)
        if improved:
            path = self.manager.save(checkpoint_number=step)
            if self.chief:
                self.best = {
                    "step": step,
                    "frechet_distance": fd,
                    "kid_mean": kid,
                    "num_samples": scores["num_samples"],
                    "judge_fingerprint": self.evaluator.judge_fingerprint,
                    "checkpoint": os.path.basename(path),
                }
                atomic.atomic_write_json(self.dir / BEST_FILE, self.best)
        self.seconds += time.perf_counter() - start

    def summary(self) -> dict:
        best = self.best or {}
        return {
            "best_step": best.get("step"),
            "best_frechet_distance": best.get("frechet_distance"),
            "best_checkpoint": self.manager.latest_checkpoint if best else None,
            "eval_seconds": round(self.seconds, 1),
        }
