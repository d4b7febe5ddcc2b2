"""Train stage: the tf.distribute strategy (`train.strategy`), which process is the chief,
and the mixed-precision policy the strategy trains under."""

import json
import os

import numpy as np
import tensorflow as tf

from gan_keras.registry import Registry

# train.strategy names -> strategy constructors. MultiWorkerMirroredStrategy reads its
# cluster from the TF_CONFIG environment variable.
STRATEGIES = Registry("train.strategy")
STRATEGIES.register("mirrored", tf.distribute.MirroredStrategy)
STRATEGIES.register("multi_worker", tf.distribute.MultiWorkerMirroredStrategy)
STRATEGIES.register("default", tf.distribute.get_strategy)


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


def check_workers_start_together(strategy, start: int, chief_ckpt_dir) -> None:
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


def mixed_precision_policy() -> str:
    # float16 needs loss scaling and fast fp16 kernels (GPUs); bfloat16 is the
    # safe choice on CPUs and TPUs.
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
