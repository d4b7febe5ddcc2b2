"""Training images/s of the demo DCGAN and of the StyleGAN2 config, with the pieces of
benchmarks.train_benchmark (synthetic records, `build.build_gan`, the train stage's step loop).

    python -m benchmarks.stylegan2_throughput [--timed_steps=20] [--timed_rounds=3]

Configs: configs/fashion_mnist.py (dcgan) and configs/stylegan2_fashion_mnist.py, at 32x32 with
3 channels (train_benchmark's records), batch 64, one process, strategy 'default'. Both models
are timed in interleaved rounds on a batch held in memory (no input work) and the median is
printed, as train_benchmark does, so load from other processes hurts both alike.
"""

import pathlib
import shutil
import statistics
import tempfile

from absl import app, flags

from benchmarks import train_benchmark
from configs import fashion_mnist, stylegan2_fashion_mnist
from pipeline.train import strategies

_STEPS = flags.DEFINE_integer("timed_steps", 20, "Timed steps per measurement.")
_ROUNDS = flags.DEFINE_integer("timed_rounds", 3, "Interleaved rounds; medians are reported.")


def _config(module):
    config = module.get_config()
    config.data.resolution, config.data.channels = 32, 3
    config.model.network_resolution = 0
    config.train.strategy = "default"
    config.train.shuffle_buffer = 512
    return config


def main(argv):
    del argv
    strategy = strategies.make_strategy("default")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="sg2-throughput-"))
    try:
        train_benchmark.write_records(tmp / "ingest", 32, 512)
        benches = {
            name: train_benchmark.Bench(_config(module), tmp / "ingest", strategy)
            for name, module in (("dcgan", fashion_mnist), ("stylegan2", stylegan2_fashion_mnist))
        }
        for bench in benches.values():
            bench.warm_up()
        times = {name: [] for name in benches}
        for _ in range(_ROUNDS.value):
            for name, bench in benches.items():
                times[name].append(bench.time_train(bench.cached_it, _STEPS.value))
        for name, bench in benches.items():
            batch = bench.config.train.batch_size
            print(f"{name}: {batch / statistics.median(times[name]):.0f} images/s (batch {batch})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    app.run(main)
