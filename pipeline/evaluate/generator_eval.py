"""EVALUATE stage: offline sample-quality metrics and the export gate.

Samples `config.evaluate.num_samples` images from the trained generator and
compares them with the real eval split in the feature space of an extractor
(`gan_keras.evaluation.feature_extractors`): Frechet distance, KID, classifier score and
improved precision/recall, next to two reference points computed the same
way: the real floor (real train images vs real eval) and a noise ceiling
(uniform noise vs real eval). Conditional models also get per-class Frechet
distances (intra-FID) and the classifier's accuracy on the requested labels.

The domain classifier (the "judge", pipeline.judge) is trained once per
workdir and shared with the train stage's in-training evaluation. metrics.json
places the model on a scale, in `summary`: the real floor, the reference
generators that `gan_keras/reference_scores.json` holds for the same judge and
sample count (e.g. the article's DCGAN, scored by benchmarks.quality) and the
noise ceiling. The stage then decides the export gate (pipeline.gate) into
metrics.json.

Library: `run_evaluate(config, workdir, out_dir)` (the stage; `run(context)` is
the runner's hook), `compute_metrics(...)` for any `sample_fn`,
`quality_summary(metrics)`, `validate_config(config)`, `evaluate_export(...)`.

Standalone scoring of an exported generator (the command line is
pipeline/evaluate_main.py):

    python -m pipeline.evaluate --model_base_path=<workdir>/export/generator \\
        --workdir=<workdir> [--config=configs/smoke.py] [--output=metrics.json]
"""

import hashlib
import math
import pathlib
import time
from collections.abc import Callable

import numpy as np
from absl import logging

from gan_keras import images as gan_images
from gan_keras import progress
from gan_keras.data import records
from gan_keras.evaluation import feature_extractors, reference_scores
from gan_keras.evaluation import feature_scores as metrics_lib
from gan_keras.export import layout
from gan_keras.storage import atomic
from pipeline import classes, judge
from pipeline import workdir as workdir_layout
from pipeline.evaluate import control_metrics
from pipeline.gate import GATE_METRICS, decide_gate

# sample_fn(num, seed, labels or None) -> uint8 [num, H, W, C]
SampleFn = Callable[[int, int, "np.ndarray | None"], np.ndarray]
# Images per feature-extraction call: a progress line can come between two (a multiple of the
# extractors' batch sizes, so only the last chunk has a batch of its own shape).
_EMBED_CHUNK = 2560


# --------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------


def validate_config(config) -> None:
    """Raises ValueError naming the bad `config.evaluate` field; does no work."""
    judge.validate_judge_config(config)
    ev = config.evaluate
    if ev.extractor in feature_extractors.RENAMED_EXTRACTORS:
        raise ValueError(feature_extractors.RENAMED_EXTRACTORS[ev.extractor])
    need = judge.field_checker(ev)
    need(
        ev.extractor in feature_extractors.EXTRACTORS,
        "extractor",
        f"unknown extractor; expected one of {feature_extractors.EXTRACTORS}",
    )
    need(
        isinstance(ev.fid_inception_graph, str),
        "fid_inception_graph",
        "must be a path string",
    )
    if ev.extractor == "fid_inception":
        need(
            bool(ev.fid_inception_graph) and pathlib.Path(ev.fid_inception_graph).is_file(),
            "fid_inception_graph",
            f"no such file: {ev.fid_inception_graph!r}; extractor=fid_inception needs the local "
            "classify_image_graph_def.pb from inception-2015-12-05.tgz (nothing is downloaded)",
        )
    need(
        judge.is_int(ev.num_samples) and ev.num_samples >= 2,
        "num_samples",
        "must be an integer >= 2",
    )
    need(
        isinstance(ev.inception_weights, str),
        "inception_weights",
        "must be a path string ('' = skip)",
    )
    need(judge.is_int(ev.pr_k) and ev.pr_k >= 1, "pr_k", "must be an integer >= 1")
    need(
        ev.num_samples > ev.pr_k,
        "num_samples",
        f"must exceed pr_k={ev.pr_k} (k-NN radii need k+1 samples)",
    )
    need(
        judge.is_int(ev.classifier_score_splits)
        and 1 <= ev.classifier_score_splits <= ev.num_samples,
        "classifier_score_splits",
        "must be an integer in [1, num_samples]",
    )
    need(
        ev.gate_metric in GATE_METRICS,
        "gate_metric",
        f"unknown gate metric; expected one of {GATE_METRICS}",
    )
    need(
        ev.gate_metric != "intra_frechet_distance" or bool(config.model.conditional),
        "gate_metric",
        "intra_frechet_distance needs a conditional model (config.model.conditional=True)",
    )
    need(
        isinstance(ev.threshold, (int, float))
        and not isinstance(ev.threshold, bool)
        and not math.isnan(ev.threshold),
        "threshold",
        "must be a number (inf = no threshold)",
    )
    need(
        isinstance(ev.baseline_tolerance, (int, float)) and ev.baseline_tolerance >= 0,
        "baseline_tolerance",
        "must be a number >= 0",
    )
    control_metrics.validate_config(config)


