r"""Version pushes and label flips under load: does the server lose or misroute a request?

    python -m benchmarks.serve_version_churn [--seconds=60] [--client_threads=8] \
        [--push_interval=1] [--policy=specific|latest] [--keep=2] [--api=rest|grpc] \
        [--server_cpus=1 --client_cpus=0] \
        [--out=benchmarks/results/serve_version_churn/results.json]

Issue #30's target: "During one minute of version pushes and label flips under 8 clients: 0
failed or wrong-version requests, and memory back to its starting level (+-10%) once old
versions are unloaded." This measures exactly that, against the real server
(``python -m gan_keras.serve`` as a subprocess on 127.0.0.1, as benchmarks/serve_load_test.py
starts it) with a --model_config_file it re-reads every second (model "generator", labels
``stable`` and ``canary``, versions 1 and 2 of a freshly exported demo generator to start).

Clients: `client_threads` threads ask, in turn, for ``labels/stable``, ``labels/canary`` and
the latest version (no version in the path). The answer must name the version that answered:
TF Serving's REST :predict does not, so over REST (the default) the requests are ``GET
/v1/models/generator[/labels/L]:sample?n=1&seed=S``, whose PNG answer carries the server's
``X-Model-Version`` header; with ``--api=grpc`` they are gRPC Predict calls of the ``sample``
signature (``model_spec.version_label`` L, or no version), whose PredictResponse carries
``model_spec.version``, as TF Serving's does. A request fails on any non-200 (non-OK) answer,
exception or timeout, or an answer without a version or an image.

Churn (every `push_interval` seconds at most, benchmarks/serve_churn_pushes.py): each push
adds version N+1 (copied aside, then one rename), and an atomically rewritten config moves
``canary`` -> N+1 and, every other push, ``stable`` -> the previous canary, under a
``specific`` or ``latest`` version policy that unloads all but `keep` versions; each change
waits until the server's status shows it applied. Wrong version: an answer from a version its
label (or "latest") did not name at any time between the request's sending and its answer, by
the timeline of the changes (serve_churn_pushes.py's docstring has the details of both).

Memory: the server's RSS (/proc/PID/status VmRSS) after a warm-up with the clients idle
(start), every `rss_interval` seconds during the run (peak), and after the churn and the
clients stop, the status shows no version left UNLOADING, and a few more polls have passed
(end). The control is a second server, the same clients for the same time, without churn: the
RSS drift and latencies of load alone, to compare with.

Writes `--out` (JSON) and the markdown table beside it (.md); exits 1 if any request
failed or was answered by a wrong version. Never talks to anything but 127.0.0.1.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
from absl import app, flags

from benchmarks import serving_demo
from benchmarks.serve_churn_clients import (
    MODEL,
    GrpcSampler,
    Record,
    RestSampler,
    RssSampler,
    rss_mb,
    run_clients,
)
from benchmarks.serve_churn_pushes import WAIT_SECONDS, Churn, Status, Timeline, check

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command line's flags, defined only when this runs as a program: test workers import
    many benchmarks into one process, and absl refuses a name defined twice (benchmarks.quality
    has --seconds, serve_load_test --client_threads...)."""
    flags.DEFINE_float(
        "seconds", 60.0, "How long the clients send requests, with and without churn."
    )
    flags.DEFINE_integer("client_threads", 8, "Concurrent client threads.")
    flags.DEFINE_float("push_interval", 1.0, "Seconds between the starts of two pushes, at least.")
    flags.DEFINE_enum("policy", "specific", ["specific", "latest"], "The config's version policy.")
    flags.DEFINE_integer("keep", 2, "Versions the policy keeps loaded after a push (>= 2).")
    flags.DEFINE_enum("api", "rest", ["rest", "grpc"], "REST :sample (X-Model-Version) or gRPC.")
    flags.DEFINE_float("poll_seconds", 1.0, "The server's config and file system poll periods.")
    flags.DEFINE_float("warmup_seconds", 5.0, "Load before the starting RSS is taken.")
    flags.DEFINE_float("rss_interval", 1.0, "Seconds between RSS samples during a run.")
    flags.DEFINE_float("request_timeout", 30.0, "A request not answered in this long failed.")
    flags.DEFINE_bool("control", True, "Also run the same load without churn (a second server).")
    flags.DEFINE_string("server_cpus", "", "taskset CPU list for the server, e.g. 1 ('': any).")
    flags.DEFINE_string("client_cpus", "", "CPU list for this client process, e.g. 0 ('': any).")
    flags.DEFINE_string(
        "model_base_path", None, "An export to push copies of (default: a fresh one)."
    )
    flags.DEFINE_string(
        "out", None, "Write the result as JSON here, and the table beside it (.md)."
    )


def _command() -> str:
    return " ".join(["python", "-m", "benchmarks.serve_version_churn", *sys.argv[1:]])


