"""What the export's controls do, measured: truncation, projection, class edits, memorisation.

The export (gan_keras.export.sampling_model) offers truncated sampling, projection of images
into the latent space and latent edits along named directions. This module
measures, with the judge (pipeline.judge: the domain classifier trained on the ingested
data, the same features and real eval images as the evaluate stage's metrics),
what a user of those signatures gets (`control_metrics`, under "controls" in
evaluate/metrics.json):

* truncation: Frechet distance, precision and recall for each psi in
  `evaluate.truncation_psis` (the same latents, labels and sample count as
  the headline metrics, so the psi = 1 row repeats them), plotted in
  ``truncation_tradeoff.png``;
* projection: PSNR of projecting `evaluate.projection_images` held-out eval
  images with gan_keras.controls.projection.project (pixel loss, the exported `project`
  signature's; `evaluate.projection_steps` steps), against the PSNR of each
  image's nearest training image in pixel space;
* class edits: how often moving a sample by a strength in
  `evaluate.edit_strengths` along towards_X makes the judge predict X, and how
  much the pixels change, next to a random unit direction;
* memorisation: ``nearest_neighbours.png`` (samples beside their nearest
  training images in the judge's feature space) and the mean nearest-training
  -image distance of samples against that of real eval images.

One concern, measuring the export's controls (with its config check and the evaluate
stage's hook, `evaluate_controls`). The "towards class X" directions it measures are fitted
in pipeline.class_directions (the export stage ships the same ones); the pictures are drawn
by pipeline.evaluate.control_plots.
"""

import math
import pathlib
import time

import numpy as np
import tensorflow as tf
from absl import logging

from gan_keras import images as gan_images
from gan_keras.controls import edits, latent_space, projection
from gan_keras.data import records
from gan_keras.evaluation import feature_scores as metrics_lib
from pipeline import class_directions, classes, latent_images
from pipeline import judge as judge_lib
from pipeline import workdir as workdir_layout
from pipeline.evaluate import control_plots

# Held-out latents each class edit is measured on.
EDIT_SAMPLES = 256
# Memorisation check: samples (and real eval images) whose nearest training images are
# searched (neighbours per sample and samples shown: control_plots).
NEIGHBOUR_QUERIES = 1000
# The closest (sample, training image) pairs recorded for the memorisation gate's reason.
CLOSEST_PAIRS = 5
# Projection runs in chunks of this many images (one traced graph).
PROJECTION_CHUNK = 64
# An exact reconstruction has infinite PSNR; averages count it as this.
PSNR_CAP_DB = 100.0

# Seeds of the random draws here (pipeline.judge and pipeline.evaluate use 0-3 and
# pipeline.class_directions 10, with the same seed).
_EDIT_STREAM, _RANDOM_DIRECTION_STREAM, _PROJECTION_STREAM = 11, 12, 13


# --------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------


def _numbers(value) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in value
        )
    )


def validate_config(config) -> None:
    """Raises ValueError naming the bad `config.evaluate` field this module reads; does no work."""
    ev = config.evaluate
    need = judge_lib.field_checker(ev)
    need(isinstance(getattr(ev, "controls", None), bool), "controls", "must be True or False")
    psis = getattr(ev, "truncation_psis", None)
    need(
        _numbers(psis) and all(0.0 <= p <= 1.0 for p in psis) and len(set(psis)) == len(psis),
        "truncation_psis",
        "must be a non-empty list of distinct numbers in [0, 1]",
    )
    need(
        judge_lib.is_int(getattr(ev, "projection_images", None)) and ev.projection_images >= 0,
        "projection_images",
        "must be an integer >= 0 (0 skips the projection measurement)",
    )
    need(
        judge_lib.is_int(getattr(ev, "projection_steps", None)) and ev.projection_steps >= 0,
        "projection_steps",
        "must be an integer >= 0",
    )
    need(
        _numbers(getattr(ev, "edit_strengths", None)),
        "edit_strengths",
        "must be a non-empty list of finite numbers",
    )


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _predicted_classes(judge, images: np.ndarray) -> np.ndarray:
    return np.argmax(judge.predict(images)[1], axis=1)


