r"""Scores an exported generator against a workdir's ingested data, outside the pipeline's runner.

  python -m pipeline.evaluate --model_base_path=<workdir>/export/generator \
      --workdir=<workdir> [--config=configs/smoke.py] [--output=metrics.json] [--version=N]

Prints the metrics and the one-line quality summary and writes the metrics JSON
(default <workdir>/evaluate/standalone_<version>.json); the library call is
pipeline.evaluate.generator_eval.evaluate_export.
"""

from absl import app, flags
from ml_collections import config_flags

from pipeline.evaluate import generator_eval, tensorboard_logs

_MODEL_BASE_PATH = flags.DEFINE_string(
    "model_base_path", None, "Exported generator base path (integer version dirs).", required=True
)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Pipeline workdir with ingest/ (the real data).", required=True
)
_OUTPUT = flags.DEFINE_string(
    "output", "", "Metrics JSON path (default workdir/evaluate/standalone_<version>.json)."
)
_VERSION = flags.DEFINE_integer("version", None, "Version to score (default: the highest).")
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file (default: configs/default.py).", lock_config=True
)


def main(argv):
    del argv
    from configs import default

    config = _CONFIG.value if _CONFIG.value is not None else default.get_config()
    metrics = generator_eval.evaluate_export(
        config, _MODEL_BASE_PATH.value, _WORKDIR.value, _OUTPUT.value or None, _VERSION.value
    )
    summary = {
        k: metrics.get(k)
        for k in ("extractor", "num_samples", "num_real", *tensorboard_logs.SCALAR_METRICS)
        if metrics.get(k) is not None
    }
    for key, value in summary.items():
        print(f"{key}: {value}")
    print(f"summary: {metrics['summary']}")
    print(f"written to {metrics['output']}")


def console_main():
    app.run(main)


if __name__ == "__main__":
    console_main()