def _latency(records: list[Record], elapsed: float) -> dict:
    ok = np.array([r.received - r.sent for r in records if r.error is None]) * 1000.0

    def pct(q):
        return round(float(np.percentile(ok, q)), 1) if ok.size else None

    return {
        "requests_per_s": round(ok.size / elapsed, 1),
        "latency_ms": {"p50": pct(50), "p99": pct(99), "max": pct(100)},
    }


def _start_server(config_path, log_path, rest_port, grpc_port, poll_seconds, server_cpus):
    env = serving_demo.server_env()
    cmd = [
        sys.executable,
        "-m",
        "gan_keras.serve",
        f"--model_config_file={config_path}",
        f"--model_config_file_poll_wait_seconds={poll_seconds}",
        f"--file_system_poll_wait_seconds={poll_seconds}",
        "--host=127.0.0.1",
        f"--rest_api_port={rest_port}",
        f"--port={grpc_port}",
    ]
    if server_cpus:
        cmd = ["taskset", "-c", server_cpus, *cmd]  # taskset execs: the PID is the server's
    with open(log_path, "w") as log:
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def run(
    workdir,
    export_version,
    *,
    churn: bool,
    seconds: float,
    client_threads: int = 8,
    push_interval: float = 1.0,
    policy: str = "specific",
    keep: int = 2,
    api: str = "rest",
    poll_seconds: float = 1.0,
    warmup_seconds: float = 5.0,
    rss_interval: float = 1.0,
    request_timeout: float = 30.0,
    server_cpus: str = "",
    pushes: int | None = None,
    wait_seconds: float = WAIT_SECONDS,
    trace: dict | None = None,
) -> dict:
    """One server, `client_threads` clients for `seconds`, with or without churn; its row.

    `export_version` is a SavedModel version directory, copied as versions 1 and 2 (and every
    push) under a fresh base path in `workdir`. With `pushes` the run ends after that many
    pushes (`seconds` is then a limit). `trace`, a dict, receives the requests ("records")
    and the timeline they were checked against ("timeline").
    """
    name = "churn" if churn else "control"
    run_dir = pathlib.Path(workdir) / name
    base, staging = run_dir / "generator", run_dir / "staging"
    staging.mkdir(parents=True)
    shutil.copytree(export_version, base / "1")
    rest_port, grpc_port = serving_demo.free_port(), serving_demo.free_port()
    url = f"http://127.0.0.1:{rest_port}/v1/models/{MODEL}"
    status, timeline = Status(url, wait_seconds), Timeline()
    pusher = Churn(base, staging, run_dir / "models.config", status, timeline, policy, keep)
    pusher.start_config()
    log_path = run_dir / "server.log"
    proc = _start_server(
        pusher.config_path, log_path, rest_port, grpc_port, poll_seconds, server_cpus
    )
    sampler = None
    try:
        serving_demo.wait_ready(url, proc)
        status.wait(
            "the starting config", lambda: status.versions() == {1: "AVAILABLE", 2: "AVAILABLE"}
        )
        for target, version in (("stable", 1), ("canary", 2), ("latest", 2)):
            timeline.change(target, version, float("-inf"))
        if api == "rest":
            sampler = RestSampler(url, request_timeout)
        else:
            sampler = GrpcSampler(grpc_port, request_timeout)
        warmup = run_clients(sampler, client_threads, warmup_seconds)
        rss_start = rss_mb(proc.pid)
        rss = RssSampler(proc.pid, rss_interval)
        stop = threading.Event()
        pushing = threading.Thread(target=pusher.run, args=(stop, push_interval, pushes))
        started = time.monotonic()
        if churn:
            pushing.start()
        records = run_clients(sampler, client_threads, seconds, pusher.done if churn else None)
        elapsed = time.monotonic() - started
        stop.set()
        if churn:
            pushing.join()
        # Settled: exactly the versions the policy keeps, none still UNLOADING; then a few
        # more polls, after which the server has collected what the unloads left.
        expected = {v: "AVAILABLE" for v in pusher.expected_final()}
        settle_error = None
        try:
            status.wait("the last unloads", lambda: status.versions() == expected)
        except TimeoutError as e:  # a version that never unloads: reported, fails the run
            settle_error = f"{e}; status: {status.versions()}"
        time.sleep(3 * poll_seconds)
        rss_end = rss_mb(proc.pid)
        rss.stop()
        final = status.versions()
    finally:
        if sampler is not None:
            sampler.close()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    log = log_path.read_text()
    if trace is not None:
        trace.update(records=records, timeline=timeline)
    loaded_ever = {1, 2} | set(pusher.pushed)
    peak = max([rss_start, rss_end, *(mb for _, mb in rss.samples)])
    result = {
        "run": name,
        "requests": len(records),
        **check(records, timeline),
        **_latency(records, elapsed),
        "elapsed_s": round(elapsed, 1),
        "warmup": {"requests": len(warmup), "failed": sum(r.error is not None for r in warmup)},
        "versions_pushed": len(pusher.pushed),
        "seconds_per_push": round(elapsed / len(pusher.pushed), 2) if pusher.pushed else None,
        "label_changes": {t: timeline.changes(t) for t in ("stable", "canary")},
        "config_writes": pusher.config_writes,
        "final_versions": sorted(final),
        # Loaded at some time, and no longer in the status: unloaded (the log says so too).
        "versions_unloaded": len(loaded_ever - set(final)),
        "unloads_logged": len(re.findall(rf"Unloaded {MODEL} version \d+", log)),
        "server_5xx_logged": len(re.findall(r"Traceback|Exception on ", log)),
        "churn_error": pusher.error,
        "settle_error": settle_error,
        "rss_mb": {
            "start": round(rss_start, 1),
            "peak": round(peak, 1),
            "end": round(rss_end, 1),
            "end_over_start": round(rss_end / rss_start, 3),
        },
        "rss_samples_mb": [[round(t, 1), round(mb, 1)] for t, mb in rss.samples],
    }
    return result


