r"""Load test for gan_keras.serve over loopback, REST or gRPC.

    python -m benchmarks.serve_load_test [--model_base_path=<workdir>/export/generator] \
        [--protocol=rest|grpc] [--client_threads=1] [--seconds=20] [--batch=16] \
        [--signature=serving_default] [--repeats=3] [--server_cpus=1 --client_cpus=0] \
        [--out=result.json]

Starts ``python -m gan_keras.serve`` as a subprocess on 127.0.0.1 (a separate
process, so the clients' GIL does not slow the server) with the given export
or, by default, a freshly exported untrained DCGAN-sized generator (28x28x1,
latent 100). Then `client_threads` threads send the same predict request for
`seconds`, `repeats` times, and it prints requests/s, images/s, latency
percentiles and the error count of each run and their medians. Exits 1 if any
request failed. Never talks to anything but 127.0.0.1.

Rows for batching off and on and several client counts, e.g. 1-image requests from 1, 8
and 32 clients against a server without and one with --enable_batching:

    python -m benchmarks.serve_load_test --protocol=grpc --batch=1 --batching=both \
        --client_threads_list=1,8,32 [--batching_parameters='max_batch_size { value: 64 } ...']

print a table at the end (and ``--out`` holds ``{"rows": [...]}``); each row also has
the mean rows per merged model call, from the server's gan_serving_batch_size.

On a small machine the client competes with the server for the cores. With
``--server_cpus`` and ``--client_cpus`` the server runs under ``taskset -c
<server_cpus>`` and this process pins itself to ``<client_cpus>``
(os.sched_setaffinity), so they never share a core; either way the client's
own CPU time per request is measured (``client_cpu_ms_per_request``) and
reported beside the latencies, so its cost can be judged or subtracted. The
server's own view comes from its /monitoring/prometheus/metrics: the mean time
in the request handler and in the model call. The clients and the load loop are
benchmarks/serve_load_clients.py.
"""

import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import requests
from absl import app, flags

from benchmarks import serve_load_clients, serving_demo

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command line's flags, defined only when this runs as a program: test workers import
    many benchmarks into one process, and absl refuses a name defined twice (benchmarks.quality
    has --seconds, serve_version_churn --client_threads...)."""
    flags.DEFINE_string("model_base_path", None, "Export to serve (default: export a fresh one).")
    flags.DEFINE_enum("protocol", "rest", ["rest", "grpc"], "REST (:predict JSON) or gRPC Predict.")
    flags.DEFINE_integer(
        "client_threads", 1, "Concurrent client threads (1: one sequential client)."
    )
    flags.DEFINE_list(
        "client_threads_list",
        [],
        "Several client counts, e.g. 1,8,32: a row each, against the same server (overrides "
        "--client_threads).",
    )
    flags.DEFINE_enum(
        "batching",
        "off",
        ["off", "on", "both"],
        "The server's --enable_batching: off, on (with --batching_parameters), or both (a server "
        "each, the same rows against each).",
    )
    flags.DEFINE_string(
        "batching_parameters",
        "max_batch_size { value: 64 } batch_timeout_micros { value: 0 } "
        "max_enqueued_batches { value: 1000 } num_batch_threads { value: 1 }",
        "With --batching=on/both: the server's --batching_parameters_file, as text.",
    )
    flags.DEFINE_float("seconds", 20.0, "How long each run sends requests (at most 120).")
    flags.DEFINE_integer("repeats", 1, "Runs against the same server; medians are reported.")
    flags.DEFINE_integer("batch", 16, "Images per request.")
    flags.DEFINE_enum(
        "signature",
        "serving_default",
        ["serving_default", "serving_default_png", "sample", "sample_png"],
        "serving_default(_png) send z (REST: row format); sample(_png) send num_samples/seed.",
    )
    flags.DEFINE_integer("server_threads", 0, "--rest_api_num_threads (0: the server's default).")
    flags.DEFINE_string("server_cpus", "", "taskset CPU list for the server, e.g. 1 ('': any).")
    flags.DEFINE_string("client_cpus", "", "CPU list for this client process, e.g. 0 ('': any).")
    flags.DEFINE_string("out", None, "Also write the result as JSON here.")
    flags.DEFINE_integer(
        "in_process_requests",
        0,
        "Instead of the load test: time this many REST predict requests in this process, by "
        "phase (parse, model, encode), with both JSON encoders, counting full GC passes.",
    )
    flags.DEFINE_bool(
        "freeze_heap", True, "With --in_process_requests: gc.freeze as the server does."
    )
    flags.DEFINE_multi_string(
        "server_flag",
        [],
        "Extra gan_keras.serve flags, e.g. --server_flag=--tensorflow_intra_op_parallelism=1.",
    )


def _command() -> str:
    """This run's command line, as a user would type it."""
    return " ".join(["python", "-m", "benchmarks.serve_load_test", *sys.argv[1:]])