# --------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------


def keras_sample_fn(
    generator, latent_dim: int, conditional: bool, batch_size: int = 256
) -> SampleFn:
    """sample_fn for a Keras generator returning float images in [-1, 1]."""

    def sample_fn(num, seed, labels=None):
        if conditional and labels is None:
            raise ValueError("a conditional generator needs labels")
        z = judge.sample_latents(num, latent_dim, seed)
        out = []
        log = progress.ProgressLog("evaluate: sampling", num)
        for start in range(0, num, batch_size):
            zb = z[start : start + batch_size]
            inputs = (
                [zb, np.asarray(labels[start : start + batch_size], np.int32)]
                if conditional
                else zb
            )
            out.append(gan_images.to_uint8(np.asarray(generator(inputs, training=False))))
            log.add(len(zb))
        return np.concatenate(out)

    return sample_fn


def saved_model_sample_fn(model_dir, batch_size: int = 256) -> tuple[SampleFn, dict]:
    """sample_fn for an exported SavedModel's `serving_default` signature, and its description."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(model_dir))
    if "serving_default" not in loaded.signatures:
        raise ValueError(
            f"{model_dir} has no serving_default signature (has {list(loaded.signatures)})"
        )
    signature = loaded.signatures["serving_default"]
    _, input_specs = signature.structured_input_signature
    if "z" not in input_specs:
        raise ValueError(
            f"{model_dir}: serving_default has no 'z' input (inputs: {sorted(input_specs)})"
        )
    latent_dim = input_specs["z"].shape[-1]
    if latent_dim is None:
        raise ValueError(f"{model_dir}: serving_default's z input has an unknown latent size")
    conditional = "label" in input_specs

    def sample_fn(num, seed, labels=None):
        if conditional and labels is None:
            raise ValueError("this exported generator is conditional and needs labels")
        z = judge.sample_latents(num, int(latent_dim), seed)
        out = []
        log = progress.ProgressLog("evaluate: sampling", num)
        for start in range(0, num, batch_size):
            kwargs = {"z": tf.constant(z[start : start + batch_size])}
            if conditional:
                kwargs["label"] = tf.constant(
                    labels[start : start + batch_size], input_specs["label"].dtype
                )
            result = signature(**kwargs)
            if "images" in result:
                out.append(result["images"].numpy().astype(np.uint8))
            elif "images_float" in result:
                out.append(gan_images.to_uint8(result["images_float"].numpy()))
            else:
                raise ValueError(
                    f"{model_dir}: serving_default returns {sorted(result)}, not 'images'"
                )
            log.add(len(out[-1]))
        return np.concatenate(out)

    # Keep the loaded object alive as long as the function.
    sample_fn.loaded = loaded
    return sample_fn, {
        "latent_dim": int(latent_dim),
        "conditional": conditional,
        "path": str(model_dir),
    }


def weights_fingerprint(model) -> str:
    digest = hashlib.sha256()
    for w in model.weights:
        digest.update(np.asarray(w).tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------


def _uniform_noise(num: int, shape, seed: int) -> np.ndarray:
    return np.random.default_rng([seed, 2]).integers(0, 256, size=(num, *shape), dtype=np.uint8)


def _score(config, fake_features, real_features, fake_probs, real_radii=None) -> dict:
    ev = config.evaluate
    result = {
        **metrics_lib.feature_scores(
            fake_features,
            real_features,
            kid_subsets=ev.kid_subsets,
            kid_subset_size=ev.kid_subset_size,
            seed=ev.seed,
            pr_k=ev.pr_k,
            real_radii=real_radii,
        ),
        "classifier_score": None,
        "classifier_score_std": None,
    }
    if fake_probs is not None:
        splits = min(ev.classifier_score_splits, len(fake_probs))
        result["classifier_score"], result["classifier_score_std"] = metrics_lib.classifier_score(
            fake_probs, splits=splits
        )
    return result


def compute_metrics(
    config,
    workdir,
    sample_fn: SampleFn,
    *,
    conditional: bool,
    num_classes: int | None = None,
    model_info: dict | None = None,
    return_samples: bool = False,
):
    """Scores `sample_fn` against workdir's real eval split (no gate; writes only the judge's
    cache).

    Returns the metrics dict (and the generated uint8 samples if `return_samples`).
    """
    ev = config.evaluate
    start_time = time.time()
    real = judge.read_real_data(config, workdir)
    train_images, eval_images, eval_labels = real.train_images, real.eval_images, real.eval_labels
    image_shape = eval_images.shape[1:]
    if len(eval_images) <= ev.pr_k:
        raise ValueError(
            f"the eval split has {len(eval_images)} images; precision/recall needs more than "
            f"config.evaluate.pr_k={ev.pr_k}"
        )

    classifier = judge.load_judge(config, workdir, real)
    skipped = {}
    extractor = classifier
    if ev.extractor == "keras_inception_v3":
        try:
            extractor = feature_extractors.KerasInceptionV3Extractor(ev.inception_weights)
        except feature_extractors.ExtractorUnavailable as e:
            logging.warning("%s. Falling back to the domain classifier's features.", e)
            skipped["keras_inception_v3"] = str(e)
    elif ev.extractor == "fid_inception":
        extractor = feature_extractors.FidInceptionExtractor(ev.fid_inception_graph)

    labels = None
    if conditional:
        if eval_labels.min() < 0:
            raise ValueError(
                "a conditional model is evaluated per class, but the eval split is unlabelled"
            )
        num_classes = classes.resolve_num_classes(
            workdir_layout.ingest_dir(workdir),
            conditional=True,
            num_classes=num_classes or config.model.num_classes,
            eval_labels=eval_labels,
        )
        labels = judge.balanced_labels(ev.num_samples, num_classes, ev.seed)
    logging.info("Sampling %d images from the generator", ev.num_samples)
    fake_images = np.asarray(sample_fn(ev.num_samples, ev.seed, labels))
    if fake_images.dtype != np.uint8 or fake_images.shape != (ev.num_samples, *image_shape):
        raise ValueError(
            f"the generator produced {fake_images.dtype} images of shape {fake_images.shape}; "
            f"expected uint8 {(ev.num_samples, *image_shape)} like the ingested data"
        )

    def embed(x, name):
        """(extractor features, domain-classifier class probabilities or None), in chunks that
        give a progress line (features do not depend on the chunking)."""
        log = progress.ProgressLog(f"evaluate: {extractor.name} features of {name}", len(x))
        features, probs = [], []
        for start in range(0, len(x), _EMBED_CHUNK):
            chunk = x[start : start + _EMBED_CHUNK]
            chunk_features, chunk_probs = classifier.predict(chunk)
            if extractor is not classifier:
                chunk_features = extractor.predict(chunk)[0]
            features.append(chunk_features)
            probs.append(chunk_probs)
            log.add(len(chunk))
        return np.concatenate(features), (None if probs[0] is None else np.concatenate(probs))

    real_features, _ = embed(eval_images, "real eval images")
    # The real set's k-NN radii serve the model and both reference points.
    real_radii = metrics_lib.knn_radii(real_features, ev.pr_k)
    fake_features, fake_probs = embed(fake_images, "samples")
    result = _score(config, fake_features, real_features, fake_probs, real_radii)

    # Reference points, same extractor, same sample count where possible.
    floor_idx = np.random.default_rng([ev.seed, 3]).permutation(len(train_images))[: ev.num_samples]
    floor_images = train_images[floor_idx]
    noise_images = _uniform_noise(ev.num_samples, image_shape, ev.seed)
    references = {}
    for name, description, reference_images in [
        ("real_floor", "real train subset vs real eval", floor_images),
        ("noise_ceiling", "uniform noise images vs real eval", noise_images),
    ]:
        features, probs = embed(reference_images, name.replace("_", " "))
        references[name] = {
            "description": description,
            "num_samples": len(reference_images),
            **_score(config, features, real_features, probs, real_radii),
        }

    result.update(
        {
            "extractor": extractor.name,
            # "FID" only for the FID network's features; what the distance is, in words.
            "distance_name": extractor.distance_name,
            "frechet_distance_description": extractor.description,
            "extractor_fingerprint": extractor.fingerprint,
            "extractor_info": extractor.info,
            "skipped_extractors": skipped,
            "num_samples": int(ev.num_samples),
            "num_real": int(len(eval_images)),
            "num_real_train": int(len(train_images)),
            "image_shape": list(image_shape),
            "classifier": classifier.info,
            "classifier_eval_accuracy": classifier.eval_accuracy,
            "references": references,
            "conditional": bool(conditional),
            "model": model_info or {},
            "seed": int(ev.seed),
        }
    )
    if not classifier.has_class_probs:
        result["classifier_score_note"] = (
            "not computed: the data is unlabelled, so the domain classifier was trained on "
            "rotation "
            "prediction (0/90/180/270 degrees) instead of classes; its features are used for "
            "the distances"
        )
    if conditional:
        result.update(
            _conditional_metrics(
                fake_features,
                real_features,
                fake_probs,
                labels,
                eval_labels,
                num_classes,
                records.read_label_names(workdir_layout.ingest_dir(workdir)),
            )
        )
    _add_reference_models(result)
    result["summary"] = quality_summary(result)
    result["seconds"] = round(time.time() - start_time, 3)
    return (result, fake_images) if return_samples else result


def _add_reference_models(result: dict) -> None:
    """references.reference_models: the packaged reference scores for this judge and sample count,
    or a `references_note` saying why there are none."""
    try:
        entries = reference_scores.lookup(result["extractor_fingerprint"], result["num_samples"])
    except (OSError, ValueError) as e:
        logging.warning("Reference scores unreadable: %s", e)
        result["references_note"] = f"reference scores unreadable: {e}"
        return
    if entries:
        result["references"]["reference_models"] = entries
    else:
        result["references_note"] = (
            f"no reference generator scored with this judge ({result['extractor']} "
            f"{result['extractor_fingerprint'][:12]}) at {result['num_samples']} samples in "
            f"gan_keras/{reference_scores.REFERENCE_FILE} (benchmarks.quality writes them)"
        )


def _number(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}" if abs(x) >= 1 else f"{x:.2g}"


def _count(n) -> str:
    n = float(n)
    return f"{n / 1e6:.3g}M" if n >= 1e6 else f"{n / 1e3:.3g}k" if n >= 1e3 else f"{n:.0f}"


def _reference_label(entry: dict) -> str:
    images = entry.get("images")
    return (
        f"{entry['name']} ({_count(images)} images)"
        if isinstance(images, (int, float))
        else entry["name"]
    )


def quality_summary(metrics: dict) -> str:
    """One line placing the model's FD between the real floor, the reference generators and noise,
    e.g. 'FD 7.9: real-data floor 0.32, article DCGAN (300k images) 8.3, noise 95; 0.95x the
    article DCGAN (300k images); checkpoint step 3500 (best by in-training FD), 5000 samples,
    domain_classifier features'."""
    fd = metrics["frechet_distance"]
    references = metrics.get("references", {})
    scale = [("real-data floor", references["real_floor"]["frechet_distance"])]
    models = sorted(references.get("reference_models", []), key=lambda e: e["frechet_distance"])
    scale += [(_reference_label(e), e["frechet_distance"]) for e in models]
    scale.append(("noise", references["noise_ceiling"]["frechet_distance"]))
    line = f"{metrics.get('distance_name', 'FD')} {_number(fd)}: " + ", ".join(
        f"{name} {_number(value)}" for name, value in scale
    )
    ratios = [
        f"{fd / e['frechet_distance']:.2g}x the {_reference_label(e)}"
        for e in models
        if e["frechet_distance"] > 0
    ]
    if ratios:
        line += "; " + ", ".join(ratios)
    elif not models:
        line += "; no reference generator scored with this judge and sample count"
    model = metrics.get("model") or {}
    context = [f"{metrics['num_samples']} samples, {metrics.get('extractor', 'judge')} features"]
    if metrics.get("extractor") == "keras_inception_v3":
        context.append("not comparable with published FID")
    if model.get("checkpoint_step") is not None:
        context.insert(
            0, f"checkpoint step {model['checkpoint_step']} ({model.get('checkpoint', '?')})"
        )
    return f"{line}; {', '.join(context)}"


