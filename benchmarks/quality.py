"""Time-to-quality: how good a generator each recipe gives after a budget of seconds and of images.

    python -m benchmarks.quality         # reference, previous default, default; 3 seeds
    python -m benchmarks.quality --rows=article_dcgan,default --seeds=1 \
        --seconds=120 --images=100000
    python -m benchmarks.quality --rows=default --candidate='wide:model.g_width=64,model.d_width=64'
    python -m benchmarks.quality --config=configs/noto_emoji.py --judge_min_accuracy=0.65 \
        --rows=article_dcgan,default --seconds=0 --images=60000 --snapshot_images=15000

Every row starts from one config file, `--config` (default
`configs/fashion_mnist.py`, read as `pipeline.run` reads its --config): its
data source is ingested once by the pipeline's own ingest stage, its judge is
the evaluate stage's for that config, and the rows are that config as is
(`default`) or overrides of it. `--data` replaces an `idx:` source's directory
(Fashion-MNIST somewhere else); unset, the config's own source is read.

Each row trains until it has had both `--seconds` of training time and
`--images` images, and is scored every `--snapshot_seconds` of training and
every `--snapshot_images` images by a fixed judge: the config's domain
classifier trained on the train split to at least `--judge_min_accuracy` test
accuracy (cached; small datasets reach less: lower the bar), never the model
under test. The scores, in the judge's 128-d features between `--num_samples`
samples and the whole real eval split (Fashion-MNIST: the 10,000 test images),
are the evaluate stage's: Frechet distance, KID and improved precision and
recall. The clock counts training only (building, tracing and steps), not
scoring.

The rows (`--rows`, `--candidate`) are defined in benchmarks.quality_rows.
Project rows train through the train stage's own code: `build.build_gan`, its
distributed dataset and `loop.make_train_steps`. For each snapshot the
generator an export would hold (EMA, BatchNorm statistics re-estimated) gets
every score and the raw generator its FD.

Results are cached per (row, seed, budgets) in `--results_dir/rows/`, so adding a
row reruns only that row; `--results_dir/quality.md` gets the tables,
`--results_dir/quality.png` the curves (judge FD against training seconds) and
`--results_dir/grids/` a sample grid per row, seed and snapshot.
Another dataset or judge recipe than `configs/fashion_mnist.py`'s gets its own
data workdir (`data-<id>`) and cache keys, so one results_dir can hold several
datasets; Fashion-MNIST keeps the keys and `data/` of every earlier run. Rows
cached before KID and precision/recall were recorded show '–' for them: rerun
those rows with `--rerun` to fill them in.
Timings on a shared machine are noisy: compare rows by the ratios in one run.
"""

import copy
import hashlib
import json
import pathlib
import time

import numpy as np
import tensorflow as tf
from absl import app, flags, logging
from ml_collections import config_flags

from benchmarks import article_dcgan
from benchmarks.quality_report import plot, record_reference, save_grid, summarize
from benchmarks.quality_rows import (
    AUTO_PREFIX,
    AUTO_ROW,
    DEFAULT_CONFIG,
    Row,
    check_row_names,
    is_recipe_row,
    known_rows,
    recipe_choices,
    select_rows,
)
from configs import fashion_mnist
from gan_keras.storage import atomic
from pipeline import judge, recipe, runner
from pipeline.train import build, loop, strategies, validation

