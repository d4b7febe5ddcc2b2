"""`python -m pipeline.ingest`, the ingest stage on its own, as a user runs it: the counts it
prints are those of the artifacts it wrote, and `--beam_arg` reaches Beam."""

import json
import subprocess
import sys

import pytest
from helpers import REPO

pytestmark = pytest.mark.slow


def _ingest(out_dir, *args):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.ingest",
            "--config=configs/smoke.py",
            f"--out_dir={out_dir}",
            *args,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_prints_the_counts_of_the_records_it_wrote(tmp_path):
    out_dir = tmp_path / "ingest"
    proc = _ingest(out_dir, "--beam_arg=--direct_num_workers=1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = json.loads(proc.stdout)
    stats = json.loads((out_dir / "stats.json").read_text())
    # scikit-learn's 1,797 digits, every one readable, in configs/smoke.py's 2 train shards
    # (the eval split, a fifth, is small enough for one).
    assert printed == {
        "inputs_read": 1797,
        "records_written": 1797,
        "rejected": 0,
        "num_shards": {"train": 2, "eval": 1},
    }
    assert {k: stats[k] for k in printed} == printed
    assert (len(stats["files"]["train"]), len(stats["files"]["eval"])) == (2, 1)
    for split in ("train", "eval"):
        for name in stats["files"][split]:
            assert (out_dir / name).stat().st_size > 0


def test_beam_arg_reaches_beam(tmp_path):
    # A runner Beam does not know is refused by Beam itself, by name: the flag was passed on.
    proc = _ingest(tmp_path / "ingest", "--beam_arg=--runner=NoSuchRunnerAnywhere")
    assert proc.returncode != 0
    assert "NoSuchRunnerAnywhere" in proc.stderr


def test_unexpected_arguments_are_refused(tmp_path):
    proc = _ingest(tmp_path / "ingest", "stray")
    assert proc.returncode != 0
    assert "unexpected arguments: ['stray']" in proc.stderr
    assert not (tmp_path / "ingest").exists()
