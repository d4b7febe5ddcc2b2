"""Training throughput of the DCGAN: images/s, the share of step time spent
waiting for input, and XLA (train.jit_compile) on versus off.

    python -m benchmarks.train_benchmark   # 32x32 and 64x64 RGB, batch 64 (~4-5 min, 2 cores)
    python -m benchmarks.train_benchmark --steps=60         # longer windows, less noise (~8 min)
    python -m benchmarks.train_benchmark --resolutions=64 --steps=100 --jit=off

Uses the pipeline's own pieces: synthetic records in the ingest format (PNG
uint8 in GZIP TFRecords + stats.json) read by `input_pipeline.make_dataset`,
the GAN from `pipeline.train.build.build_gan` (default config widths) and the train
stage's loop (`strategy.run(train_step)` in a `tf.function` over
`tf.range`, the step wrapped in `tf.function(jit_compile=True)` for XLA).

Per resolution and XLA setting, three timings in interleaved rounds (the
median is reported, so load from other processes hurts less):
  input   - iterating the real input pipeline alone;
  cached  - the training loop on one batch held in memory (no input work);
  real    - the training loop fed by the real input pipeline.
The input-wait share is 1 - cached/real time per step: the part of a step
the trainer spends on input that prefetching does not hide. On a shared
machine the cached and real timings each move by several percent between
rounds, so a share within that noise means "no measurable wait"; the
input-only rate (its headroom over the training rate) is the robust figure.
"""

import json
import pathlib
import shutil
import statistics
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from configs import default
from gan_keras import images as gan_images
from gan_keras.data import input_pipeline, records
from pipeline.train import build, loop, strategies

_RESOLUTIONS = flags.DEFINE_list("resolutions", ["32", "64"], "Image sizes (3 channels).")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Global batch size.")
_STEPS = flags.DEFINE_integer(
    "steps",
    30,
    "Timed steps per measurement at 32x32 (after a warm-up); "
    "scaled by (32/resolution)^2, at least 10, to keep the run short.",
)
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Interleaved rounds; medians are reported.")
_JIT = flags.DEFINE_list("jit", ["off", "on"], "XLA settings to measure: off, on.")
_RECORDS = flags.DEFINE_integer("records", 2048, "Synthetic training records per resolution.")
_STRATEGY = flags.DEFINE_string("strategy", "default", "train.strategy (one process).")


def write_records(ingest_dir: pathlib.Path, resolution: int, count: int, shards: int = 4) -> None:
    """Random RGB images as the ingest stage writes them (noise: PNG's worst case to decode)."""
    ingest_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    writers = [
        tf.io.TFRecordWriter(
            str(ingest_dir / records.shard_name(records.TRAIN, i, shards)), options
        )
        for i in range(shards)
    ]
    for n in range(count):
        image = rng.integers(0, 256, (resolution, resolution, 3), dtype=np.uint8)
        writers[n % shards].write(
            records.make_example(
                gan_images.encode_png(image),
                resolution,
                resolution,
                3,
                records.UNLABELLED,
                f"synthetic/{n}",
            )
        )
    for w in writers:
        w.close()
    (ingest_dir / records.STATS_FILE).write_text(
        json.dumps({"resolution": resolution, "channels": 3, "splits": {"train": {"count": count}}})
    )
    (ingest_dir / records.LABELS_FILE).write_text("[]")


