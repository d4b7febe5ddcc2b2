"""Progress lines of the long loops: ingest, evaluate's sampling and features, the judge's
training (train's own line is tested in test_user_output.py)."""

import re

import numpy as np
import pytest
from helpers import small_config, write_ingest

from configs import smoke
from gan_keras import images, progress
from pipeline.evaluate import sample_fns, scoring
from pipeline.ingest import beam_ingest


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_progress_line_per_interval_with_rate_and_eta_and_always_the_last():
    clock, lines = _Clock(), []
    log = progress.ProgressLog(
        "evaluate: sampling", 1000, interval_s=10, log=lines.append, clock=clock
    )
    clock.now += 4
    log.add(200)  # within the interval: nothing
    assert lines == []
    clock.now += 6
    log.add(200, rejected=1)
    assert lines == [
        "evaluate: sampling: 400/1000 images (40%)  1 rejected  40 images/s  elapsed 0:10  ETA 0:15"
    ]
    clock.now += 1
    log.values = {"loss": 0.5}
    log.add(600, rejected=2)  # the last one is always logged, once
    log.add(0)
    assert lines[1:] == [
        "evaluate: sampling: 1000/1000 images (100%)  3 rejected  loss=0.5000  91 images/s  "
        "elapsed 0:11  done"
    ]
    assert progress.format_duration(3 * 3600 + 62) == "3:01:02"


@pytest.fixture
def every_update(monkeypatch):
    """Every update logs a line; the lines are collected."""
    lines = []
    monkeypatch.setattr(progress, "INTERVAL_S", 0.0)
    monkeypatch.setattr(progress.logging, "info", lambda fmt, *args: lines.append(fmt % args))
    return lines


def test_ingest_logs_inputs_read_records_rejects_rate_and_eta(tmp_path, every_update):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(300):
        pixels = rng.integers(0, 256, (16, 16, 1), dtype=np.uint8)
        (folder / f"{i:03d}.png").write_bytes(images.encode_png(pixels))
    (folder / "broken.png").write_bytes(b"not a png")
    config = smoke.get_config()
    config.data.source = f"folder:{folder}"
    config.data.max_reject_fraction = 0.5
    beam_ingest.run_ingest(config.data, tmp_path / "out")

    ingest_lines = [line for line in every_update if line.startswith("ingest: ")]
    assert len(ingest_lines) >= 2, every_update  # more than one work item: lines along the way
    assert re.fullmatch(
        r"ingest: \d+/301 inputs \(\d+%\)  \d+ records  \d+ rejected  \d+ inputs/s  "
        r"elapsed \d+:\d\d  ETA \d+:\d\d",
        ingest_lines[0],
    ), ingest_lines[0]
    assert re.fullmatch(
        r"ingest: 301/301 inputs \(100%\)  300 records  1 rejected  \d+ inputs/s  "
        r"elapsed \d+:\d\d  done",
        ingest_lines[-1],
    ), ingest_lines[-1]
    assert not beam_ingest._PROGRESS  # the run's progress is dropped when it ends


def test_evaluate_logs_sampling_features_and_the_judges_training(tmp_path, every_update):
    workdir = tmp_path / "work"
    train_x, train_y, _, _ = write_ingest(workdir, num_train=1500)
    config = small_config()
    config.evaluate.num_samples = 100
    config.evaluate.kid_subset_size = 50
    config.evaluate.classifier_min_steps = 20
    sample_fn = sample_fns.keras_sample_fn(
        _constant_generator(), latent_dim=8, conditional=False, batch_size=25
    )
    scoring.compute_metrics(config, workdir, sample_fn, conditional=False)

    def lines(prefix):
        return [line for line in every_update if line.startswith(prefix)]

    training = lines("judge: training: ")
    assert len(training) >= 20 and "ETA" in training[0] and "loss=" in training[0]
    assert training[-1].startswith("judge: training: 24/24 steps (100%)")  # 1500/64 = 24 steps
    sampling = lines("evaluate: sampling: ")
    assert [line.split("  ")[0] for line in sampling] == [
        f"evaluate: sampling: {n}/100 images ({n}%)" for n in (25, 50, 75, 100)
    ]
    for name in ("real eval images", "samples", "real floor", "noise ceiling"):
        assert lines(f"evaluate: domain_classifier features of {name}: "), name


def _constant_generator():
    """A 'generator' that needs no training: z -> 16x16 images from a fixed projection."""
    import keras

    keras.utils.set_random_seed(0)
    z = keras.Input((8,))
    out = keras.layers.Reshape((16, 16, 1))(keras.layers.Dense(256, activation="tanh")(z))
    return keras.Model(z, out)
