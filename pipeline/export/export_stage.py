"""Export stage: writes the trained generator under ``<workdir>/export/generator``.

The evaluator's gate decides: a model whose ``evaluate/metrics.json`` says
``"blessed": false`` (or that was never evaluated) is not exported unless the
run is forced (``--force_export`` or ``config.export.force``). Versions are
written atomically (see gan_keras.export.sampling_model), so the stage writes in place and a
model server watching the directory picks the new version up.

The evaluate stage's detector (evaluate/detector/, when it trained one) becomes the version's
`detect` signature (gan_keras.export.detect_signature), its AUCs model_info.json's "detector".

The evaluation that let a model through is kept with it in
``<version>/assets.extra/evaluation.json``, and ``model_info.json`` there names
the training checkpoint exported (``checkpoint``: "best by in-training FD" or
"latest", ``checkpoint_step``), the one the evaluation scored.
"""

import json
import logging
import pathlib

from gan_keras import tasks
from gan_keras.export import layout
from gan_keras.export import sampling_model as gan_export
from pipeline import class_directions, classes, gate
from pipeline import workdir as workdir_layout
from pipeline.export import model_card


def validate_config(config) -> None:
    """Raises ValueError naming the first bad field the export stage reads."""
    latent_dim = config.model.latent_dim
    if not isinstance(latent_dim, int) or isinstance(latent_dim, bool) or latent_dim <= 0:
        raise ValueError(f"config.model.latent_dim must be a positive int, got {latent_dim!r}")
    num_classes = config.model.num_classes
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
        raise ValueError(f"config.model.num_classes must be an int >= 0, got {num_classes!r}")
    if not isinstance(config.model.conditional, bool):
        raise ValueError(
            f"config.model.conditional must be a bool, got {config.model.conditional!r}"
        )
    if not isinstance(config.export.force, bool):
        raise ValueError(f"config.export.force must be a bool, got {config.export.force!r}")


def run_export(
    config, workdir: pathlib.Path, out_dir: pathlib.Path, force_export: bool = False
) -> dict:
    """Exports the generator if the evaluator blessed it (or when forced).

    Returns {"exported": True, "version": v, "path": str} or
    {"exported": False, "reason": str}.
    """
    validate_config(config)
    workdir, out_dir = pathlib.Path(workdir), pathlib.Path(out_dir)
    forced = bool(force_export or config.export.force)
    metrics_path = workdir_layout.metrics_path(workdir)

    metrics_bytes = metrics_path.read_bytes() if metrics_path.exists() else None
    # Re-decided now, so a version exported after the evaluation still counts.
    blessed, reason = gate.check_blessing(workdir)
    if not blessed:
        if not forced:
            logging.warning(
                "Not exporting: %s. Use --force_export or --config.export.force=True "
                "to export anyway.",
                reason,
            )
            return {"exported": False, "reason": reason}
        logging.warning(
            "Exporting although the gate says no (%s), because the export is forced.", reason
        )

    num_classes = classes.resolve_num_classes(
        workdir_layout.ingest_dir(workdir),
        conditional=config.model.conditional,
        num_classes=config.model.num_classes,
    )
    from pipeline import checkpoints  # lazily: not needed to validate

    generator, checkpoint = checkpoints.load_generator_with_info(config, workdir)
    _check_evaluated_checkpoint(metrics_bytes, checkpoint)
    extra_assets = {
        layout.MODEL_CARD_ASSET: model_card.model_card_from_metrics_bytes(
            config, workdir, metrics_bytes, checkpoint
        )
    }
    if metrics_bytes is not None:
        extra_assets[layout.EVALUATION_ASSET] = metrics_bytes
    model_info = {
        "checkpoint": checkpoint["checkpoint"],
        "checkpoint_step": checkpoint["checkpoint_step"],
    }
    base_path = out_dir / workdir_layout.EXPORTED_MODEL_NAME
    if tasks.is_image_to_image(config.task):
        from gan_keras.export import transform_model

        version, path = transform_model.export_image_to_image(
            generator,
            base_path,
            task_config=config.task,
            extra_assets=extra_assets,
            model_info=model_info,
        )
    else:
        directions, direction_info = class_directions.export_directions(
            config, workdir, generator, num_classes, metrics_bytes
        )
        detector, detector_info = _evaluated_detector(workdir)
        version, path = gan_export.export_generator(
            generator,
            base_path,
            latent_dim=int(config.model.latent_dim),
            num_classes=num_classes,
            extra_assets=extra_assets,
            model_info={**model_info, **direction_info, **detector_info},
            directions=directions,
            detector=detector,
        )
    logging.info(
        "Exported generator version %d (checkpoint step %d, %s) to %s",
        version,
        checkpoint["checkpoint_step"],
        checkpoint["checkpoint"],
        path,
    )
    return {
        "exported": True,
        "version": version,
        "path": str(path),
        "forced": forced,
        "num_classes": num_classes,
        "checkpoint": checkpoint["checkpoint"],
        "checkpoint_step": checkpoint["checkpoint_step"],
    }


def run(context) -> dict:
    """The stage as the runner calls it (pipeline.stages): `run_export` into context.out_dir."""
    return run_export(
        context.config, context.workdir, context.out_dir, force_export=context.force_export
    )


def _evaluated_detector(workdir) -> tuple:
    """(the evaluate stage's detector or None, model_info.json's "detector" entry or {}): none
    when the evaluation trained none (evaluate.detector=False, or an older workdir); the
    export then has no `detect` signature."""
    from gan_keras.provenance import detector as detector_lib  # lazily: imports Keras

    stage = workdir_layout.stage_dir(workdir, workdir_layout.EVALUATE)
    found = detector_lib.load_detector(stage / detector_lib.STAGE_SUBDIR)
    if found is None:
        logging.info("No detector in %s: exporting without a detect signature", stage)
        return None, {}
    model, info = found
    keys = ("auc_clean", "auc_jpeg75", "auc_resize0.5", "weights_sha256")
    return model, {"detector": {k: info[k] for k in keys if k in info}}


def _check_evaluated_checkpoint(metrics_bytes: bytes | None, checkpoint: dict) -> None:
    """Warns when the checkpoint exported is not the one the evaluation scored."""
    if metrics_bytes is None:
        return
    try:
        evaluated = json.loads(metrics_bytes).get("model", {}).get("checkpoint_step")
    except (ValueError, AttributeError):
        return
    if evaluated is not None and evaluated != checkpoint["checkpoint_step"]:
        logging.warning(
            "Exporting the checkpoint of step %d, but evaluate/metrics.json scored step %d "
            "(training ran after the evaluation): rerun the evaluate stage",
            checkpoint["checkpoint_step"],
            evaluated,
        )