_ROWS = flags.DEFINE_list(
    "rows",
    ["article_dcgan", "previous_default", "default"],
    "Rows to run, in order: article_dcgan, previous_default, default, auto (configs/auto.py's "
    "recipe for the data), auto+NAME (that recipe with candidate NAME's overrides on top, e.g. "
    "auto+ada), or candidate names.",
)
_CANDIDATE = flags.DEFINE_multi_string(
    "candidate",
    [],
    "An extra row 'name:field=value,field=value' (overrides of the --config file).",
)
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds per row (0, 1, ...).")
_ROW_SEEDS = flags.DEFINE_multi_string(
    "row_seeds", [], "Seeds for one row, 'name:N' (overrides --seeds)."
)
_ONLY_SEED = flags.DEFINE_integer(
    "only_seed",
    None,
    "Run just this seed of each row (to spread seeds over "
    "processes, e.g. one per core); the table then shows what is cached.",
)
_SECONDS = flags.DEFINE_float("seconds", 300, "Training seconds every row gets (at least).")
_IMAGES = flags.DEFINE_integer("images", 300_000, "Images every row sees (at least).")
_SNAPSHOT_SECONDS = flags.DEFINE_float(
    "snapshot_seconds", 30, "Score every this many training seconds."
)
_SNAPSHOT_IMAGES = flags.DEFINE_integer("snapshot_images", 60_000, "And every this many images.")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 5000, "Generated images per score.")
_CONFIG = config_flags.DEFINE_config_file(
    "config",
    DEFAULT_CONFIG,
    "The config file every row starts from (its data, its judge; the `default` row as is); "
    "--config.section.field=value overrides apply to every row.",
    lock_config=False,
)
_DATA = flags.DEFINE_string(
    "data",
    None,
    "An IDX directory that replaces the --config file's idx: source (e.g. Fashion-MNIST "
    "elsewhere); unset: the config's own source.",
)
# Not --out_dir: the tests import this module beside pipeline.generate, which defines that flag.
_OUT_DIR = flags.DEFINE_string("results_dir", "runs/quality", "Cache, table and plot.")
_JUDGE_MIN_ACCURACY = flags.DEFINE_float(
    "judge_min_accuracy", 0.90, "The judge must reach this test accuracy, or the run stops."
)
_RERUN = flags.DEFINE_bool("rerun", False, "Ignore cached row results.")
_RECORD_REFERENCE = flags.DEFINE_bool(
    "record_reference",
    False,
    "Write the article DCGAN's FD at --images into gan_keras/reference_scores.json (replacing "
    "the entry "
    "for the same judge, sample count and images), where the evaluate stage finds it.",
)


def base_config(config, idx_data_dir: str | None = None):
    """The config every row starts from: `config` (the --config file's), its idx: source's
    directory replaced by `idx_data_dir` (--data) when given."""
    config = copy.deepcopy(config)
    if idx_data_dir:
        if not config.data.source.startswith("idx:"):
            raise ValueError(
                f"--data replaces an idx: source, but the config reads {config.data.source!r}"
            )
        config.data.source = f"idx:{idx_data_dir}"
    if config.task.name != "generate" or config.model.conditional:
        raise ValueError(
            "the benchmark trains unconditional generators (task.name='generate', "
            f"model.conditional=False), not task.name={config.task.name!r}, "
            f"model.conditional={config.model.conditional}"
        )
    return config


def config_path() -> str:
    """The --config file's path, as given."""
    return config_flags.get_config_filename(flags.FLAGS["config"])


def row_config(row: Row, seed: int, base):
    config = copy.deepcopy(base)
    for path, value in row.overrides.items():
        section, field = path.split(".")
        if field not in config[section]:
            raise ValueError(f"--candidate field {path!r} is not a config field")
        config[section][field] = type(config[section][field])(value)
    config.train.seed = seed
    return config


_REPO_ROOT = str(pathlib.Path(__file__).resolve().parents[1])


def _portable(config, section: str) -> dict:
    """`config[section]` as a dict, a data source inside this checkout named relative to it
    (configs/noto_emoji.py builds an absolute path from its own location), so cache keys, and
    the results committed under them, are the same in every clone."""
    fields = config[section].to_dict()
    if section == "data":
        fields["source"] = fields["source"].replace(_REPO_ROOT, "<repo>")
    return fields


