"""Image-to-image tasks through `python -m pipeline.run`, as users run them: the workdir
contract, metrics beside their references, and the exported signature's input checks."""

import json

import numpy as np
import pytest
import tensorflow as tf
from helpers import copy_ingest_and_judge, run_pipeline

# Small and quick: 16x16 digits, 40 steps for the model and for its L1-only reference.
TASK_FLAGS = [
    "--config.train.steps=40",
    "--config.train.log_every=20",
    "--config.train.sample_every=40",
    "--config.train.checkpoint_every=40",
    "--config.train.ema_half_life_images=0",
    "--config.model.batch_norm_momentum=0.5",
    "--config.evaluate.num_samples=200",
]

CASES = {
    "super_resolution": (
        # With configs/fashion_mnist_sr.py's EMA generator, whose BatchNorm statistics are
        # re-estimated on training conditions before it samples, is saved and is exported.
        [
            "--config.task.name=super_resolution",
            "--config.task.scale=2",
            "--config.train.ema_half_life_images=500",
            "--config.train.ema_rampup=0.05",
        ],
        {"image": [8, 8, 1]},
        "bicubic_upsample",
    ),
    "inpainting": (
        ["--config.task.name=inpainting", "--config.task.hole=random_box"],
        {"image": [16, 16, 1], "mask": [16, 16, 1]},
        "classical_fill",
    ),
    "translation": (
        ["--config.task.name=translation", "--config.task.source=edges"],
        {"image": [16, 16, 1]},
        None,
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "task",
    # Inpainting (a classical baseline and the hole's own PSNR) runs in the default suite, so
    # pipeline.evaluate.task_eval is tested there; the other two are `heavy`.
    [t if t == "inpainting" else pytest.param(t, marks=pytest.mark.heavy) for t in CASES],
)
def test_task_runs_end_to_end_with_its_references(task, smoke_workdir, tmp_path):
    flags, inputs, baseline = CASES[task]
    workdir = copy_ingest_and_judge(smoke_workdir, tmp_path / "work")
    run_pipeline(workdir, *TASK_FLAGS, *flags)

    assert any((workdir / "train" / "checkpoints").glob("*.index"))
    train_config = json.loads((workdir / "train" / "manifest.json").read_text())["config"]
    ema_flags = [f for f in flags if "ema_half_life_images" in f]
    assert (train_config["train.ema_half_life_images"] > 0) == bool(ema_flags)
    assert any((workdir / "train" / "l1_reference" / "checkpoints").glob("*.index"))
    assert (workdir / "train" / "samples" / "step_0000040.png").exists()
    metrics = json.loads((workdir / "evaluate" / "metrics.json").read_text())
    expected_methods = {"model", "l1_reference"} | ({baseline} if baseline else set())
    assert set(metrics["methods"]) == expected_methods
    for name, scores in metrics["methods"].items():
        for key in ("psnr", "ssim", "l1", "frechet_distance"):
            assert np.isfinite(scores[key]), (name, key)
        assert ("hole_psnr" in scores) == (task == "inpainting")
    assert metrics["frechet_distance"] == metrics["methods"]["model"]["frechet_distance"]
    assert metrics["references"]["real_floor"]["frechet_distance"] < metrics["frechet_distance"]
    assert metrics["summary"].startswith(f"{task}: PSNR")
    assert (workdir / "evaluate" / "samples.png").exists()

    version = workdir / "export" / "generator" / "1"
    info = json.loads((version / "assets.extra" / "model_info.json").read_text())
    assert info["task"]["name"] == task and info["inputs"] == inputs
    model = tf.saved_model.load(str(version))
    signature = model.signatures["serving_default"]
    feed = {name: tf.zeros([2, *shape], tf.uint8) for name, shape in inputs.items()}
    images = signature(**feed)["images"]
    assert images.dtype == tf.uint8 and images.shape == (2, 16, 16, 1)
    if task == "inpainting":
        # Known pixels come back as they were sent; only the hole is generated.
        image = np.random.default_rng(0).integers(0, 256, (1, 16, 16, 1), dtype=np.uint8)
        mask = np.zeros((1, 16, 16, 1), np.uint8)
        mask[:, 4:10, 4:10] = 255
        out = signature(image=tf.constant(image), mask=tf.constant(mask))["images"].numpy()
        np.testing.assert_array_equal(out[mask == 0], image[mask == 0])
    wrong = {name: tf.zeros([2, 5, 5, 1], tf.uint8) for name in inputs}
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"image must have shape \[N, " + ", ".join(map(str, inputs["image"])),
    ):
        signature(**wrong)