def _conditional_metrics(
    fake_features, real_features, fake_probs, labels, eval_labels, num_classes, class_names
) -> dict:
    per_class, skipped = {}, {}
    for c in range(num_classes):
        name = str(class_names[c]) if c < len(class_names) else str(c)
        fake_c, real_c = fake_features[labels == c], real_features[eval_labels == c]
        if len(fake_c) < 2 or len(real_c) < 2:
            skipped[name] = (
                f"{len(fake_c)} generated and {len(real_c)} real eval images (need >= 2 each)"
            )
            continue
        per_class[name] = metrics_lib.frechet_distance(fake_c, real_c)
    out = {
        "intra_frechet_distance": float(np.mean(list(per_class.values()))) if per_class else None,
        "per_class_frechet_distance": per_class,
        "per_class_skipped": skipped,
        "generated_label_accuracy": None,
    }
    if fake_probs is not None:
        # Probabilities of the domain classifier over the data's classes (labelled mode only).
        out["generated_label_accuracy"] = float(np.mean(np.argmax(fake_probs, axis=1) == labels))
    return out


# --------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------

# The scalar metrics logged to TensorBoard and printed by the standalone command.
SCALAR_METRICS = (
    "frechet_distance",
    "kid_mean",
    "kid_std",
    "classifier_score",
    "precision",
    "recall",
    "intra_frechet_distance",
    "generated_label_accuracy",
    "classifier_eval_accuracy",
)


