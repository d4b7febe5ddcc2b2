"""Ingest throughput: Beam DirectRunner (1 and 2 workers) against a plain loop.

    python -m benchmarks.ingest_benchmark                       # full Fashion-MNIST
    python -m benchmarks.ingest_benchmark --modes=loop,beam2 --source=digits --resolution=16

The plain loop runs the very same per-example functions as the pipeline
(source reader, `preprocess.preprocess`, `beam_ingest.assign_split`, the stats
CombineFn, `records.write_tfrecord`) and writes the same GZIP TFRecord shards,
in one process. Times are wall-clock seconds for the whole stage including Beam's
pipeline construction and worker start-up.
"""

import gzip
import os
import pathlib
import shutil
import tempfile
import time

from absl import app, flags

from configs import default
from gan_keras.data import records
from pipeline.ingest import beam_ingest, config_checks, preprocess, sources, statistics

_SOURCE = flags.DEFINE_string(
    "source", "idx:/usr/share/datasets/fashion-mnist", "data.source to ingest."
)
_RESOLUTION = flags.DEFINE_integer("resolution", 28, "data.resolution.")
_CHANNELS = flags.DEFINE_integer("channels", 1, "data.channels.")
_MODES = flags.DEFINE_list("modes", ["loop", "beam1", "beam2"], "Any of loop, beam1, beam2.")
_REPEATS = flags.DEFINE_integer("repeats", 1, "Runs per mode; the best is reported too.")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Scratch directory (default: a temp dir, removed).")


def plain_loop(data_config, out_dir) -> int:
    """Single-process ingest without Beam; returns the number of records."""
    plan = sources.plan_source(data_config.source, data_config.tfds_data_dir)
    opts = preprocess.PreprocessOptions.from_config(data_config)
    preprocess.allow_max_pixels(opts.max_pixels)
    shards = beam_ingest.choose_num_shards(plan, data_config)
    # gzip level 6, as Beam's GZIP files.
    files = {
        (split, i): gzip.open(out_dir / records.shard_name(split, i, n), "wb", compresslevel=6)
        for split, n in shards.items()
        for i in range(n)
    }
    stats_fn = statistics.IngestStatsFn()
    acc = stats_fn.create_accumulator()
    written = rejected = 0
    plan.reader.setup()
    for item in plan.work_items:
        batch, raws = [], list(plan.reader.read(item))
        acc = stats_fn.add_input(acc, (statistics.INPUTS, len(raws)))
        for raw in raws:
            out = preprocess.preprocess(raw, opts)
            if isinstance(out, preprocess.Rejection):
                rejected += 1
                acc = stats_fn.add_input(acc, (statistics.REJECTED, out.reason))
                continue
            record = beam_ingest.assign_split(out, data_config.eval_fraction)
            shard = beam_ingest.shard_index(record.source_id, shards[record.split])
            records.write_tfrecord(files[record.split, shard], record.example)
            written += 1
            batch.append(record)
        acc = stats_fn.add_input(acc, (statistics.RECORDS, batch))
    for f in files.values():
        f.close()
    return written


def _run(mode, data_config, out_dir):
    if mode == "loop":
        return plain_loop(data_config, out_dir)
    args = []  # the default runner: DirectRunner's FnApiRunner
    if mode == "beam2":
        args += ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    elif mode != "beam1":
        raise ValueError(f"--modes: unknown mode {mode!r} (loop, beam1, beam2)")
    return beam_ingest.run_ingest(data_config, out_dir, args)["records_written"]


def main(argv):
    del argv
    config = default.get_config().data
    config.source = _SOURCE.value
    config.resolution = _RESOLUTION.value
    config.channels = _CHANNELS.value
    config.max_reject_fraction = 1.0
    config_checks.validate_data_config(config)
    scratch = pathlib.Path(_OUT_DIR.value or tempfile.mkdtemp(prefix="ingest-bench-"))
    results = []
    try:
        # Rounds interleave the modes so a change in machine load hits all alike.
        for repeat in range(_REPEATS.value):
            for mode in _MODES.value:
                out_dir = scratch / f"{mode}-{repeat}"
                shutil.rmtree(out_dir, ignore_errors=True)
                out_dir.mkdir(parents=True)
                start = time.perf_counter()
                records = _run(mode, config, out_dir)
                seconds = time.perf_counter() - start
                results.append((mode, seconds, records))
                print(
                    f"{mode:6s} run {repeat}: {records} records in {seconds:7.2f} s = "
                    f"{records / seconds:8.0f} images/s"
                    f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)",
                    flush=True,
                )
    finally:
        if not _OUT_DIR.value:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"\nsource={config.source} resolution={config.resolution} channels={config.channels}")
    for mode in _MODES.value:
        runs = [(s, n) for m, s, n in results if m == mode]
        best = min(runs)
        print(
            f"{mode:6s} best {best[0]:7.2f} s  {best[1] / best[0]:8.0f} images/s  (runs: "
            f"{', '.join(f'{s:.2f}' for s, _ in runs)})"
        )


if __name__ == "__main__":
    app.run(main)
