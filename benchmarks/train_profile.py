"""Where a DCGAN training step's time goes, and how close it runs to this CPU's limit.

    python -m benchmarks.train_profile                    # 64x64x3, the default (article) widths
    python -m benchmarks.train_profile --resolution=32 --timed_steps=40

For one resolution, the default config's DCGAN (the article's geometry: widths 64,
latent 100, BatchNorm, non-saturating loss, batch 64) trains on one cached batch
through the train stage's own loop (`benchmarks.train_benchmark.Bench`), and:

1. images/s over `--steps` steps;
2. an op-level profile of `--profile_steps` steps (`tf.profiler`), its host trace
   read from the XSpace proto: each op type's self time (its own time, not its
   children's) as a share of the steps' wall time;
3. the step's convolution and dense work in multiply-accumulates, counted from
   the built layers' shapes: G's forward runs twice (D's update and G's), D's
   three times (real, fake, G's fake); weight gradients cost one forward each,
   input gradients one forward each except where no input gradient is needed
   (G's first layer, D's first convolution on real and on D-update fakes);
4. this process's matrix-multiply rate (a 2048^3 `tf.matmul`, same threads and
   kernel library), the practical ceiling for the convolutions' kernels.

TF_ENABLE_ONEDNN_OPTS=0 in the environment measures TensorFlow's Eigen kernels instead of
oneDNN's (which `gan_keras` turns on where TensorFlow does not; see its docstring).

The convolutions' achieved rate against that ceiling says how much faster the
same work could run here: if they already run near it, a large speed-up needs
less work (smaller widths or batch) or other hardware, not another setting.
"""

import collections
import os
import pathlib
import re
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from benchmarks import train_benchmark
from configs import default
from pipeline.train import strategies

_RESOLUTION = flags.DEFINE_integer("resolution", 64, "Image size (3 channels).")
_TIMED_STEPS = flags.DEFINE_integer("timed_steps", 20, "Steps per timing round (images/s).")
_PROFILE_STEPS = flags.DEFINE_integer("profile_steps", 5, "Profiled steps.")
# --batch_size and --rounds are benchmarks.train_benchmark's flags (imported below).

# A TensorFlow op's trace event is named "<node name>:<op type>"; the executor's own events
# ("ExecutorState::Process", "EagerLocalExecute: __inference_...") are not ops.
_OP_EVENT = re.compile(r"^([^\s:]+):([A-Za-z_][A-Za-z0-9_]*)$")
# Ops that run other ops (their events span their bodies' ops, which are counted themselves).
_CONTAINERS = {"While", "StatelessWhile", "If", "StatelessIf", "Case", "PartitionedCall",
               "StatefulPartitionedCall"}  # fmt: skip


def op_group(node: str, op_type: str) -> str:
    """The table row of an op (oneDNN's _MklNative* ops count as the op they replace)."""
    if "Conv2DBackpropInput" in op_type:
        if "gradient_tape" in node:
            return "convolution input gradients"
        return "G's transposed convolutions (forward)"
    if "Conv2DBackpropFilter" in op_type:
        return "convolution weight gradients"
    if "Conv2D" in op_type:
        return "convolutions (D forward, G's input gradients)"
    if "MatMul" in op_type:
        return "dense layers"
    if "BatchNorm" in op_type:
        return "batch norm"
    return "other (elementwise, optimiser, reductions)"


def layer_macs(model: keras.Model) -> list[tuple[str, int]]:
    """(layer name, multiply-accumulates per image) of each conv, transposed-conv and dense."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out += layer_macs(layer)
            continue
        if not isinstance(
            layer, keras.layers.Conv2DTranspose | keras.layers.Conv2D | keras.layers.Dense
        ):
            continue
        kernel_size = int(np.prod(layer.kernel.shape))  # kh*kw*cin*cout, or in*out
        if isinstance(layer, keras.layers.Dense):
            positions = int(np.prod(layer.input.shape[1:-1]))  # 1 for a flat input
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            positions = int(np.prod(layer.input.shape[1:3]))  # each input pixel scatters a kernel
        else:
            positions = int(np.prod(layer.output.shape[1:3]))
        out.append((layer.name, positions * kernel_size))
    return out


def step_macs(generator, discriminator, batch: int) -> dict:
    """Multiply-accumulates of one non-saturating DCGAN step (n_critic 1) in its layers."""
    g, d = layer_macs(generator), layer_macs(discriminator)
    g_sum, d_sum = sum(m for _, m in g), sum(m for _, m in d)
    g_first, d_first = g[0][1], d[0][1]
    g_work = 2 * g_sum + g_sum + (g_sum - g_first)  # 2 forwards, weight grads, input grads
    d_work = 3 * d_sum + 2 * d_sum + (3 * d_sum - 2 * d_first)  # 3 fwd, 2 weight, 3 input
    return {
        "g_forward_per_image": g_sum,
        "d_forward_per_image": d_sum,
        "per_step": batch * (g_work + d_work),
    }


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """This process's float32 matrix-multiply rate (GFLOP/s), median of `repeats`."""
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    tf.matmul(a, b).numpy()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        tf.matmul(a, b).numpy()
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / float(np.median(times)) / 1e9


