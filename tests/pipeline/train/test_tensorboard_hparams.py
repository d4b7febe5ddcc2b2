"""Evaluate's metrics in the training run's TensorBoard run, beside its HParams session, so the
HParams dashboard compares runs by FD; the printed command opens the whole workdir."""

import json

import pytest
import tensorflow as tf
from tensorboard import context as tb_context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import backend_context
from tensorboard.plugins.hparams import metadata as hparams_metadata

from configs import smoke
from pipeline import runner

# The module fixture runs ingest, train and evaluate.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def evaluated_workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hparams") / "work"
    config = smoke.get_config()
    config.train.strategy = "default"
    config.train.steps = 20
    config.train.checkpoint_every = config.train.sample_every = config.train.log_every = 10
    ev = config.evaluate
    ev.num_samples, ev.kid_subset_size, ev.classifier_min_steps = 200, 100, 50
    ev.controls = False
    runner.Runner(config, workdir).run(["ingest", "train", "evaluate"])
    return workdir


def _events(log_dir):
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        yield from tf.compat.v1.train.summary_iterator(str(path))


def test_the_training_run_holds_the_hparams_session_and_evaluates_metrics(evaluated_workdir):
    metrics = json.loads((evaluated_workdir / "evaluate" / "metrics.json").read_text())
    tags = {}
    for event in _events(evaluated_workdir / "train" / "logs"):
        for value in event.summary.value:
            tags.setdefault(value.tag, []).append((event.step, value))
    assert hparams_metadata.SESSION_START_INFO_TAG in tags
    [(step, fd)] = tags["evaluate/frechet_distance"]
    # At the step of the checkpoint scored, with the value metrics.json holds.
    assert step == metrics["model"]["checkpoint_step"] == 20
    assert float(tf.make_ndarray(fd.tensor)) == pytest.approx(metrics["frechet_distance"], 1e-6)
    assert "evaluate/real_floor/frechet_distance" in tags and "train/d_loss" in tags
    assert not (evaluated_workdir / "evaluate" / "logs").exists()


def test_the_hparams_dashboard_lists_evaluates_fd_as_a_metric_of_the_run(evaluated_workdir):
    # What TensorBoard's HParams plugin computes for `tensorboard --logdir <workdir>`.
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(evaluated_workdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(evaluated_workdir))
    hparams = backend_context.Context(
        base_plugin.TBContext(logdir=str(evaluated_workdir), data_provider=provider)
    )
    ctx = tb_context.RequestContext()
    run_to_tag = hparams.hparams_metadata(ctx, "")
    assert [
        run for run, t in run_to_tag.items() if hparams_metadata.SESSION_START_INFO_TAG in t
    ] == ["train/logs"]
    experiment = hparams.experiment_from_metadata(
        ctx, "", True, run_to_tag, hparams.hparams_from_data_provider(ctx, "", None)
    )
    metrics = {(m.name.group, m.name.tag) for m in experiment.metric_infos}
    assert ("", "evaluate/frechet_distance") in metrics
    assert "train.steps" in {h.name for h in experiment.hparam_infos}


def test_the_printed_command_opens_the_whole_workdir(evaluated_workdir):
    report = runner.artifact_report(evaluated_workdir)
    assert f"--logdir {evaluated_workdir.resolve()} --port 6006" in report
