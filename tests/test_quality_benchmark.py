"""The quality benchmark's bookkeeping: budgets, comparisons at equal images, targets."""

import pytest

from benchmarks import quality


def _run(points, rate=1000.0):
    return {
        "snapshots": [
            {"seconds": s, "images": i, "fd": fd, "fd_raw": raw} for s, i, fd, raw in points
        ],
        "images_per_second": rate,
    }


REFERENCES = {
    "judge_fingerprint": "f",
    "judge_test_accuracy": 0.91,
    "real_floor": 0.2,
    "noise_ceiling": 100.0,
}


@pytest.fixture(autouse=True)
def _flags():
    from absl import flags

    flags.FLAGS(["quality"], known_only=True)


def test_targets_compare_with_the_reference_at_its_images_budget():
    results = {
        # The reference reaches FD 8 at 300k images, after 900 s.
        "article_dcgan": [_run([(300, 90_000, 20.0, 20.0), (900, 300_000, 8.0, 8.0)], rate=330)]
        * 2,
        # A default that has FD 6 at 300 s and 3.5 at 300k images, EMA better than raw.
        "default": [
            _run([(150, 150_000, 12.0, 13.0), (280, 300_000, 3.5, 4.0), (300, 320_000, 3.4, 3.9)])
        ],
    }
    table, summary = quality.summarize(results, REFERENCES, seconds=300, images=300_000)
    assert summary["reference_fd_at_images"] == 8.0
    targets = {t["target"].split(" (")[0]: t for t in summary["targets"]}
    assert all(t["met"] for t in summary["targets"]), summary["targets"]
    assert summary["rows"]["default"]["fd_at_seconds"][0] == 3.4
    assert summary["rows"]["default"]["fd_at_images"][0] == 3.5
    assert len(targets) == 3
    assert "| default | 1 |" in table and "MET" in table


def test_a_default_worse_than_half_the_reference_at_equal_images_misses_the_target():
    results = {
        "article_dcgan": [_run([(900, 300_000, 8.0, 8.0)], rate=330)],
        "default": [_run([(300, 300_000, 5.0, 4.0)])],
    }
    _, summary = quality.summarize(results, REFERENCES, seconds=300, images=300_000)
    met = [t["met"] for t in summary["targets"]]
    # 5.0 <= 8.0 (time target) but 5.0 > 0.5 x 8.0, and the export (5.0) is worse than raw G (4.0).
    assert met == [True, False, False]


def test_snapshot_lookups():
    snaps = _run([(30, 10_000, 50.0, 50.0), (60, 20_000, 30.0, 31.0), (95, 30_000, 20.0, 22.0)])[
        "snapshots"
    ]
    assert quality.at_seconds(snaps, 60)["fd"] == 30.0
    assert quality.at_seconds(snaps, 90)["fd"] == 30.0  # the last snapshot within the budget
    assert quality.at_images(snaps, 30_000)["fd"] == 20.0
    assert (
        quality.at_images(snaps, 25_000)["fd"] == 20.0
    )  # reached within the batch that crossed it
    assert quality.at_images(snaps, 40_000) is None
    assert quality.seconds_to_reach(snaps, 30.0) == 60
    assert quality.seconds_to_reach(snaps, 1.0) is None


def test_candidate_rows_are_config_overrides():
    row = quality.parse_candidate(
        "wide:model.g_width=64,train.g_learning_rate=4e-4,model.spectral_norm=True"
    )
    assert row.overrides == {
        "model.g_width": 64,
        "train.g_learning_rate": 4e-4,
        "model.spectral_norm": True,
    }
    config = quality.row_config(row, seed=2, data_dir="/data")
    assert (
        config.model.g_width == 64 and config.train.seed == 2 and config.data.source == "idx:/data"
    )
    with pytest.raises(ValueError, match="name:field=value"):
        quality.parse_candidate("no-overrides")
    with pytest.raises(ValueError, match="model.nope"):
        quality.row_config(quality.parse_candidate("x:model.nope=1"), seed=0, data_dir="/data")