def _server_means(metrics_text: str) -> dict:
    """Mean handler and model-call milliseconds per predict request, from the server's
    Prometheus metrics (gan_keras.serving.prometheus)."""
    from prometheus_client.parser import text_string_to_metric_families

    totals, buckets = {}, {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.labels.get("api", "predict") != "predict":
                continue
            if sample.name == "gan_serving_request_latency_seconds_bucket":
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
            for suffix in ("_sum", "_count"):
                if sample.name.endswith(suffix):
                    key = (sample.name.removesuffix(suffix), suffix)
                    totals[key] = totals.get(key, 0.0) + sample.value

    def mean_ms(name):
        count = totals.get((name, "_count"))
        return round(1000.0 * totals[(name, "_sum")] / count, 2) if count else None

    # The upper bound of the histogram bucket holding the 99th percentile.
    total = max(buckets.values(), default=0.0)
    p99_bound = next((le for le in sorted(buckets) if buckets[le] >= 0.99 * total), None)
    return {
        "handler_mean_ms": mean_ms("gan_serving_request_latency_seconds"),
        "handler_p99_at_most_ms": None if not total else 1000.0 * p99_bound,
        "model_run_mean_ms": mean_ms("gan_serving_model_run_seconds"),
    }


def profile_in_process(base: str, body: bytes, requests_count: int) -> dict:
    """Per-phase milliseconds of REST predict requests run in this process (no HTTP), with
    codec.predict_response_json (orjson, the server's) and the lists + json.dumps encoding it
    replaced, and the garbage collector's full (generation 2) passes and their length."""
    import gc

    from gan_keras.serving import app as serving_app
    from gan_keras.serving import codec

    flask_app = serving_app.create_app(base, "g", poll_seconds=0, freeze_heap=FLAGS.freeze_heap)
    servable = flask_app.config["REGISTRY"].current()
    full_passes, started = [], [0.0]

    def on_gc(phase, info):
        if info["generation"] == 2:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                full_passes.append(1000.0 * (time.perf_counter() - started[0]))

    def json_dumps(outputs, row_format):
        text = json.dumps(codec.encode_predict_response(outputs, row_format), separators=(",", ":"))
        return text.encode()

    results = {}
    gc.callbacks.append(on_gc)
    try:
        for name, encode in (("orjson", codec.predict_response_json), ("json.dumps", json_dumps)):
            full_passes.clear()
            phases = {"parse": [], "model": [], "encode": [], "total": []}
            for _ in range(requests_count):
                t0 = time.perf_counter()
                signature, arrays, row_format = codec.decode_predict_request(body, servable)
                t1 = time.perf_counter()
                outputs = servable.run(signature, arrays)
                t2 = time.perf_counter()
                data = encode(outputs, row_format)
                t3 = time.perf_counter()
                for phase, seconds in zip(
                    phases, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True
                ):
                    phases[phase].append(1000.0 * seconds)
            results[name] = {
                phase: {
                    "p50": round(float(np.percentile(v, 50)), 2),
                    "p99": round(float(np.percentile(v, 99)), 2),
                }
                for phase, v in phases.items()
            }
            results[name]["response_bytes"] = len(data)
            results[name]["full_gc_passes"] = len(full_passes)
            results[name]["full_gc_pass_median_ms"] = (
                round(statistics.median(full_passes), 1) if full_passes else None
            )
    finally:
        gc.callbacks.remove(on_gc)
        flask_app.config["REGISTRY"].stop()
    results["frozen_objects"] = gc.get_freeze_count()
    return results


def main(argv):
    del argv
    if FLAGS.client_cpus:
        os.sched_setaffinity(0, serving_demo.cpu_list(FLAGS.client_cpus))
    with tempfile.TemporaryDirectory() as tmp:
        from gan_keras.export import layout

        base = FLAGS.model_base_path
        if base is None:
            base = str(serving_demo.export_demo_generator(pathlib.Path(tmp)))
        info_path = layout.asset_path(layout.version_dir(base), layout.MODEL_INFO_ASSET)
        info = json.loads(info_path.read_text())
        inputs = serve_load_clients.request_inputs(info, FLAGS.signature, FLAGS.batch)

        if FLAGS.in_process_requests:
            body = serve_load_clients.RestClient("", FLAGS.signature, inputs).body
            result = profile_in_process(base, body, FLAGS.in_process_requests)
            result["command"] = _command()
            print(json.dumps(result, indent=2))
            if FLAGS.out:
                pathlib.Path(FLAGS.out).write_text(json.dumps(result, indent=2) + "\n")
            return
        rows = []
        for batching in ("off", "on") if FLAGS.batching == "both" else (FLAGS.batching,):
            rows += _measure_server(tmp, base, info, inputs, batching == "on")
    for row in rows:
        _print_row(row)
    if len(rows) > 1:
        print("protocol batching clients  req/s  images/s  p50_ms  p99_ms  client_cpu_ms  errors")
        for row in rows:
            m = row["median"]
            print(
                f"{row['protocol']:>8} {row['batching']:>9} {row['client_threads']:>7} "
                f"{m['requests_per_s']:>6} {m['images_per_s']:>9} {m['p50_ms']:>7} "
                f"{m['p99_ms']:>7} {m['client_cpu_ms_per_request']:>14} {row['errors']:>7}"
            )
    result = rows[0] if len(rows) == 1 else {"rows": rows}
    print(json.dumps(result, indent=2))
    if FLAGS.out:
        pathlib.Path(FLAGS.out).write_text(json.dumps(result, indent=2) + "\n")
    if any(row["errors"] for row in rows):
        sys.exit(1)


def _measure_server(tmp: str, base: str, info: dict, inputs: dict, batching: bool) -> list:
    """Starts a server (batching on or off), runs every client count against it; the rows."""
    rest_port, grpc_port = serving_demo.free_port(), serving_demo.free_port()
    env = serving_demo.server_env()
    cmd = [
        sys.executable,
        "-m",
        "gan_keras.serve",
        f"--model_base_path={base}",
        "--model_name=generator",
        "--host=127.0.0.1",
        f"--rest_api_port={rest_port}",
        f"--port={grpc_port}",
        f"--rest_api_num_threads={FLAGS.server_threads}",
        f"--max_batch={max(256, FLAGS.batch)}",
        *FLAGS.server_flag,
    ]
    if batching:
        parameters = pathlib.Path(tmp, "batching.config")
        parameters.write_text(FLAGS.batching_parameters + "\n")
        cmd += ["--enable_batching", f"--batching_parameters_file={parameters}"]
    if FLAGS.server_cpus:
        cmd = ["taskset", "-c", FLAGS.server_cpus, *cmd]
    seconds = min(FLAGS.seconds, 120.0)
    client_counts = [int(n) for n in FLAGS.client_threads_list] or [FLAGS.client_threads]
    log_path = pathlib.Path(tmp, f"server-batching-{'on' if batching else 'off'}.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    rows = []
    try:
        url = f"http://127.0.0.1:{rest_port}/v1/models/generator"
        metrics_url = f"http://127.0.0.1:{rest_port}/monitoring/prometheus/metrics"
        status = serving_demo.wait_ready(url, proc)
        if FLAGS.protocol == "rest":
            client = serve_load_clients.RestClient(url, FLAGS.signature, inputs)
        else:
            client = serve_load_clients.GrpcClient(grpc_port, FLAGS.signature, inputs)
        # One request outside the measurement, checked in full.
        if client.images(client.session()) != FLAGS.batch:
            raise AssertionError("the answer does not hold one image per requested one")
        for client_threads in client_counts:
            runs = []
            before = _server_totals(requests.get(metrics_url, timeout=60).text)
            for _ in range(FLAGS.repeats):
                # The server's CPU time per request does not depend on what else the machine
                # runs (its latencies do): the measure to compare changes by.
                cpu_before = serving_demo.process_cpu_seconds(proc.pid)
                run = serve_load_clients.run_load(client, client_threads, seconds)
                server_cpu = serving_demo.process_cpu_seconds(proc.pid) - cpu_before
                run["server_cpu_ms_per_request"] = round(
                    1000.0 * server_cpu / max(run["requests"], 1), 2
                )
                runs.append(run)
            metrics_text = requests.get(metrics_url, timeout=60).text
            after = _server_totals(metrics_text)
            row = _row(runs, client_threads, batching, status, _server_means(metrics_text))
            calls = after["batches"] - before["batches"]
            row["server"]["mean_rows_per_model_call"] = (
                round((after["batch_rows"] - before["batch_rows"]) / calls, 1) if calls else None
            )
            rows.append(row)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    if any(row["errors"] for row in rows):
        print(log_path.read_text()[-3000:], file=sys.stderr)
    for row in rows:
        row["model"] = info
    return rows


def _server_totals(metrics_text: str) -> dict:
    """Merged model calls and their rows so far (--enable_batching's histogram)."""
    from prometheus_client.parser import text_string_to_metric_families

    totals = {"batches": 0.0, "batch_rows": 0.0}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "gan_serving_batch_size_count":
                totals["batches"] += sample.value
            elif sample.name == "gan_serving_batch_size_sum":
                totals["batch_rows"] += sample.value
    return totals


def _row(runs: list, client_threads: int, batching: bool, status: dict, server_view) -> dict:
    def median(get):
        values = [get(run) for run in runs if get(run) is not None]
        return round(statistics.median(values), 1) if values else None

    return {
        "command": _command(),
        "protocol": FLAGS.protocol,
        "signature": FLAGS.signature,
        "batch": FLAGS.batch,
        "client_threads": client_threads,
        "batching": "on" if batching else "off",
        "batching_parameters": FLAGS.batching_parameters if batching else None,
        "server_cpus": FLAGS.server_cpus or "any",
        "client_cpus": FLAGS.client_cpus or "any",
        "runs": runs,
        "median": {
            "requests_per_s": median(lambda r: r["requests_per_s"]),
            "images_per_s": median(lambda r: r["requests_per_s"] * FLAGS.batch),
            "p50_ms": median(lambda r: r["latency_ms"]["p50"]),
            "p99_ms": median(lambda r: r["latency_ms"]["p99"]),
            "client_cpu_ms_per_request": median(lambda r: r["client_cpu_ms_per_request"]),
            "server_cpu_ms_per_request": median(lambda r: r["server_cpu_ms_per_request"]),
        },
        "load_average_at_end": os.getloadavg(),
        # Means since the server started, from its own metrics.
        "server": server_view,
        "served_version": status["model_version_status"][0]["version"],
        "errors": sum(run["errors"] for run in runs),
    }


def _print_row(row: dict) -> None:
    for i, run in enumerate(row["runs"]):
        print(
            f"run {i + 1}: {run['requests']} requests in {run['elapsed_s']} s: "
            f"{run['requests_per_s']} req/s, p50 {run['latency_ms']['p50']} ms, "
            f"p99 {run['latency_ms']['p99']} ms, errors {run['errors']}, server CPU "
            f"{run['server_cpu_ms_per_request']} ms/request"
        )
    m, server_view = row["median"], row["server"]
    print(
        f"median of {len(row['runs'])} ({row['protocol']} {row['signature']}, batch "
        f"{row['batch']}, {row['client_threads']} client threads, batching {row['batching']}): "
        f"{m['requests_per_s']} req/s, {m['images_per_s']} images/s, p50 {m['p50_ms']} ms, "
        f"p99 {m['p99_ms']} ms; server handler {server_view['handler_mean_ms']} ms (p99 <= "
        f"{server_view['handler_p99_at_most_ms']} ms), model "
        f"{server_view['model_run_mean_ms']} ms (means), "
        f"{server_view.get('mean_rows_per_model_call')} rows per merged call"
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
