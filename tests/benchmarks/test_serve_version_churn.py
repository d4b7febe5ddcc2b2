"""benchmarks.serve_version_churn: its wrong-version check (benchmarks.serve_churn_pushes), and a
short run of the real thing (server subprocess, pushes, label moves, clients) that must lose
nothing and unload what it pushed past."""

import subprocess
import sys

import helpers
import pytest

from benchmarks import serve_version_churn as churn
from benchmarks import serving_demo
from benchmarks.serve_churn_clients import Record
from benchmarks.serve_churn_pushes import Timeline, check
from gan_keras.export import layout

INF = float("inf")


def _starting_timeline() -> Timeline:
    """stable -> 1, canary -> 2, latest 2, from the start and never changed."""
    timeline = Timeline()
    for target, version in (("stable", 1), ("canary", 2), ("latest", 2)):
        timeline.change(target, version, -INF)
    return timeline


def test_a_version_is_right_only_if_its_target_named_it_during_the_request():
    timeline = _starting_timeline()
    timeline.change("stable", 2, 10.0)  # written at 10 s...
    timeline.confirm("stable", 2, 12.0)  # ...seen applied at 12 s
    assert timeline.allowed("stable", 0.0, 9.9) == {1}
    assert timeline.allowed("stable", 9.0, 11.0) == {1, 2}
    assert timeline.allowed("stable", 11.5, 11.6) == {1, 2}  # applied, or not yet
    assert timeline.allowed("stable", 12.5, 13.0) == {2}
    assert timeline.allowed("canary", 12.5, 13.0) == {2}
    records = [
        Record("stable", 12.5, 13.0, 2, None),
        Record("stable", 12.5, 13.0, 1, None),  # sent after the move was applied
        Record("canary", 5.0, 6.0, 1, None),  # canary never named 1
        Record("latest", 5.0, 6.0, None, "404: not found"),
    ]
    result = check(records, timeline)
    assert (result["failed"], result["wrong_version"]) == (1, 2)
    assert result["by_target"]["stable"] == {
        "requests": 2,
        "failed": 0,
        "wrong_version": 1,
        "versions_answering": 2,
    }


@pytest.fixture(scope="module")
def export_version(tmp_path_factory):
    base = serving_demo.export_demo_generator(tmp_path_factory.mktemp("export"))
    return layout.version_dir(base)


@pytest.mark.slow
@pytest.mark.parametrize(
    "policy,api",
    [
        ("specific", "rest"),  # moves labels off versions it drops: what found the 404 race
        # ~15 s more of the suite's 15 minutes for a mode with no label moves: `-m heavy`.
        pytest.param("latest", "grpc", marks=pytest.mark.heavy),
    ],
)
def test_pushes_and_label_moves_under_two_clients_lose_nothing(
    export_version, tmp_path, policy, api
):
    trace = {}
    row = churn.run(
        tmp_path,
        export_version,
        churn=True,
        seconds=120.0,  # a limit: the run ends after the pushes
        pushes=3,
        client_threads=2,
        push_interval=0.2,
        policy=policy,
        keep=2,
        api=api,
        poll_seconds=0.5,
        warmup_seconds=1.0,
        rss_interval=0.5,
        wait_seconds=60.0,
        trace=trace,
    )
    assert row["churn_error"] is None and row["settle_error"] is None
    assert row["failed"] == 0, row["first_failed"]
    assert row["wrong_version"] == 0, row["first_wrong_version"]
    # The churn really happened: 3 versions pushed, the labels moved, old versions unloaded...
    assert row["versions_pushed"] == 3
    # specific: stable moves on the 2nd push (to 3) and the list keeps stable and canary;
    # latest: stable also moves before each push that would unload it, and 2 newest stay.
    if policy == "specific":
        assert row["label_changes"] == {"stable": 1, "canary": 3}
        assert row["final_versions"] == [3, 5]
    else:
        assert row["label_changes"] == {"stable": 3, "canary": 3}
        assert row["final_versions"] == [4, 5]
    assert row["versions_unloaded"] == 3 and row["unloads_logged"] == 3
    # ...under the clients: the answers came from several versions, and a checker that
    # believed nothing ever moved would have found wrong ones among them.
    assert row["by_target"]["canary"]["versions_answering"] >= 2
    assert check(trace["records"], _starting_timeline())["wrong_version"] > 0
    assert row["requests"] > 0 and row["rss_mb"]["start"] > 0


def test_imports_beside_the_benchmarks_that_define_the_same_flag_names():
    # xdist runs many test files in one process: absl refuses a flag name defined twice.
    import benchmarks.quality  # noqa: F401  (--seconds)

    # And run as a program it defines them: its --help lists them.
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.serve_version_churn", "--help"],
        cwd=helpers.REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "--push_interval" in result.stdout, result.stderr[-2000:]  # absl's --help exits 1