def write_summaries(log_dir, metrics: dict, samples: np.ndarray | None, step: int) -> None:
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default(step=step):
        for prefix, values in [
            ("evaluate", metrics),
            *[
                (f"evaluate/{k}", v)
                for k, v in metrics.get("references", {}).items()
                if isinstance(v, dict)
            ],
        ]:
            for key in SCALAR_METRICS:
                value = values.get(key)
                if (
                    isinstance(value, (int, float))
                    and not isinstance(value, bool)
                    and math.isfinite(value)
                ):
                    tf.summary.scalar(f"{prefix}/{key}", value)
        if "gate" in metrics:
            tf.summary.scalar("evaluate/blessed", float(metrics["blessed"]))
        if samples is not None and len(samples):
            tf.summary.image("evaluate/samples", gan_images.make_grid(samples[:64])[None])
    writer.close()


def run_evaluate(config, workdir, out_dir) -> dict:
    """Scores the trained generator, decides the gate, writes out_dir/metrics.json and TensorBoard
    logs."""
    validate_config(config)
    workdir, out_dir = pathlib.Path(workdir), pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from gan_keras import tasks  # imports TensorFlow; lazily
    from pipeline import checkpoints

    if tasks.is_image_to_image(config.task):
        from pipeline.evaluate import task_eval

        return task_eval.run_task_evaluation(config, workdir, out_dir)
    # The best checkpoint by in-training FD when train.eval_every > 0, else the latest.
    generator, checkpoint_info = checkpoints.load_generator_with_info(config, workdir)
    conditional = bool(config.model.conditional)
    latent_dim = _latent_dim(generator, config)
    sample_fn = keras_sample_fn(
        generator, latent_dim, conditional, config.evaluate.sample_batch_size
    )
    model_info = {
        "source": "pipeline.checkpoints.load_generator",
        "weights_sha256": weights_fingerprint(generator),
        "latent_dim": latent_dim,
        **checkpoint_info,
    }
    metrics, samples = compute_metrics(
        config,
        workdir,
        sample_fn,
        conditional=conditional,
        num_classes=int(config.model.num_classes) or None,
        model_info=model_info,
        return_samples=True,
    )
    metrics["controls"] = control_metrics.evaluate_controls(
        config, workdir, generator, latent_dim, out_dir
    )
    ev = config.evaluate
    gate = decide_gate(metrics, ev.gate_metric, ev.threshold, workdir, ev.baseline_tolerance)
    metrics["blessed"] = gate.pop("blessed")
    metrics["gate"] = gate
    (logging.info if metrics["blessed"] else logging.warning)(
        "Gate: %s (%s)", "BLESSED" if metrics["blessed"] else "NOT blessed", gate["reason"]
    )
    # Into the training run's TensorBoard run, beside its HParams session: the HParams table then
    # compares runs by these metrics. At the step of the checkpoint scored.
    write_summaries(
        workdir_layout.train_dir(workdir) / checkpoints.LOGS_DIR,
        metrics,
        samples,
        step=int(checkpoint_info["checkpoint_step"]),
    )
    atomic.atomic_write_json(out_dir / workdir_layout.METRICS_FILE, metrics)
    logging.info(
        "Evaluation: %s", {k: metrics.get(k) for k in SCALAR_METRICS if metrics.get(k) is not None}
    )
    logging.info("Quality: %s", metrics["summary"])
    return metrics


