"""A failing stage keeps what it learned, through `python -m pipeline.run` as users run it."""

import json
import re

import numpy as np
import pytest
from helpers import run_pipeline
from PIL import Image

# Runs the ingest stage end to end, twice.
pytestmark = pytest.mark.slow


def _folder(root, num_good: int, num_bad: int):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(num_good):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(root / f"{i}.png")
    for i in range(num_bad):
        (root / f"bad{i}.png").write_bytes(b"not an image")


def _ingest(workdir, root, *args):
    return run_pipeline(
        workdir,
        "--stages=ingest",
        f"--config.data.source=folder:{root}",
        "--config.data.resolution=16",
        "--config.data.max_reject_fraction=0.1",
        *args,
        check=False,
    )


def test_failed_ingest_keeps_report_and_statistics_beside_the_good_ingest(tmp_path):
    root, workdir = tmp_path / "images", tmp_path / "work"
    _folder(root, num_good=40, num_bad=1)
    first = _ingest(workdir, root)
    assert first.returncode == 0, first.stderr[-3000:]
    good_manifest = (workdir / "ingest" / "manifest.json").read_text()

    # Now too many rejects: 5 of 45 inputs (11%) > 10%. (--force: the cache key is the
    # config, which names the folder, not its contents.)
    _folder(root, num_good=0, num_bad=5)
    result = _ingest(workdir, root, "--force")
    assert result.returncode == 1
    failed = workdir / "ingest.failed"
    stats = json.loads((failed / "stats.json").read_text())
    assert stats["inputs_read"] == 45 and stats["rejected"] == 5 and stats["records_written"] == 40
    rejected = [json.loads(line) for line in (failed / "rejected.jsonl").read_text().splitlines()]
    assert sorted(r["source_id"].rsplit("/", 1)[-1] for r in rejected) == [
        f"bad{i}.png" for i in range(5)
    ]
    manifest = json.loads((failed / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "max_reject_fraction" in manifest["error"]

    # The error names paths that exist, never the deleted temporary directory.
    error = result.stderr[result.stderr.rindex("error:") :]
    assert str(failed / "rejected.jsonl") in error
    for path in re.findall(r"(/\S+?)(?:[,;)]|\s|$)", error):
        assert ".tmp-" not in path, error
    # The previous good ingest is untouched.
    assert (workdir / "ingest" / "manifest.json").read_text() == good_manifest

    # A later success clears the stale failure.
    ok = _ingest(workdir, root, "--config.data.max_reject_fraction=0.2")
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert not failed.exists()
    assert json.loads((workdir / "ingest" / "stats.json").read_text())["rejected"] == 5


def test_any_staged_stage_that_fails_keeps_its_partial_output(tmp_path, monkeypatch):
    # The mechanism the evaluate stage relies on too, on a stage registered for the test.
    from configs import smoke
    from pipeline import runner, stages

    def failing_run(context):
        (context.out_dir / "report.json").write_text('{"found": 3}')
        raise ValueError(f"3 problems, details in {context.out_dir / 'report.json'}")

    registry = dict(stages._REGISTRY)
    monkeypatch.setattr(stages, "_REGISTRY", registry)
    registry.clear()
    stages.register(
        stages.Stage(
            name="check",
            sections=("evaluate",),
            inputs=(),
            outputs=("report.json",),
            staged=True,
            validate=lambda config: None,
            run=failing_run,
        )
    )
    workdir = tmp_path / "work"
    (workdir / "check").mkdir(parents=True)
    (workdir / "check" / "report.json").write_text('{"found": 0}')  # a previous good output
    with pytest.raises(ValueError, match="3 problems") as error:
        runner.Runner(smoke.get_config(), workdir).run(["check"])
    failed = workdir / "check.failed"
    assert str(failed / "report.json") in str(error.value) and ".tmp-" not in str(error.value)
    assert json.loads((failed / "report.json").read_text()) == {"found": 3}
    assert json.loads((failed / "manifest.json").read_text())["status"] == "failed"
    assert json.loads((workdir / "check" / "report.json").read_text()) == {"found": 0}
