"""Image-to-image tasks against their references, through the pipeline's own stages.

    python -m benchmarks.tasks                                   # all three tasks, 1 seed
    python -m benchmarks.tasks --tasks=super_resolution --seeds=3 --steps=2000

For each task (configs/fashion_mnist_sr.py, _inpaint.py, _edges.py) and seed,
the train stage trains the GAN (adversarial + L1) and the L1-only model of the
same architecture and steps, and the evaluate stage scores both, the task's
classical baseline (bicubic upsampling, harmonic fill) and the real-data floor
on the same fixed eval conditions (pipeline.evaluate.task_eval). Fashion-MNIST is
ingested once and the judge (the domain classifier whose features FD uses)
trained once, then shared by every run. The table goes to
`--out_dir/tasks.md`, with each target checked (`--override=task.l1_weight=10,...` changes
every task's config, for experiments):

- super_resolution: L1-only PSNR >= bicubic + 2 dB; GAN FD <= 0.5 x L1-only FD
  with GAN PSNR within 1.5 dB of L1-only;
- inpainting: GAN hole PSNR > harmonic fill's; GAN FD <= 0.5 x L1-only FD;
- translation: GAN FD <= 0.5 x L1-only FD; the judge's class accuracy on GAN
  outputs within 10 points of its accuracy on real images.
"""

import json
import pathlib
import shutil

from absl import app, flags, logging

from benchmarks.task_targets import table
from configs import fashion_mnist_edges, fashion_mnist_inpaint, fashion_mnist_sr
from pipeline import runner

CONFIGS = {
    "super_resolution": fashion_mnist_sr,
    "inpainting": fashion_mnist_inpaint,
    "translation": fashion_mnist_edges,
}

_TASKS = flags.DEFINE_list("tasks", list(CONFIGS), f"Tasks to run, of {', '.join(CONFIGS)}.")
_SEEDS = flags.DEFINE_integer("seeds", 1, "Seeds per task (first_seed, first_seed + 1, ...).")
_FIRST_SEED = flags.DEFINE_integer(
    "first_seed", 0, "The first seed; another process can run later seeds into the same out_dir."
)
_STEPS = flags.DEFINE_integer("steps", None, "Training steps (default: the task config's).")
_DATA = flags.DEFINE_string(
    "data_dir",
    "/usr/share/datasets/fashion-mnist",
    "Fashion-MNIST IDX files (Debian's dataset-fashion-mnist).",
)
_OUT_DIR = flags.DEFINE_string("out_dir", "runs/tasks", "Where workdirs and the table go.")
_L1_REFERENCE_DIR = flags.DEFINE_string(
    "l1_reference_dir",
    None,
    "For runs that train the GAN alone (--override=task.l1_reference=False): another --out_dir "
    "whose <task>-seed<N> runs of the same seeds trained the L1-only model; its l1_reference "
    "scores stand beside this run's. Adam does not see a loss's scale, so an L1-only model "
    "trained at another task.l1_weight is the same model.",
)
_OVERRIDES = flags.DEFINE_list(
    "override",
    [],
    "Config overrides applied to every task, as dotted.key=value "
    "(e.g. task.l1_weight=10,evaluate.num_samples=5000); values are parsed as the field's type.",
)


def apply_overrides(config, overrides: list[str]):
    """`config` with each 'dotted.key=value' set, the value cast to the field's current type."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise app.UsageError(f"--override {item!r}: expected dotted.key=value")
        *parents, leaf = key.split(".")
        section = config
        for name in parents:
            section = section[name]
        if leaf not in section:
            raise app.UsageError(f"--override {item!r}: the config has no field {key!r}")
        current = section[leaf]
        if isinstance(current, bool):
            value = text.lower() in ("1", "true", "yes")
        elif current is None:
            value = text
        else:
            value = type(current)(text)
        section[leaf] = value
    return config


def task_config(task: str, seed: int):
    config = CONFIGS[task].get_config()
    config.data.source = f"idx:{_DATA.value}"
    config.train.seed = seed
    config.task.seed = seed
    if _STEPS.value:
        config.train.steps = _STEPS.value
    apply_overrides(config, _OVERRIDES.value)
    config.train.checkpoint_every = config.train.sample_every = config.train.steps
    return config


def run_task(task: str, seed: int, shared: pathlib.Path) -> dict:
    """metrics.json of one task and seed (train and evaluate are cached by the runner)."""
    config = task_config(task, seed)
    workdir = pathlib.Path(_OUT_DIR.value) / f"{task}-seed{seed}"
    for part in ("ingest", "judge"):
        if not (workdir / part).exists() and (shared / part).exists():
            shutil.copytree(shared / part, workdir / part)
    runner.Runner(config, workdir).run(["ingest", "train", "evaluate"])
    metrics = json.loads((workdir / "evaluate" / "metrics.json").read_text())
    if "l1_reference" not in metrics["methods"] and _L1_REFERENCE_DIR.value:
        reference = pathlib.Path(_L1_REFERENCE_DIR.value) / workdir.name / "evaluate"
        borrowed = json.loads((reference / "metrics.json").read_text())["methods"]
        if "l1_reference" not in borrowed:
            raise app.UsageError(f"--l1_reference_dir: {reference} has no l1_reference scores")
        metrics["methods"]["l1_reference"] = borrowed["l1_reference"]
    return metrics


def main(argv):
    del argv
    unknown = [t for t in _TASKS.value if t not in CONFIGS]
    if unknown:
        raise app.UsageError(f"--tasks: unknown {unknown}; choose from {list(CONFIGS)}")
    out_dir = pathlib.Path(_OUT_DIR.value)
    shared = out_dir / f"{_TASKS.value[0]}-seed0"
    results = {}
    for task in _TASKS.value:
        results[task] = []
        for seed in range(_FIRST_SEED.value, _FIRST_SEED.value + _SEEDS.value):
            results[task].append(run_task(task, seed, shared))
            logging.info("%s seed %d: %s", task, seed, results[task][-1]["summary"])
    text = table(results)
    (out_dir / "tasks.md").write_text(text)
    print(text)


if __name__ == "__main__":
    app.run(main)