def run(context) -> dict:
    """The stage as the runner calls it (pipeline.stages): `run_evaluate` into context.out_dir."""
    return run_evaluate(context.config, context.workdir, context.out_dir)


def _latent_dim(generator, config) -> int:
    try:
        shape = generator.inputs[0].shape
        if shape[-1] is not None:
            return int(shape[-1])
    except (AttributeError, IndexError, TypeError, ValueError):
        pass  # subclassed models have no symbolic inputs
    return int(config.model.latent_dim)


# --------------------------------------------------------------------------
# Standalone scoring of an export (command line: pipeline/evaluate_main.py)
# --------------------------------------------------------------------------


def evaluate_export(
    config, model_base_path, workdir, output=None, version: int | None = None
) -> dict:
    """Scores an exported generator (the highest version unless `version`); writes the metrics."""
    validate_config(config)
    base, workdir = pathlib.Path(model_base_path), pathlib.Path(workdir)
    if version is None:
        version = layout.latest_version(base)
        if version is None:
            raise FileNotFoundError(f"--model_base_path={base}: no integer version directories")
    model_dir = base / str(version)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir} does not exist")
    sample_fn, info = saved_model_sample_fn(model_dir, config.evaluate.sample_batch_size)
    model_info_path = layout.asset_path(model_dir, layout.MODEL_INFO_ASSET)
    exported = atomic.read_json(model_info_path) if model_info_path.exists() else {}
    num_classes = (exported.get("num_classes") or None) if info["conditional"] else None
    # Which training checkpoint the export holds (exports written since train.eval_every).
    checkpoint = {k: exported[k] for k in ("checkpoint", "checkpoint_step") if k in exported}
    metrics = compute_metrics(
        config,
        workdir,
        sample_fn,
        conditional=info["conditional"],
        num_classes=num_classes,
        model_info={**info, "version": version, **checkpoint},
    )
    output = (
        pathlib.Path(output)
        if output
        else workdir_layout.stage_dir(workdir, workdir_layout.EVALUATE)
        / f"standalone_{version}.json"
    )
    atomic.atomic_write_json(output, metrics)
    metrics["output"] = str(output)
    return metrics
