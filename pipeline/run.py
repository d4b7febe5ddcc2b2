r"""Runs the GAN pipeline: ingest -> train -> evaluate -> export.

  python -m pipeline.run --config=configs/fashion_mnist.py --workdir=runs/fmnist
  python -m pipeline.run --config=configs/smoke.py --workdir=/tmp/smoke \
      --stages=ingest,train --config.train.steps=200

Any config field can be overridden as --config.<section>.<field>=<value>; an
unknown field or a value of the wrong type fails before any work starts.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from gan_keras.storage import filesystem
from pipeline import runner, stages

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to an ml_collections config file.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory holding every stage's artifacts.")
_STAGES = flags.DEFINE_list(
    "stages",
    list(stages.names()),
    f"Stages to run, a subset of {','.join(stages.names())}; earlier stages' "
    "outputs are reused from the workdir.",
)
_FORCE = flags.DEFINE_bool("force", False, "Rerun the selected stages even if they are up to date.")
_FORCE_EXPORT = flags.DEFINE_bool(
    "force_export", False, "Export even if the evaluator's gate says no."
)
_BEAM_ARGS = flags.DEFINE_string(
    "beam_pipeline_args",
    "",
    "Apache Beam options for the ingest stage, passed unchanged to PipelineOptions, e.g. "
    "'--runner=FlinkRunner --flink_master=host:8081' or "
    "'--direct_num_workers=2 --direct_running_mode=multi_processing'.",
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        # Before anything touches it: `gs:/bucket` must not become a local folder named `gs:`.
        filesystem.check(_WORKDIR.value, "--workdir")
    except filesystem.PathError as e:
        raise app.UsageError(str(e)) from None
    import shlex

    import tensorflow as tf

    # TF's own INFO chatter (savers, signatures) drowns the pipeline's progress.
    tf.get_logger().setLevel("WARNING")

    unknown = [s for s in _STAGES.value if s not in stages.names()]
    if unknown:
        raise app.UsageError(
            f"--stages: unknown stage(s) {', '.join(unknown)}; "
            f"choose from {', '.join(stages.names())}"
        )
    pipeline_runner = runner.Runner(
        _CONFIG.value,
        _WORKDIR.value,
        force=_FORCE.value,
        force_export=_FORCE_EXPORT.value,
        beam_pipeline_args=shlex.split(_BEAM_ARGS.value),
    )
    try:
        results = pipeline_runner.run(_STAGES.value)
    except (stages.PipelineError, ValueError, FileNotFoundError, RuntimeError) as e:
        # An object-store workdir's errors name its objects, not this run's local working copy.
        message = pipeline_runner.shown(str(e))
        logging.error("%s", message)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)
    print(pipeline_runner.artifact_report())
    # The evaluate stage's summary is its metrics.json, also when it was up to date.
    quality = (results.get("evaluate") or {}).get("summary")
    if quality:
        print(f"Model quality:      {quality}")


def console_main():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main)


if __name__ == "__main__":
    console_main()