class Bench:
    """One model (resolution, XLA setting) and its three timed loops."""

    def __init__(self, config, ingest_dir, strategy):
        t = config.train
        self.config, self.ingest_dir, self.strategy = config, ingest_dir, strategy
        with strategy.scope():
            self.model = build.build_gan(
                config, resolution=config.data.resolution, channels=3, num_classes=0
            )
        model = self.model

        # The train stage's own distributed step loop.
        self.run_steps = loop.make_train_steps(strategy, model, jit_compile=t.jit_compile)
        self.real_it = iter(strategy.distribute_datasets_from_function(self._dataset))
        cached = next(iter(self._dataset(None)))
        self.cached_it = iter(
            strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(cached).repeat())
        )
        self.input_it = iter(self._dataset(None))

    def _dataset(self, input_context):
        t = self.config.train
        return input_pipeline.make_dataset(
            self.ingest_dir,
            "train",
            resolution=self.config.data.resolution,
            channels=3,
            global_batch_size=t.batch_size,
            shuffle_buffer=t.shuffle_buffer,
            seed=t.seed,
            input_context=input_context,
        )

    def warm_up(self, steps=3):
        for it in (self.cached_it, self.real_it):
            self.run_steps(it, tf.constant(steps))
        for _ in range(steps):
            next(self.input_it)

    def time_train(self, iterator, steps) -> float:
        """Seconds per step."""
        start = time.perf_counter()
        bad_step = int(self.run_steps(iterator, tf.constant(steps)))  # int() waits for the result
        elapsed = time.perf_counter() - start
        if bad_step >= 0:
            raise RuntimeError("non-finite loss during the benchmark")
        return elapsed / steps

    def time_input(self, steps) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            images, _ = next(self.input_it)
        images.numpy()
        return (time.perf_counter() - start) / steps


def main(argv):
    del argv
    batch = _BATCH.value
    strategy = strategies.make_strategy(_STRATEGY.value)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="train-bench-"))
    rows = []
    try:
        for resolution in (int(r) for r in _RESOLUTIONS.value):
            steps = max(10, round(_STEPS.value * (32 / resolution) ** 2))
            ingest_dir = tmp / f"ingest{resolution}"
            write_records(ingest_dir, resolution, _RECORDS.value)
            benches = {}
            for jit in _JIT.value:
                config = default.get_config()
                config.data.resolution, config.data.channels = resolution, 3
                config.train.batch_size = batch
                config.train.jit_compile = jit == "on"
                config.train.strategy = _STRATEGY.value
                config.train.shuffle_buffer = _RECORDS.value
                t0 = time.perf_counter()
                benches[jit] = Bench(config, ingest_dir, strategy)
                benches[jit].warm_up()
                print(
                    f"  {resolution}x{resolution} XLA {jit}: built, traced and warmed up in "
                    f"{time.perf_counter() - t0:.1f} s",
                    flush=True,
                )
            times = {(jit, kind): [] for jit in benches for kind in ("input", "cached", "real")}
            for _ in range(_ROUNDS.value):
                for jit, bench in benches.items():
                    times[jit, "input"].append(bench.time_input(steps))
                    times[jit, "cached"].append(bench.time_train(bench.cached_it, steps))
                    times[jit, "real"].append(bench.time_train(bench.real_it, steps))
            for jit in benches:
                inp, cached, real = (
                    statistics.median(times[jit, k]) for k in ("input", "cached", "real")
                )
                rows.append(
                    dict(
                        res=resolution,
                        jit=jit,
                        steps=steps,
                        input_ips=batch / inp,
                        cached_ips=batch / cached,
                        real_ips=batch / real,
                        wait=max(0.0, 1 - cached / real),
                        replicas=strategy.num_replicas_in_sync,
                    )
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    steps_by_resolution = sorted({(x["res"], x["steps"]) for x in rows})
    print(
        f"\nDCGAN training, batch {batch}, 3 channels, g_width=d_width=64, latent 100, strategy "
        f"'{_STRATEGY.value}' ({rows[0]['replicas']} replica), "
        f"{tf.config.threading.get_intra_op_parallelism_threads() or 'all'} "
        f"intra-op threads; medians of {_ROUNDS.value} interleaved rounds "
        f"({', '.join(f'{r}x{r}: {s} steps' for r, s in steps_by_resolution)})"
    )
    header = (
        f"{'res':>7} {'XLA':>4} {'train img/s':>12} {'cached-batch img/s':>19} "
        f"{'input-only img/s':>17} {'input wait':>11} {'img/s/replica':>14}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['res']:>4}x{r['res']:<2} {r['jit']:>4} {r['real_ips']:>12.0f} "
            f"{r['cached_ips']:>19.0f} "
            f"{r['input_ips']:>17.0f} {100 * r['wait']:>10.1f}% "
            f"{r['real_ips'] / r['replicas']:>14.0f}"
        )


if __name__ == "__main__":
    app.run(main)