def op_self_times(logdir: pathlib.Path) -> collections.Counter:
    """{(node name, op type): seconds summed over threads} from the host trace."""
    (path,) = logdir.rglob("*.xplane.pb")
    space = xplane_pb2.XSpace()
    space.ParseFromString(path.read_bytes())
    (plane,) = [p for p in space.planes if p.name == "/host:CPU"]
    ops = {}
    for key, meta in plane.event_metadata.items():
        match = _OP_EVENT.match(meta.name)
        if match and match.group(2) not in _CONTAINERS:
            ops[key] = match.groups()
    seconds = collections.Counter()
    for line in plane.lines:
        for event in line.events:
            if event.metadata_id in ops:
                seconds[ops[event.metadata_id]] += event.duration_ps / 1e12
    return seconds


def main(argv):
    del argv
    resolution, batch, rounds = _RESOLUTION.value, flags.FLAGS.batch_size, flags.FLAGS.rounds
    config = default.get_config()
    config.data.resolution, config.data.channels = resolution, 3
    config.train.batch_size = batch
    config.train.shuffle_buffer = 256
    strategy = strategies.make_strategy("default")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="train-profile-"))
    try:
        train_benchmark.write_records(tmp / "ingest", resolution, 256)
        bench = train_benchmark.Bench(config, tmp / "ingest", strategy)
        bench.warm_up()
        seconds = float(
            np.median(
                [bench.time_train(bench.cached_it, _TIMED_STEPS.value) for _ in range(rounds)]
            )
        )
        tf.profiler.experimental.start(str(tmp / "profile"))
        t0 = time.perf_counter()
        bench.time_train(bench.cached_it, _PROFILE_STEPS.value)
        profiled_wall = time.perf_counter() - t0
        tf.profiler.experimental.stop()
        op_seconds = op_self_times(tmp / "profile")
        macs = step_macs(bench.model.generator, bench.model.discriminator, batch)
        peak = matmul_gflops()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    threads = tf.config.threading.get_intra_op_parallelism_threads() or len(os.sched_getaffinity(0))
    flops = 2 * macs["per_step"]
    print(
        f"\n{resolution}x{resolution}x3 DCGAN (g_width=d_width={config.model.g_width}, latent "
        f"{config.model.latent_dim}), batch {batch}, {threads} threads: "
        f"{batch / seconds:.1f} img/s "
        f"({1000 * seconds:.0f} ms/step, median of {rounds} x {_TIMED_STEPS.value} steps)"
    )
    print(
        f"layer work per image: G forward {macs['g_forward_per_image'] / 1e6:.0f} M MACs, "
        f"D forward {macs['d_forward_per_image'] / 1e6:.0f} M MACs; per step "
        f"{flops / 1e9:.1f} GFLOP"
    )
    total = sum(op_seconds.values())
    groups = collections.Counter()
    types = collections.Counter()
    for (node, op_type), sec in op_seconds.items():
        groups[op_group(node, op_type)] += sec
        types[op_type] += sec
    print(
        f"\nop time over {_PROFILE_STEPS.value} profiled steps ({profiled_wall:.2f} s wall, "
        f"{total:.2f} s in ops on all threads):"
    )
    for name, sec in groups.most_common():
        print(f"  {name:<48} {sec:7.2f} s  {100 * sec / total:5.1f}%")
    print("top op types:")
    for op_type, sec in types.most_common(8):
        print(f"  {op_type:<48} {sec:7.2f} s  {100 * sec / total:5.1f}%")
    layer_share = (
        sum(sec for name, sec in groups.items() if "convolution" in name or "dense" in name) / total
    )
    achieved = flops / (seconds * layer_share) / 1e9
    print(
        f"\nconvolutions and dense layers: {100 * layer_share:.0f}% of op time, at "
        f"{achieved:.0f} GFLOP/s while they run; the whole step averages "
        f"{flops / seconds / 1e9:.0f} GFLOP/s; a 2048^3 matmul here runs at {peak:.0f} GFLOP/s"
    )
    print(
        "ceiling if every other op took no time and the layers ran at the matmul rate: "
        f"{batch * peak * 1e9 / flops:.0f} img/s ({peak * 1e9 / flops * seconds:.2f}x the "
        "measured rate)"
    )


if __name__ == "__main__":
    app.run(main)
