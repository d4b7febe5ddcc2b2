"""EVALUATE stage for sampling models: scores the trained generator and decides the export gate.

Samples `config.evaluate.num_samples` images from the trained generator (the
best checkpoint by in-training FD, else the latest) and scores them against
the real eval split with the judge (pipeline.evaluate.scoring: Frechet
distance, KID, classifier score, precision/recall, the real floor and noise
ceiling, the one-line summary of pipeline.evaluate.summary), measures the
export's controls (pipeline.evaluate.control_metrics), decides the export
gate (pipeline.gate) and writes metrics.json and TensorBoard logs
(pipeline.evaluate.tensorboard_logs). It also trains a detector of the generator's
samples (pipeline.evaluate.detector_eval: evaluate/detector/, which the export ships as the
`detect` signature). Image-to-image tasks go to pipeline.evaluate.task_eval.

Library: `run_evaluate(config, workdir, out_dir)` (the stage; `run(context)` is
the runner's hook), `validate_config(config)`, `evaluate_export(...)`.

Standalone scoring of an exported generator (the command line is
pipeline/evaluate/__main__.py):

    python -m pipeline.evaluate --model_base_path=<workdir>/export/generator \\
        --workdir=<workdir> [--config=configs/smoke.py] [--output=metrics.json]
"""

import math
import pathlib

from absl import logging

from gan_keras.evaluation import feature_extractors
from gan_keras.export import layout
from gan_keras.storage import atomic
from pipeline import judge
from pipeline import workdir as workdir_layout
from pipeline.evaluate import control_metrics, detector_eval
from pipeline.evaluate.sample_fns import keras_sample_fn, saved_model_sample_fn, weights_fingerprint
from pipeline.evaluate.scoring import compute_metrics
from pipeline.evaluate.tensorboard_logs import SCALAR_METRICS, write_summaries
from pipeline.gate import GATE_METRICS, decide_gate, training_health

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
        and not math.isnan(ev.threshold)
        and ev.threshold != -math.inf,
        "threshold",
        "must be a number (inf = no threshold; -inf would refuse every model)",
    )
    need(
        isinstance(ev.baseline_tolerance, (int, float)) and ev.baseline_tolerance >= 0,
        "baseline_tolerance",
        "must be a number >= 0",
    )
    near_copies = getattr(ev, "max_near_copy_share", None)
    need(
        isinstance(near_copies, (int, float))
        and not isinstance(near_copies, bool)
        and (0.0 <= near_copies <= 1.0 or near_copies == math.inf),
        "max_near_copy_share",
        "must be a share in [0, 1] (the memorisation rule), or inf to turn the rule off",
    )
    detector_eval.validate_config(config, need)
    control_metrics.validate_config(config)


# --------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------


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
    # A classifier telling this generator's samples from real images: metrics.json's
    # "detector" (its AUCs), and evaluate/detector/, which the export ships as `detect`.
    metrics["detector"] = detector_eval.run_detector(
        config,
        workdir,
        out_dir,
        sample_fn,
        samples,
        conditional=conditional,
        num_classes=int(config.model.num_classes) or None,
    )
    metrics["training_health"] = training_health(workdir)
    ev = config.evaluate
    gate = decide_gate(
        metrics,
        ev.gate_metric,
        ev.threshold,
        workdir,
        ev.baseline_tolerance,
        max_near_copy_share=ev.max_near_copy_share,
    )
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
# Standalone scoring of an export (command line: pipeline/evaluate/__main__.py)
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
