"""The evaluate stage for image-to-image tasks (task.name != 'generate').

On the first `evaluate.num_samples` images of the ingested eval split, whose
conditions are derived with fixed seeds (so every run scores the same inputs),
each method's outputs are compared with the real images:

    model         the trained GAN generator (train/)
    l1_reference  the L1-only model of the same architecture and steps (train/l1_reference/)
    <baseline>    the classical method: bicubic upsampling (super_resolution),
                  harmonic fill (inpainting); translation has none

Per method: PSNR and SSIM (under `tasks.metric_protocol`: Y channel and a
`scale`-pixel border crop for super-resolution), L1, FD of the outputs against
the real eval images in the judge's features (pipeline.judge), PSNR inside the
hole for inpainting, and the judge's class accuracy on the outputs for labelled
data (next to its accuracy on the real images). The real floor (real train vs
real eval) is measured the same way. The top-level `frechet_distance`, `psnr`,
... are the model's, so the export gate works as for sampling models.
"""

import math
import time

import numpy as np
from absl import logging

from gan_keras import images as gan_images
from gan_keras import tasks
from gan_keras.evaluation import feature_scores as metrics_lib
from gan_keras.evaluation import image_scores
from gan_keras.storage import atomic
from gan_keras.tasks import baselines
from gan_keras.tasks import conditions as task_conditions
from gan_keras.training import image_to_image
from pipeline import checkpoints, judge
from pipeline import workdir as workdir_layout
from pipeline.gate import decide_gate

# Seeds the eval split's conditions apart from training's ([task.seed + start, index]) and
# the train stage's sample grids ([task.seed, 2**40 + i]).
EVAL_SEED_OFFSET = 1 << 41
GRID_EXAMPLES = 8


def _translate(generator, conditions: np.ndarray, batch_size: int) -> np.ndarray:
    out = [
        generator(conditions[i : i + batch_size], training=False).numpy()
        for i in range(0, len(conditions), batch_size)
    ]
    return np.clip(np.concatenate(out), -1.0, 1.0).astype(np.float32)


def _scores(
    task_config,
    outputs_uint8,
    real_uint8,
    conditions,
    judge_model,
    real_features,
    real_labels,
    protocol,
) -> dict:
    features, probs = judge_model.predict(outputs_uint8)
    result = {
        "psnr": float(np.mean(image_scores.psnr(outputs_uint8, real_uint8, **protocol))),
        "ssim": float(np.mean(image_scores.ssim(outputs_uint8, real_uint8, **protocol))),
        "l1": float(np.mean(image_scores.l1(outputs_uint8, real_uint8))),
        "frechet_distance": metrics_lib.frechet_distance(features, real_features),
    }
    if task_config.name == "inpainting":
        masks = np.asarray(task_conditions.mask_from_condition(conditions))
        result["hole_psnr"] = float(
            np.nanmean(image_scores.masked_psnr(outputs_uint8, real_uint8, masks))
        )
        result["hole_l1"] = float(np.nanmean(image_scores.l1(outputs_uint8, real_uint8, masks)))
    if probs is not None and real_labels.min() >= 0:
        result["classifier_accuracy"] = float(np.mean(np.argmax(probs, axis=1) == real_labels))
    return result


def _summary(task_name: str, methods: dict, floor_fd: float) -> str:
    model = methods["model"]
    others = [name for name in methods if name != "model"]

    def compare(metric, unit=""):
        parts = [
            f"{name} {methods[name][metric]:.3g}{unit}"
            for name in others
            if metric in methods[name]
        ]
        return f" ({', '.join(parts)})" if parts else ""

    line = (
        f"{task_name}: PSNR {model['psnr']:.3g} dB{compare('psnr', ' dB')}; "
        f"FD {model['frechet_distance']:.3g}{compare('frechet_distance')}, "
        f"real-data floor {floor_fd:.3g}"
    )
    if "hole_psnr" in model:
        line += f"; hole PSNR {model['hole_psnr']:.3g} dB{compare('hole_psnr', ' dB')}"
    return line