def markdown(result: dict) -> str:
    """results.md: the command, the conditions, the table of both runs, and the details."""
    options = result["options"]
    load = ", ".join(f"{x:.1f}" for x in result["load_average_at_end"])
    lines = [
        "# Version changes under load (issue #30)",
        "",
        f"`{result['command']}`",
        "",
        f"{options['client_threads']} client threads ({options['api']}), "
        f"{options['seconds']:.0f} s per run, policy {options['policy']} keeping "
        f"{options['keep']}, config and file system polls every {options['poll_seconds']} s; "
        f"server on CPUs {options['server_cpus'] or 'any'}, clients on "
        f"{result['client_cpus']}; load average at the end {load} (other jobs share the machine:"
        " latencies are only comparable between the two rows).",
        "",
        "| run | requests | failed | wrong version | req/s | p50 ms | p99 ms | versions pushed "
        "| versions unloaded | RSS start MB | RSS peak MB | RSS end MB | end/start |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["runs"]:
        rss = row["rss_mb"]
        lines.append(
            f"| {row['run']} | {row['requests']} | {row['failed']} | {row['wrong_version']} "
            f"| {row['requests_per_s']} | {row['latency_ms']['p50']} | {row['latency_ms']['p99']} "
            f"| {row['versions_pushed']} | {row['versions_unloaded']} | {rss['start']} "
            f"| {rss['peak']} | {rss['end']} | {rss['end_over_start']} |"
        )
    lines.append("")
    for row in result["runs"]:
        lines.append(
            f"- {row['run']}: {row['seconds_per_push']} s per push, label moves "
            f"{row['label_changes']}, {row['config_writes']} config writes, final versions "
            f"{row['final_versions']}, unloads logged {row['unloads_logged']}, p50/p99/max "
            f"{row['latency_ms']['p50']}/{row['latency_ms']['p99']}/{row['latency_ms']['max']} "
            f"ms, churn error {row['churn_error']}, settle error {row['settle_error']}; "
            f"first failed {row['first_failed'][:2]}, first wrong {row['first_wrong_version'][:2]}"
        )
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    if FLAGS.client_cpus:
        os.sched_setaffinity(0, serving_demo.cpu_list(FLAGS.client_cpus))
    options = dict(
        seconds=FLAGS.seconds,
        client_threads=FLAGS.client_threads,
        push_interval=FLAGS.push_interval,
        policy=FLAGS.policy,
        keep=FLAGS.keep,
        api=FLAGS.api,
        poll_seconds=FLAGS.poll_seconds,
        warmup_seconds=FLAGS.warmup_seconds,
        rss_interval=FLAGS.rss_interval,
        request_timeout=FLAGS.request_timeout,
        server_cpus=FLAGS.server_cpus,
    )
    with tempfile.TemporaryDirectory() as tmp:
        from gan_keras.export import layout

        base = FLAGS.model_base_path or serving_demo.export_demo_generator(pathlib.Path(tmp))
        export_version = layout.version_dir(base)
        runs = [run(tmp, export_version, churn=True, **options)]
        if FLAGS.control:
            runs.append(run(tmp, export_version, churn=False, **options))
    result = {
        "command": _command(),
        "options": options,
        "client_cpus": FLAGS.client_cpus or "any",
        "load_average_at_end": os.getloadavg(),
        "runs": runs,
    }
    table = markdown(result)
    print(table)
    print(json.dumps(result, indent=2))
    if FLAGS.out:
        out = pathlib.Path(FLAGS.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        out.with_suffix(".md").write_text(table)
    bad = [
        r
        for r in runs
        if r["failed"] or r["wrong_version"] or r["churn_error"] or r["settle_error"]
    ]
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    define_flags()
    app.run(main)
