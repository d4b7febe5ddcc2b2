"""INGEST stage: images -> sharded GZIP TFRecords, statistics and a rejects report.

config_checks  `validate_data_config`: checks of `config.data`, done before any work
sources        source readers (idx:, folder:, tfds:, digits)
channels       how many channels a source's images have (configs/auto.py's data.channels)
preprocess     one input image -> one record (decode, convert, resize, encode)
statistics     the run's statistics: one Beam CombineFn and stats.json's summary
beam_ingest    the Apache Beam pipeline and the stage's run
__main__       `python -m pipeline.ingest`: the stage alone, outside the runner
"""

from pipeline.ingest.beam_ingest import run, validate_config

__all__ = ["run", "validate_config"]
