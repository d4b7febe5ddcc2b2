"""A generator made to memorise is refused by the gate's memorisation rule (pipeline.gate).

Twelve training images (8 scikit-learn digits per class, 80% of them held out as eval images),
the smoke DCGAN trained on them for 3,000 steps at a high learning rate: its samples are
noisy copies of the training images (nearest_neighbours.png shows them). Ingest, train and
evaluate run as the pipeline runs them, with the shipped default threshold. Measured: ~0.58 of
its samples sit closer to a training image than 95% of real eval images do (the smoke model:
0.0, the Fashion-MNIST demo: 0.011), against the default 0.2. ~55 s on 2 shared cores.
"""

import json

import numpy as np
import pytest
from PIL import Image

from configs import default, smoke
from pipeline import gate, runner
from pipeline.evaluate import control_plots

pytestmark = pytest.mark.slow

PER_CLASS = 8
STEPS = 3000


def _digit_folder(folder):
    from sklearn import datasets

    digits = datasets.load_digits()
    x = np.kron(digits.images, np.ones((2, 2)))  # 8x8 -> 16x16
    x = np.clip(np.round(x * 255.0 / 16.0), 0, 255).astype(np.uint8)
    for c in range(10):
        (folder / str(c)).mkdir(parents=True)
        for i in np.flatnonzero(digits.target == c)[:PER_CLASS]:
            Image.fromarray(x[i]).save(folder / str(c) / f"{i}.png")


def _memorising_config(folder):
    config = smoke.get_config()
    config.data.source = f"folder:{folder}"
    config.data.eval_fraction = 0.8  # few training images, enough real ones to compare with
    config.data.num_shards = 1
    train = config.train
    train.strategy = "default"
    train.steps = STEPS
    train.batch_size = 8
    train.g_learning_rate = train.d_learning_rate = 1e-3
    train.checkpoint_every = train.sample_every = STEPS
    train.log_every = 500
    train.ema_half_life_images = train.ema_rampup = 0.0
    ev = config.evaluate
    ev.num_samples = 200
    ev.classifier_min_steps = 100
    ev.kid_subset_size = 50
    ev.classifier_score_splits = 5
    ev.projection_images = 0
    ev.truncation_psis = (1.0,)
    assert ev.max_near_copy_share == default.get_config().evaluate.max_near_copy_share
    return config


def test_the_gate_refuses_a_generator_that_memorised_its_training_images(tmp_path):
    _digit_folder(tmp_path / "digits")
    workdir = tmp_path / "work"
    runner.Runner(_memorising_config(tmp_path / "digits"), workdir).run(
        ["ingest", "train", "evaluate"]
    )
    metrics = json.loads((workdir / "evaluate" / "metrics.json").read_text())
    stats = json.loads((workdir / "ingest" / "stats.json").read_text())
    assert stats["splits"]["train"]["count"] <= 16
    near = metrics["controls"]["nearest_neighbours"]
    share = near[gate.MEMORISATION_MEASURE]
    assert share > 2 * gate.DEFAULT_MAX_NEAR_COPY_SHARE, near
    assert metrics["blessed"] is False
    reason = metrics["gate"]["reason"]
    assert reason.startswith(f"memorisation: {gate.MEMORISATION_FIELD}={share:.6g}")
    assert control_plots.NEIGHBOURS_PLOT in reason
    pairs = near["closest_pairs"]
    assert len(pairs) == 5 and all(
        0 <= p["train"] < stats["splits"]["train"]["count"] for p in pairs
    )
    assert f"({pairs[0]['sample']}, {pairs[0]['train']})" in reason
    assert (workdir / "evaluate" / control_plots.NEIGHBOURS_PLOT).is_file()
    # The export stage's re-decision agrees, with and without its own rule.
    assert gate.check_blessing(workdir) == (False, reason)
    assert gate.check_blessing(workdir, gate.DEFAULT_MAX_NEAR_COPY_SHARE)[0] is False
    # The same evaluation with the rule off would have been blessed: the rule is what refuses.
    assert gate.check_blessing(workdir, float("inf"))[0] is True
