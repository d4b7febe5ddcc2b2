"""Local atomic writes: JSON of the values the pipeline writes (numpy, paths), and a write that
fails leaves the good file as it was, with no temporary file beside it."""

import json
import os
import pathlib

import numpy as np
import pytest

from gan_keras.storage import atomic, filesystem


def test_numpy_values_and_paths_are_written_as_plain_json(tmp_path):
    path = tmp_path / "out" / "values.json"
    atomic.atomic_write_json(
        path,
        {
            "fd": np.float32(1.5),
            "step": np.int64(3),
            "grid": np.arange(4).reshape(2, 2),
            "local": pathlib.Path("/runs/a"),
            "bucket": filesystem.ObjectPath("gs://bucket//runs/a/"),
        },
    )
    assert json.loads(path.read_text()) == {
        "bucket": "gs://bucket/runs/a",
        "fd": 1.5,
        "grid": [[0, 1], [2, 3]],
        "local": "/runs/a",
        "step": 3,
    }
    assert path.read_text().endswith("}\n")


def test_a_value_json_cannot_hold_is_named_and_the_good_file_is_kept(tmp_path):
    path = tmp_path / "values.json"
    atomic.atomic_write_json(path, {"fd": 1.0})
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        atomic.atomic_write_json(path, {"fd": object()})
    assert json.loads(path.read_text()) == {"fd": 1.0}
    assert os.listdir(tmp_path) == ["values.json"]


def test_a_write_that_fails_midway_leaves_no_half_file(tmp_path, monkeypatch):
    path = tmp_path / "values.json"
    atomic.atomic_write_text(path, "good\n")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic.atomic_write_text(path, "half")
    assert path.read_text() == "good\n"
    assert os.listdir(tmp_path) == ["values.json"]
