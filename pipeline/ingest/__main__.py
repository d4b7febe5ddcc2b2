r"""Runs the ingest stage on its own, outside the pipeline's runner (no manifest, no caching).

  python -m pipeline.ingest --config=configs/smoke.py --out_dir=/tmp/ingest \
      [--beam_arg=--direct_num_workers=2 ...]

Prints the record and reject counts; the artifacts are those of the ingest
stage (see pipeline.ingest.beam_ingest).
"""

import json

from absl import app, flags
from ml_collections import config_flags

from pipeline.ingest import beam_ingest

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "Pipeline config file.")
_OUT_DIR = flags.DEFINE_string(
    "out_dir", None, "Directory for the ingest artifacts.", required=True
)
_BEAM_ARGS = flags.DEFINE_multi_string(
    "beam_arg", [], "Extra Beam pipeline option, e.g. --beam_arg=--runner=DirectRunner."
)


def main(argv):
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments: {argv[1:]}")
    stats = beam_ingest.run_ingest(_CONFIG.value.data, _OUT_DIR.value, _BEAM_ARGS.value)
    keys = ("inputs_read", "records_written", "rejected", "num_shards")
    print(json.dumps({k: stats[k] for k in keys}, indent=2))


def console_main():
    app.run(main)


if __name__ == "__main__":
    console_main()
