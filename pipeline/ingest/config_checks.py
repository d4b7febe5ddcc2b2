"""Checks of the ingest stage's config section (`config.data`), done before any work."""

import os
import shlex

from gan_keras.storage import filesystem
from pipeline.ingest import sources

MIN_RESOLUTION = 8


def _check_number(config, field, kind, low=None, high=None, high_open=False):
    value = config.get(field)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(
            f"data.{field} must be {kind if isinstance(kind, type) else kind[0]}, got {value!r}"
        )
    if (low is not None and value < low) or (
        high is not None and (value >= high if high_open else value > high)
    ):
        hi = "" if high is None else f" and {'<' if high_open else '<='} {high}"
        raise ValueError(f"data.{field} must be >= {low}{hi}, got {value!r}")
    return value


def validate_data_config(data_config) -> None:
    """Raises ValueError naming the data.* field with a bad value. Reads no images."""
    sources.check_source(data_config.get("source"))
    _check_number(data_config, "resolution", int, MIN_RESOLUTION)
    channels = data_config.get("channels")
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ValueError(f"data.channels must be 1 or 3, got {channels!r}")
    _check_number(data_config, "eval_fraction", (float, int), 0, 1, high_open=True)
    _check_number(data_config, "max_pixels", int, 1)
    _check_number(data_config, "max_reject_fraction", (float, int), 0, 1)
    _check_number(data_config, "num_shards", int, 0)
    for field in ("tfds_data_dir", "beam_pipeline_args", "label_names"):
        if not isinstance(data_config.get(field, ""), str):
            raise ValueError(f"data.{field} must be a string, got {data_config.get(field)!r}")
    try:
        shlex.split(data_config.get("beam_pipeline_args", ""))
    except ValueError as e:
        raise ValueError(
            f"data.beam_pipeline_args cannot be split like a shell command line: {e}"
        ) from e
    tfds_dir = data_config.get("tfds_data_dir", "")
    if tfds_dir and filesystem.is_object_store(filesystem.check(tfds_dir, "data.tfds_data_dir")):
        raise ValueError(
            f"data.tfds_data_dir={tfds_dir!r}: TFDS data is read from a local directory only "
            "(TFDS would read gs:// through TensorFlow's GCS filesystem, which this pipeline "
            "does not use; see gan_keras/filesystem.py); copy the prepared dataset to a local "
            "directory, or export its images to a bucket and use data.source=folder:gs://..."
        )
    if tfds_dir and not os.path.isdir(tfds_dir):
        raise ValueError(f"data.tfds_data_dir {tfds_dir!r} is not a directory")
    if any(not n for n in label_names(data_config)):
        raise ValueError(f"data.label_names has an empty name: {data_config.get('label_names')!r}")


def label_names(data_config) -> list[str]:
    """data.label_names as a list ([] when unset: the source's own names are used)."""
    names = data_config.get("label_names", "")
    return [n.strip() for n in names.split(",")] if names.strip() else []