def run_task_evaluation(config, workdir, out_dir) -> dict:
    """Scores the task's model, its L1-only reference and its classical baseline; decides the
    gate; writes out_dir/metrics.json and out_dir/samples.png (condition | model | L1-only |
    baseline | real)."""
    start_time = time.time()
    ev, task_config = config.evaluate, config.task
    real = judge.read_real_data(config, workdir)
    judge_model = judge.load_judge(config, workdir, real)
    n = min(int(ev.num_samples), len(real.eval_images))
    real_uint8, real_labels = real.eval_images[:n], real.eval_labels[:n]
    real_float = gan_images.to_float(real_uint8)
    conditions = task_conditions.fixed_conditions(
        task_config, real_float, EVAL_SEED_OFFSET, ev.sample_batch_size
    )
    real_features, real_probs = judge_model.predict(real_uint8)
    protocol = tasks.metric_protocol(task_config)

    outputs, model_info = {}, {}
    generator, info = checkpoints.load_generator_with_info(config, workdir)
    outputs["model"] = _translate(generator, conditions, ev.sample_batch_size)
    model_info["model"] = {k: v for k, v in info.items() if k != "checkpoint_path"}
    reference_dir = workdir_layout.train_dir(workdir) / checkpoints.L1_REFERENCE_DIR
    if (reference_dir / "checkpoints").is_dir():
        reference, info = checkpoints.load_generator_with_info(
            config, workdir, checkpoints.L1_REFERENCE_DIR
        )
        outputs["l1_reference"] = _translate(reference, conditions, ev.sample_batch_size)
        model_info["l1_reference"] = {k: v for k, v in info.items() if k != "checkpoint_path"}
    baseline_name = tasks.TASKS.get(task_config.name).baseline
    if baseline_name is not None:
        outputs[baseline_name] = np.asarray(baselines.baseline(task_config, conditions), np.float32)

    methods = {}
    for name, images in outputs.items():
        logging.info("Scoring %s on %d eval images", name, n)
        methods[name] = _scores(
            task_config,
            gan_images.to_uint8(images),
            real_uint8,
            conditions,
            judge_model,
            real_features,
            real_labels,
            protocol,
        )
    floor_idx = np.random.default_rng([ev.seed, 3]).permutation(len(real.train_images))[:n]
    floor_features, _ = judge_model.predict(real.train_images[floor_idx])
    references = {
        "real_floor": {
            "description": "real train subset vs real eval",
            "frechet_distance": metrics_lib.frechet_distance(floor_features, real_features),
        }
    }
    if real_probs is not None and real_labels.min() >= 0:
        references["real_floor"]["classifier_accuracy"] = float(
            np.mean(np.argmax(real_probs, axis=1) == real_labels)
        )

    result = {
        **methods["model"],
        "task": task_config.to_dict(),
        "methods": methods,
        "references": references,
        "metric_protocol": protocol,
        "num_samples": n,
        "extractor": judge_model.name,
        "extractor_fingerprint": judge_model.fingerprint,
        "classifier": judge_model.info,
        "classifier_eval_accuracy": judge_model.eval_accuracy,
        "model": model_info["model"],
        "models": model_info,
        "seed": int(ev.seed),
    }
    result["summary"] = _summary(
        task_config.name, methods, references["real_floor"]["frechet_distance"]
    )
    # The memorisation rule is recorded as not applicable (no such measure for these tasks).
    gate = decide_gate(
        result,
        ev.gate_metric,
        ev.threshold,
        workdir,
        ev.baseline_tolerance,
        max_near_copy_share=getattr(ev, "max_near_copy_share", math.inf),
    )
    result["blessed"] = gate.pop("blessed")
    result["gate"] = gate
    result["seconds"] = round(time.time() - start_time, 3)

    out_dir.mkdir(parents=True, exist_ok=True)
    k = min(GRID_EXAMPLES, n)
    preview = gan_images.to_uint8(
        np.asarray(image_to_image.preview_condition(conditions[:k], real_uint8.shape[1:]))
    )
    columns = (
        [preview] + [gan_images.to_uint8(outputs[name][:k]) for name in outputs] + [real_uint8[:k]]
    )
    grid = np.stack(columns, axis=1).reshape(-1, *real_uint8.shape[1:])
    gan_images.save_png(out_dir / "samples.png", gan_images.make_grid(grid, rows=k))
    result["samples_columns"] = ["condition", *outputs, "real"]
    atomic.atomic_write_json(out_dir / workdir_layout.METRICS_FILE, result)
    logging.info("Quality: %s", result["summary"])
    (logging.info if result["blessed"] else logging.warning)(
        "Gate: %s (%s)", "BLESSED" if result["blessed"] else "NOT blessed", gate["reason"]
    )
    return result