def _psnr(mse: np.ndarray) -> np.ndarray:
    """PSNR in dB of uint8 images from their mean squared error, exact matches capped."""
    mse = np.asarray(mse, np.float64)
    with np.errstate(divide="ignore"):
        psnr = 10.0 * np.log10(255.0**2 / mse)
    return np.minimum(psnr, PSNR_CAP_DB)


def _mse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    diff = a.astype(np.float64) - b.astype(np.float64)
    return np.mean(np.square(diff).reshape(len(a), -1), axis=1)


def _nearest(queries: np.ndarray, base: np.ndarray, k: int, max_entries: int = 8_000_000):
    """(distances [Q, k], indices [Q, k]) of each query's k nearest rows of `base` (Euclidean,
    float64), in blocks of at most `max_entries` numbers, so 60k images are never all in float64."""
    queries = np.asarray(queries, np.float64).reshape(len(queries), -1)
    dim = queries.shape[1]
    k = min(k, len(base))
    best_d = np.full((len(queries), k), np.inf)
    best_i = np.zeros((len(queries), k), np.int64)
    base_rows = max(1, max_entries // max(dim, 1))
    query_rows = max(1, max_entries // base_rows)
    q_sq = np.einsum("ij,ij->i", queries, queries)
    for b_start in range(0, len(base), base_rows):
        block = np.asarray(base[b_start : b_start + base_rows], np.float64).reshape(-1, dim)
        block_sq = np.einsum("ij,ij->i", block, block)
        ids = np.arange(b_start, b_start + len(block))
        for q_start in range(0, len(queries), query_rows):
            rows = slice(q_start, q_start + query_rows)
            d = np.maximum(
                q_sq[rows, None] + block_sq[None, :] - 2.0 * (queries[rows] @ block.T), 0.0
            )
            cand_d = np.concatenate([best_d[rows], d], axis=1)
            cand_i = np.concatenate([best_i[rows], np.broadcast_to(ids, d.shape)], axis=1)
            top = np.argpartition(cand_d, k - 1, axis=1)[:, :k]
            best_d[rows] = np.take_along_axis(cand_d, top, axis=1)
            best_i[rows] = np.take_along_axis(cand_i, top, axis=1)
    order = np.argsort(best_d, axis=1, kind="stable")
    return np.sqrt(np.take_along_axis(best_d, order, axis=1)), np.take_along_axis(
        best_i, order, axis=1
    )


# --------------------------------------------------------------------------
# Class edits
# --------------------------------------------------------------------------


def _random_directions(count: int, latent_dim: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng([seed, _RANDOM_DIRECTION_STREAM]).standard_normal(
        (count, latent_dim)
    )
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def edit_metrics(
    generator,
    judge,
    directions: dict,
    direction_info: dict,
    *,
    latent_dim: int,
    strengths,
    seed: int = 0,
    num_samples: int = EDIT_SAMPLES,
    batch_size: int = 256,
) -> dict:
    """Success rate (judge predicts X after latent + s * towards_X) and mean absolute pixel
    change (uint8 levels), per strength, averaged over classes; the same for one random unit
    direction per class, the reference. Edits act as the export's ``edit`` does: in the
    generator's `latent_space.ControlSpace`, each direction one standard deviation long."""
    z = (
        np.random.default_rng([seed, _EDIT_STREAM])
        .standard_normal((num_samples, latent_dim))
        .astype(np.float32)
    )
    space = latent_space.ControlSpace(generator, latent_dim)
    latents = latent_images.space_latents(space, z, batch_size)
    base = latent_images.generate(generator, z, batch_size=batch_size)
    base_pred = _predicted_classes(judge, base)
    random_dirs = _random_directions(len(directions), space.dim, seed)
    if directions:  # one standard deviation long, as build_directions stores them
        ordered = np.stack([v for _, v in sorted(directions.items())])
        scaled = ordered * edits.direction_scales(generator, latent_dim, ordered)[:, None]
        directions = dict(zip(sorted(directions), scaled, strict=True))
        random_dirs = (
            random_dirs * edits.direction_scales(generator, latent_dim, random_dirs)[:, None]
        )
    per_class, rows = {}, {float(s): {"class": [], "random": []} for s in strengths}
    for (name, vector), random_vector in zip(sorted(directions.items()), random_dirs, strict=True):
        c = direction_info["classes"][name]["class"]
        others = base_pred != c
        per_class[name] = {"base_rate": float(np.mean(base_pred == c))}
        for strength in strengths:
            for kind, v in (("class", vector), ("random", random_vector)):
                edited = latent_images.space_images(
                    generator,
                    space,
                    latents + np.float32(strength) * v.astype(np.float32),
                    batch_size=batch_size,
                )
                pred = _predicted_classes(judge, edited)
                row = {
                    "success_rate": float(np.mean(pred == c)),
                    # Of the samples the judge did not already call X.
                    "flip_rate": float(np.mean(pred[others] == c)) if others.any() else None,
                    "mean_abs_pixel_change": float(
                        np.mean(np.abs(edited.astype(np.int16) - base.astype(np.int16)))
                    ),
                }
                rows[float(strength)][kind].append(row)
                if kind == "class":
                    per_class[name].setdefault("success_rate", []).append(row["success_rate"])
                else:
                    per_class[name].setdefault("random_success_rate", []).append(
                        row["success_rate"]
                    )

    def mean(values):
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None

    by_strength = []
    for strength, kinds in rows.items():
        entry = {"strength": strength}
        for kind, suffix in (("class", ""), ("random", "_random")):
            for key in ("success_rate", "flip_rate", "mean_abs_pixel_change"):
                entry[key + suffix] = mean([r[key] for r in kinds[kind]])
        by_strength.append(entry)
    return {
        "num_samples": int(num_samples),
        "strengths": [float(s) for s in strengths],
        "base_rate": mean([v["base_rate"] for v in per_class.values()]),
        "by_strength": by_strength,
        "per_class": per_class,
        "note": (
            "success_rate: fraction of samples the judge calls X after latent + strength * "
            "towards_X (base_rate: before the edit); flip_rate: the same among samples not "
            "called X before; mean_abs_pixel_change in uint8 levels; *_random: one random "
            "direction per class at the same strengths; latents and directions are the "
            "export's edit signature's (z, or w one standard deviation long)"
        ),
    }


# --------------------------------------------------------------------------
# Truncation, projection, nearest neighbours
# --------------------------------------------------------------------------


def truncation_sweep(
    generator,
    judge,
    real_features: np.ndarray,
    *,
    latent_dim: int,
    psis,
    num_samples: int,
    seed: int,
    pr_k: int,
    labels: np.ndarray | None = None,
    real_radii: np.ndarray | None = None,
    batch_size: int = 256,
):
    """([{psi, frechet_distance, precision, recall}], {1.0: (the first NEIGHBOUR_QUERIES images,
    their features)} if psi = 1 is swept). The latents (and labels) are the headline metrics'
    (pipeline.judge.sample_latents with the same seed and count), truncated as the export's
    truncated_sample does: towards the prior's mean 0 in z-space, or towards the tracked
    w_avg in w-space for a generator with a mapping network (StyleGAN2)."""
    z = judge_lib.sample_latents(num_samples, latent_dim, seed)
    if real_radii is None:
        real_radii = metrics_lib.knn_radii(real_features, pr_k)
    rows, kept = [], {}
    for psi in psis:
        images = latent_images.generate(generator, z, labels, batch_size, psi=psi)
        features = judge.features(images)
        precision, recall = metrics_lib.precision_recall(
            real_features, features, k=pr_k, real_radii=real_radii
        )
        rows.append(
            {
                "psi": float(psi),
                "frechet_distance": metrics_lib.frechet_distance(features, real_features),
                "precision": precision,
                "recall": recall,
            }
        )
        if psi == 1.0:  # the memorisation check's samples
            kept[1.0] = (images[:NEIGHBOUR_QUERIES], features[:NEIGHBOUR_QUERIES])
    return rows, kept


def projection_metrics(
    generator,
    targets: np.ndarray,
    train_images: np.ndarray,
    *,
    latent_dim: int,
    steps: int,
    labels: np.ndarray | None = None,
    seed: int = 0,
    chunk: int = PROJECTION_CHUNK,
) -> dict:
    """PSNR of projecting uint8 `targets` into the generator (`projection.project`, pixel
    MSE, its default restarts and learning rate), next to the PSNR of each target's nearest
    training image in pixel space (the memorising baseline a generator should beat). The
    latents fitted are the export's: z, or w for a generator with a mapping network."""
    space = latent_space.ControlSpace(generator, latent_dim)

    def generator_fn(latents, label):
        images = space.images(latents, label if space.labelled_images else None)
        # A generator piecewise constant in z (a lookup) has no gradient path to z, and
        # projection.project's tape would return None: connect a zero gradient instead.
        return images + 0.0 * tf.reshape(tf.reduce_sum(latents, axis=1), [-1, 1, 1, 1])

    def fit(images, label=None):
        return projection.project(
            generator_fn,
            images,
            steps,
            latent_dim=latent_dim,
            label=label,
            seed=seed,
            start_fn=space.projection_starts,
        )["images_float"]

    fit_fn = tf.function(fit) if labels is None else tf.function(lambda x, y: fit(x, y))
    start = time.time()
    chunk = max(1, min(chunk, len(targets)))
    reconstructions = []
    for begin in range(0, len(targets), chunk):
        part = targets[begin : begin + chunk]
        n = len(part)
        pad = chunk - n  # the last chunk is padded so the graph is traced once
        images = gan_images.to_float_tensor(np.concatenate([part, part[:1].repeat(pad, axis=0)]))
        if labels is None:
            out = fit_fn(images)
        else:
            part_labels = labels[begin : begin + chunk]
            out = fit_fn(
                images,
                tf.constant(np.concatenate([part_labels, part_labels[:1].repeat(pad)]), tf.int32),
            )
        reconstructions.append(gan_images.to_uint8(out.numpy()[:n]))
    reconstructions = np.concatenate(reconstructions)
    seconds = time.time() - start
    psnr = _psnr(_mse(reconstructions, targets))
    _, nearest = _nearest(targets, train_images, 1)
    nearest_psnr = _psnr(_mse(train_images[nearest[:, 0]], targets))
    return {
        "num_images": int(len(targets)),
        "steps": int(steps),
        "restarts": projection.PROJECT_RESTARTS,
        "loss": "pixel MSE (as the exported project signature)",
        "psnr_mean": float(psnr.mean()),
        "psnr_median": float(np.median(psnr)),
        "nearest_train_psnr_mean": float(nearest_psnr.mean()),
        "nearest_train_psnr_median": float(np.median(nearest_psnr)),
        "fraction_better_than_nearest_train": float(np.mean(psnr > nearest_psnr)),
        "num_train": int(len(train_images)),
        "psnr_cap_db": PSNR_CAP_DB,
        "seconds": round(seconds, 3),
    }


def neighbour_metrics(
    sample_images: np.ndarray,
    sample_features: np.ndarray,
    eval_features: np.ndarray,
    train_images: np.ndarray,
    train_features: np.ndarray,
    grid_path=None,
    num_queries: int = NEIGHBOUR_QUERIES,
) -> dict:
    """Mean distance (judge features) from samples and from real eval images to their nearest
    training image; a memorising generator's samples sit much closer than real eval images do.
    Writes the grid of the first samples beside their nearest training images to `grid_path`."""
    sample_d, sample_idx = _nearest(
        sample_features[:num_queries], train_features, control_plots.NEIGHBOURS
    )
    eval_d, _ = _nearest(eval_features[:num_queries], train_features, 1)
    sample_nn, eval_nn = sample_d[:, 0], eval_d[:, 0]
    if grid_path is not None:
        shown = min(control_plots.NEIGHBOUR_GRID_SAMPLES, len(sample_images))
        gan_images.save_png(
            grid_path,
            control_plots.neighbour_grid(sample_images[:shown], train_images[sample_idx[:shown]]),
        )
    eval_mean = float(eval_nn.mean())
    closest = np.argsort(sample_nn, kind="stable")[:CLOSEST_PAIRS]
    return {
        "feature_space": "judge",
        "num_samples": int(len(sample_nn)),
        "num_real_eval": int(len(eval_nn)),
        "num_train": int(len(train_features)),
        "sample_mean_distance": float(sample_nn.mean()),
        "real_eval_mean_distance": eval_mean,
        "ratio": float(sample_nn.mean() / eval_mean) if eval_mean > 0 else None,
        # ~0.05 when samples are as far from the training set as new real images are.
        "samples_closer_than_real_eval_5th_percentile": float(
            np.mean(sample_nn < np.percentile(eval_nn, 5))
        ),
        # The samples nearest to a training image (pipeline.gate's memorisation rule names them):
        # sample i of the evaluation's samples (evaluate.seed), training image j of the ingested
        # train split in record order.
        "closest_pairs": [
            {"sample": int(i), "train": int(sample_idx[i, 0]), "distance": float(sample_nn[i])}
            for i in closest
        ],
        "note": (
            "Euclidean distance in the judge's features to the nearest training image; a "
            "ratio well below 1 (samples closer to the training set than real eval images "
            "are) suggests memorisation"
        ),
    }


# --------------------------------------------------------------------------
# The measurements, and the stages' hooks
# --------------------------------------------------------------------------


def control_metrics(
    config,
    workdir,
    generator,
    judge,
    real: judge_lib.RealData,
    latent_dim: int,
    num_classes: int,
    out_dir,
) -> dict:
    """The "controls" of evaluate/metrics.json (see the module docstring); writes
    control_plots' TRUNCATION_PLOT and NEIGHBOURS_PLOT into out_dir. `num_classes`: the
    model's (0 = unconditional)."""
    ev = config.evaluate
    start = time.time()
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    batch = ev.sample_batch_size
    seconds = {}
    labels = (
        judge_lib.balanced_labels(ev.num_samples, num_classes, ev.seed) if num_classes else None
    )
    real_features = judge.features(real.eval_images)
    real_radii = metrics_lib.knn_radii(real_features, ev.pr_k)
    result = {"features": judge.name, "judge_fingerprint": judge.fingerprint}

    t = time.time()
    psis = [float(p) for p in ev.truncation_psis]
    rows, kept = truncation_sweep(
        generator,
        judge,
        real_features,
        latent_dim=latent_dim,
        psis=psis,
        num_samples=ev.num_samples,
        seed=ev.seed,
        pr_k=ev.pr_k,
        labels=labels,
        real_radii=real_radii,
        batch_size=batch,
    )
    control_plots.plot_truncation(rows, out_dir / control_plots.TRUNCATION_PLOT)
    result["truncation"] = {
        "num_samples": int(ev.num_samples),
        "rows": rows,
        "plot": control_plots.TRUNCATION_PLOT,
    }
    seconds["truncation"] = time.time() - t

    t = time.time()
    count = min(ev.projection_images, len(real.eval_images))
    if count > 0:
        chosen = np.sort(
            np.random.default_rng([ev.seed, _PROJECTION_STREAM]).permutation(len(real.eval_images))[
                :count
            ]
        )
        result["projection"] = projection_metrics(
            generator,
            real.eval_images[chosen],
            real.train_images,
            latent_dim=latent_dim,
            steps=ev.projection_steps,
            labels=real.eval_labels[chosen].astype(np.int32) if num_classes else None,
            seed=ev.seed,
        )
        result["projection"]["targets"] = "held-out eval images"
    else:
        result["projection"] = {"skipped": "config.evaluate.projection_images is 0"}
    seconds["projection"] = time.time() - t

    t = time.time()
    class_names = records.read_label_names(workdir_layout.ingest_dir(workdir))
    directions, info = class_directions.class_directions_with_info(
        generator,
        judge,
        latent_dim,
        num_classes,
        class_names=class_names,
        seed=ev.seed,
        batch_size=batch,
    )
    result["class_directions"] = info
    if directions:
        result["class_edits"] = edit_metrics(
            generator,
            judge,
            directions,
            info,
            latent_dim=latent_dim,
            strengths=[float(s) for s in ev.edit_strengths],
            seed=ev.seed,
            batch_size=batch,
        )
    else:
        result["class_edits"] = {"skipped": info.get("skipped", "no class direction was fitted")}
    seconds["class_directions"] = time.time() - t

    t = time.time()
    if 1.0 in kept:
        sample_images, sample_features = kept[1.0]
    else:
        count = min(ev.num_samples, NEIGHBOUR_QUERIES)
        sample_images = latent_images.generate(
            generator,
            judge_lib.sample_latents(ev.num_samples, latent_dim, ev.seed)[:count],
            None if labels is None else labels[:count],
            batch,
        )
        sample_features = judge.features(sample_images)
    result["nearest_neighbours"] = neighbour_metrics(
        sample_images,
        sample_features,
        real_features,
        real.train_images,
        judge.features(real.train_images),
        grid_path=out_dir / control_plots.NEIGHBOURS_PLOT,
    )
    result["nearest_neighbours"]["plot"] = control_plots.NEIGHBOURS_PLOT
    seconds["nearest_neighbours"] = time.time() - t
    result["seconds"] = {
        k: round(v, 3) for k, v in {**seconds, "total": time.time() - start}.items()
    }
    return result


def evaluate_controls(config, workdir, generator, latent_dim: int, out_dir) -> dict:
    """The evaluate stage's hook: `control_metrics` with the workdir's judge and real data,
    or {"skipped": ...} when config.evaluate.controls is False."""
    validate_config(config)
    if not config.evaluate.controls:
        return {"skipped": "config.evaluate.controls is False"}
    real = judge_lib.read_real_data(config, workdir)
    judge = judge_lib.load_judge(config, workdir, real)
    num_classes = classes.resolve_num_classes(
        workdir_layout.ingest_dir(workdir),
        conditional=bool(config.model.conditional),
        num_classes=config.model.num_classes,
        eval_labels=real.eval_labels,
    )
    result = control_metrics(
        config, workdir, generator, judge, real, latent_dim, num_classes, out_dir
    )
    edits = result.get("class_edits", {}).get("by_strength", [])
    logging.info(
        "Controls: truncation %s; projection PSNR %s dB (nearest training image %s dB); "
        "class edits %s; nearest-neighbour distance ratio %s (%.1f s)",
        [(r["psi"], round(r["frechet_distance"], 3)) for r in result["truncation"]["rows"]],
        _round(result["projection"].get("psnr_mean")),
        _round(result["projection"].get("nearest_train_psnr_mean")),
        [
            (e["strength"], _round(e["success_rate"]), _round(e["success_rate_random"]))
            for e in edits
        ]
        or result["class_edits"].get("skipped"),
        _round(result["nearest_neighbours"]["ratio"]),
        result["seconds"]["total"],
    )
    return result


def _round(x, digits: int = 3):
    return None if x is None else round(float(x), digits)