def dataset_id(base) -> str | None:
    """What keeps `base`'s data and judge apart from others' in a results_dir (its data
    workdir and its rows' cache keys): None for configs/fashion_mnist.py's data and judge
    recipe, whose `data/` workdir and keys predate this and stay as they were; otherwise a
    short hash of the config's data and evaluate sections."""

    def identity(config) -> dict:
        return {section: _portable(config, section) for section in ("data", "evaluate")}

    if identity(base) == identity(fashion_mnist.get_config()):
        return None
    text = json.dumps(identity(base), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


# --------------------------------------------------------------------------- contestants


class ProjectContestant:
    """A config trained through the train stage's own code path."""

    def __init__(self, config, ingest_dir):
        validation.validate_config(config)
        self.strategy = strategies.make_strategy(config.train.strategy)
        self.images_per_step = config.train.batch_size
        with self.strategy.scope():
            self.model = build.build_gan(
                config,
                resolution=config.data.resolution,
                channels=config.data.channels,
                num_classes=0,
            )
        self.iterator = iter(loop.make_distributed_dataset(config, self.strategy, ingest_dir))
        self.run_steps = loop.make_train_steps(
            self.strategy, self.model, jit_compile=config.train.jit_compile
        )
        self.latent_dim = config.model.latent_dim

    def train(self, num_steps: int) -> None:
        bad_step = int(self.run_steps(self.iterator, tf.constant(num_steps)))
        if bad_step >= 0:
            raise loop.TrainingDivergedError(f"non-finite loss at step {bad_step}")

    def _sample(self, generator, num, seed, batch_size=500):
        z = tf.random.stateless_normal([num, self.latent_dim], [seed, 1])
        out = [
            generator(z[i : i + batch_size], training=False).numpy()
            for i in range(0, num, batch_size)
        ]
        return np.clip(np.round((np.concatenate(out) + 1.0) * 127.5), 0, 255).astype(np.uint8)

    def samples(self, num, seed):
        """From the generator an export would hold (EMA with re-estimated statistics when on)."""
        self.model.refresh_sampling_batch_norm()
        return self._sample(self.model.sampling_generator, num, seed)

    def raw_samples(self, num, seed):
        return self._sample(self.model.generator, num, seed)

    def training_metrics(self) -> dict:
        """The train step's means since the last call (r_t as d_real_sign, ADA's p, D's
        logits, the losses), then reset: what D and the augmentation did between snapshots."""
        values = {name: float(t.result()) for name, t in self.model.trackers.items()}
        for tracker in self.model.trackers.values():
            tracker.reset_state()
        return values


def prepare_data(out_dir: pathlib.Path, base) -> pathlib.Path:
    """A workdir with `base`'s data through the pipeline's ingest stage (cached like any run);
    one per dataset_id, so datasets never overwrite each other's ingest or judge."""
    data_id = dataset_id(base)
    workdir = out_dir / ("data" if data_id is None else f"data-{data_id}")
    runner.Runner(base, workdir).run(["ingest"])
    return workdir


class Judge:
    """The evaluate stage's judge for the base config (same recipe, so the same fingerprint as
    a pipeline run's metrics.json), scoring against the whole real eval split."""

    def __init__(self, config, workdir, min_accuracy: float, config_path: str):
        self.real = judge.read_real_data(config, workdir)
        self.classifier = judge.load_judge(config, workdir, self.real)
        if self.classifier.eval_accuracy < min_accuracy:
            raise SystemExit(
                f"the judge reached {self.classifier.eval_accuracy:.4f} test accuracy, below the "
                f"required {min_accuracy}; raise evaluate.classifier_epochs (or, on a small "
                f"dataset, evaluate.classifier_min_steps) in {config_path}, or lower "
                "--judge_min_accuracy"
            )
        self.scorer = judge.JudgeScorer(config, self.classifier, self.real.eval_images)

    def fd(self, images) -> float:
        return self.scorer.score(images)["frechet_distance"]

    def scores(self, images) -> dict:
        """The SNAPSHOT_METRICS of `images` (and KID's std over its subsets)."""
        scores = self.scorer.score(images, with_precision_recall=True)
        return {
            "fd": scores["frechet_distance"],
            "kid": scores["kid_mean"],
            "kid_std": scores["kid_std"],
            "precision": scores["precision"],
            "recall": scores["recall"],
        }

    def references(self, num_samples: int) -> dict:
        rng = np.random.default_rng(0)
        train_images = self.real.train_images
        real_floor = self.scores(train_images[rng.permutation(len(train_images))[:num_samples]])
        noise_ceiling = self.scores(
            rng.integers(0, 256, (num_samples, *train_images.shape[1:]), dtype=np.uint8)
        )
        return {
            "judge_fingerprint": self.classifier.fingerprint,
            "judge_test_accuracy": self.classifier.eval_accuracy,
            "real_eval_images": len(self.real.eval_images),
            "real_floor_images": min(num_samples, len(train_images)),
            "real_floor": real_floor["fd"],
            "noise_ceiling": noise_ceiling["fd"],
            "real_floor_scores": real_floor,
            "noise_ceiling_scores": noise_ceiling,
        }


# --------------------------------------------------------------------------- one row, one seed


def run_row(row: Row, seed: int, judge: Judge, workdir, base) -> dict:
    """Trains until both budgets are spent; returns the snapshots."""
    seconds_budget, images_budget = _SECONDS.value, _IMAGES.value
    every_s, every_img = _SNAPSHOT_SECONDS.value, _SNAPSHOT_IMAGES.value
    started = time.perf_counter()
    if row.overrides is None:
        contestant = article_dcgan.ArticleDCGAN(judge.real.train_images, seed)
    else:
        contestant = ProjectContestant(row_config(row, seed, base), workdir / "ingest")
    batch = contestant.images_per_step
    train_seconds = time.perf_counter() - started  # building counts as training time
    images, snapshots = 0, []
    next_s, next_img = every_s, every_img
    chunk = max(1, 1600 // batch)
    while True:
        done = train_seconds >= seconds_budget and images >= images_budget
        due = train_seconds >= next_s or images >= next_img or done
        if due and images > 0:
            samples = contestant.samples(_NUM_SAMPLES.value, seed=1000 + seed)
            scores = judge.scores(samples)
            save_grid(pathlib.Path(_OUT_DIR.value), samples, row.name, seed, images)
            shot = {
                "seconds": round(train_seconds, 2),
                "images": images,
                "fd": scores.pop("fd"),
                "fd_raw": judge.fd(contestant.raw_samples(_NUM_SAMPLES.value, seed=1000 + seed)),
                **scores,
            }
            if hasattr(contestant, "training_metrics"):
                shot["train"] = contestant.training_metrics()
            snapshots.append(shot)
            logging.info(
                "%s seed %d: %.0f s, %d images: FD %.2f (raw %.2f), KID %.4f, "
                "precision %.3f, recall %.3f",
                row.name,
                seed,
                shot["seconds"],
                images,
                shot["fd"],
                shot["fd_raw"],
                shot["kid"],
                shot["precision"],
                shot["recall"],
            )
            if "train" in shot:
                logging.info(
                    "%s seed %d since the last snapshot: %s",
                    row.name,
                    seed,
                    ", ".join(f"{k} {v:.3f}" for k, v in sorted(shot["train"].items())),
                )
            while next_s <= train_seconds:
                next_s += every_s
            while next_img <= images:
                next_img += every_img
        if done:
            break
        # Land exactly on image milestones so rows compare at equal images.
        steps = min(chunk, max(1, -(-(next_img - images) // batch)))
        t0 = time.perf_counter()
        contestant.train(steps)
        train_seconds += time.perf_counter() - t0
        images += steps * batch
    return {
        "row": row.spec(),
        "seed": seed,
        "snapshots": snapshots,
        "images_per_second": images / train_seconds,
    }


_LOOP_FIELDS = (
    "steps",
    "checkpoint_every",
    "keep_checkpoints",
    "sample_every",
    "log_every",
    "num_sample_images",
    "eval_every",
    "eval_num_samples",
)


def _cache_key(row: Row, seed: int, base) -> str:
    """Identifies what was trained, not what the row is called: a project row by its resolved
    config (so a candidate that becomes the default keeps its results, and an edited default
    config is retrained), the reference by name; plus seed, budgets and, for any data or judge
    but configs/fashion_mnist.py's, the dataset_id. (The scores recorded are not part of it:
    results cached before KID and precision/recall were recorded keep their keys.)"""
    if row.overrides is None:
        trained = row.name
    else:
        config = row_config(row, seed, base)
        trained = {section: _portable(config, section) for section in ("data", "model", "train")}
        for (
            field
        ) in _LOOP_FIELDS:  # the benchmark's budgets replace the train stage's loop settings
            trained["train"].pop(field, None)
    spec = {
        "trained": trained,
        "seed": seed,
        "seconds": _SECONDS.value,
        "images": _IMAGES.value,
        "snapshot_seconds": _SNAPSHOT_SECONDS.value,
        "snapshot_images": _SNAPSHOT_IMAGES.value,
        "num_samples": _NUM_SAMPLES.value,
    }
    data_id = dataset_id(base)
    if data_id is not None:
        spec["dataset"] = data_id
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def main(argv):
    del argv
    out_dir = pathlib.Path(_OUT_DIR.value)
    try:
        base = base_config(_CONFIG.value, _DATA.value)
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    rows = known_rows(_CANDIDATE.value, config_path())
    try:
        check_row_names(_ROWS.value, rows)
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    for name in _ROWS.value:  # bad overrides fail before any training (auto+NAME: NAME's)
        row = None if name == AUTO_ROW else rows[name.removeprefix(AUTO_PREFIX)]
        if row is not None and row.overrides is not None:
            validation.validate_config(row_config(row, 0, base))
    workdir = prepare_data(out_dir, base)
    choices = None
    if any(is_recipe_row(name) for name in _ROWS.value):
        # What configs/auto.py would train on this data for this budget: the recipe's choices
        # over the --config file's recipe (the same cache key as any row that trains it).
        choices = recipe_choices(base, recipe.read_stats(workdir / "ingest"), _IMAGES.value)
    selected = select_rows(_ROWS.value, rows, choices)
    for row in selected:  # a recipe row, now its choices are known (e.g. ADA with DiffAugment)
        if is_recipe_row(row.name):
            try:
                validation.validate_config(row_config(row, 0, base))
            except ValueError as e:
                raise app.UsageError(f"row {row.name}: {e}") from e
    judge = Judge(base, workdir, _JUDGE_MIN_ACCURACY.value, config_path())
    references = judge.references(_NUM_SAMPLES.value)
    row_seeds = {name: int(n) for name, _, n in (text.partition(":") for text in _ROW_SEEDS.value)}
    results = {}
    for row in selected:
        results[row.name] = []
        for seed in range(row_seeds.get(row.name, _SEEDS.value)):
            path = out_dir / "rows" / f"seed{seed}-{_cache_key(row, seed, base)}.json"
            if path.exists() and not _RERUN.value:
                result = atomic.read_json(path)
            elif _ONLY_SEED.value is not None and seed != _ONLY_SEED.value:
                continue
            else:
                result = run_row(row, seed, judge, workdir, base)
                atomic.atomic_write_json(path, result)
            results[row.name].append(result)
            table, summary = summarize(
                results, references, _SECONDS.value, _IMAGES.value, _NUM_SAMPLES.value
            )
            print(table, flush=True)
    (out_dir / "quality.md").write_text(table + "\n")
    atomic.atomic_write_json(out_dir / "quality.json", {"summary": summary, "results": results})
    plot(results, out_dir / "quality.png", _SECONDS.value, pathlib.Path(config_path()).stem)
    if _RECORD_REFERENCE.value:
        config_flag = "" if dataset_id(base) is None else f"--config={config_path()} "
        record_reference(
            results.get("article_dcgan", []),
            references["judge_fingerprint"],
            _IMAGES.value,
            _NUM_SAMPLES.value,
            config_flag,
        )
    print(
        f"\nWrote {out_dir / 'quality.md'}, {out_dir / 'quality.json'} and "
        f"{out_dir / 'quality.png'}"
    )


if __name__ == "__main__":
    app.run(main)
