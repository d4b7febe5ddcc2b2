r"""Load test for gan_keras.serve over loopback.

    python benchmarks/serve_load_test.py [--model_base_path=<workdir>/export/generator] \
        [--client_threads=8] [--seconds=10] [--batch=8] [--signature=serving_default]

Starts ``python -m gan_keras.serve`` as a subprocess on 127.0.0.1 (a separate
process, so the clients' GIL does not slow the server), with the given export
or, by default, a freshly exported untrained DCGAN-sized generator (28x28x1,
latent 100). Then `client_threads` threads send predict requests for a fixed
`seconds` and it prints requests/s, images/s, latency percentiles and the error
count. Exits 1 if any request failed. Never talks to anything but 127.0.0.1.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import requests
from absl import app, flags

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FLAGS = flags.FLAGS
flags.DEFINE_string("model_base_path", None, "Export to serve (default: export a fresh one).")
flags.DEFINE_integer("client_threads", 8, "Concurrent client threads.")
flags.DEFINE_float("seconds", 10.0, "How long to send requests (bounded: at most 120).")
flags.DEFINE_integer("batch", 8, "Images per request.")
flags.DEFINE_enum(
    "signature",
    "serving_default",
    ["serving_default", "sample"],
    "serving_default sends z (row format); sample sends num_samples/seed.",
)
flags.DEFINE_integer("server_threads", 4, "waitress worker threads in the server.")


def _demo_generator(latent_dim: int = 100):
    import keras

    keras.utils.set_random_seed(0)
    z = keras.Input((latent_dim,))
    h = keras.layers.Dense(7 * 7 * 128, use_bias=False)(z)
    h = keras.layers.ReLU()(keras.layers.BatchNormalization()(h))
    h = keras.layers.Reshape((7, 7, 128))(h)
    h = keras.layers.Conv2DTranspose(64, 4, strides=2, padding="same", use_bias=False)(h)
    h = keras.layers.ReLU()(keras.layers.BatchNormalization()(h))
    out = keras.layers.Conv2DTranspose(1, 4, strides=2, padding="same", activation="tanh")(h)
    return keras.Model(z, out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            r = requests.get(url, timeout=2)
            if r.status_code == 200:
                return r.json()
        except requests.ConnectionError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"server at {url} not ready after {timeout}s")


def run_load(
    url: str, body: bytes, client_threads: int, seconds: float, expect_prefix: bytes
) -> dict:
    latencies: list[list[float]] = [[] for _ in range(client_threads)]
    errors: list[list[str]] = [[] for _ in range(client_threads)]
    start_barrier = threading.Barrier(client_threads + 1)
    deadline = [0.0]

    def worker(i):
        session = requests.Session()
        headers = {"Content-Type": "application/json"}
        start_barrier.wait()
        while time.monotonic() < deadline[0]:
            t0 = time.perf_counter()
            try:
                r = session.post(url, data=body, headers=headers, timeout=60)
                # Parsing every response in 8 client threads would make the
                # clients' GIL the bottleneck; check its start instead (one
                # response is parsed fully before the measurement).
                ok = r.status_code == 200 and r.content.startswith(expect_prefix)
                if not ok:
                    errors[i].append(f"{r.status_code}: {r.text[:200]}")
            except requests.RequestException as e:
                errors[i].append(repr(e))
                ok = False
            if ok:
                latencies[i].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(client_threads)]
    for t in threads:
        t.start()
    t_start = time.monotonic()
    deadline[0] = t_start + seconds
    start_barrier.wait()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t_start
    lat = np.array([x for per in latencies for x in per]) * 1000.0
    errs = [x for per in errors for x in per]
    return {
        "requests": int(lat.size + len(errs)),
        "errors": len(errs),
        "first_errors": errs[:3],
        "elapsed_s": round(elapsed, 2),
        "requests_per_s": round(lat.size / elapsed, 1),
        "latency_ms": {
            "p50": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
            "p90": round(float(np.percentile(lat, 90)), 1) if lat.size else None,
            "p99": round(float(np.percentile(lat, 99)), 1) if lat.size else None,
            "max": round(float(lat.max()), 1) if lat.size else None,
        },
    }


def main(argv):
    del argv
    seconds = min(FLAGS.seconds, 120.0)
    with tempfile.TemporaryDirectory() as tmp:
        from gan_keras import export as gan_export
        from gan_keras import export_layout

        base = FLAGS.model_base_path
        if base is None:
            base = os.path.join(tmp, "generator")
            gan_export.export_generator(_demo_generator(), base, latent_dim=100)
        info_path = export_layout.asset_path(
            export_layout.version_dir(base), export_layout.MODEL_INFO_ASSET
        )
        info = json.loads(info_path.read_text())

        if FLAGS.signature == "serving_default":
            rng = np.random.default_rng(0)
            z = rng.standard_normal((FLAGS.batch, info["latent_dim"])).astype(np.float32)
            if info["num_classes"]:
                instances = [
                    {"z": v, "label": i % info["num_classes"]} for i, v in enumerate(z.tolist())
                ]
            else:
                instances = z.tolist()
            body = json.dumps({"instances": instances}).encode()
        else:
            inputs = {"num_samples": FLAGS.batch, "seed": 0}
            if info["num_classes"]:
                inputs["label"] = []
            body = json.dumps({"signature_name": "sample", "inputs": inputs}).encode()

        port = _free_port()
        env = dict(
            os.environ,
            TF_CPP_MIN_LOG_LEVEL="2",
            PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        )
        cmd = [
            sys.executable,
            "-m",
            "gan_keras.serve",
            f"--model_base_path={base}",
            "--model_name=generator",
            "--host=127.0.0.1",
            f"--port={port}",
            f"--threads={FLAGS.server_threads}",
            f"--max_batch={max(256, FLAGS.batch)}",
        ]
        log_path = pathlib.Path(tmp, "server.log")
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}/v1/models/generator"
            status = _wait_ready(url, proc)
            # One request outside the measurement, so first-call costs don't count.
            first = requests.post(url + ":predict", data=body, timeout=60)
            first.raise_for_status()
            key = "predictions" if FLAGS.signature == "serving_default" else "outputs"
            payload = first.json()[key]
            images = (
                [row["images"] for row in payload] if key == "predictions" else payload["images"]
            )
            if np.array(images).shape != (FLAGS.batch, *info["image_shape"]):
                raise AssertionError(f"unexpected images shape {np.array(images).shape}")
            result = run_load(
                url + ":predict",
                body,
                FLAGS.client_threads,
                seconds,
                expect_prefix=f'{{"{key}":'.encode(),
            )
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if result["errors"]:
            print(log_path.read_text()[-3000:], file=sys.stderr)

    result.update(
        {
            "signature": FLAGS.signature,
            "batch": FLAGS.batch,
            "images_per_s": round(result["requests_per_s"] * FLAGS.batch, 1),
            "client_threads": FLAGS.client_threads,
            "server_threads": FLAGS.server_threads,
            "model": info,
            "served_version": status["model_version_status"][0]["version"],
        }
    )
    print(
        f"{result['requests']} requests in {result['elapsed_s']} s with "
        f"{FLAGS.client_threads} client threads ({FLAGS.signature}, batch {FLAGS.batch}): "
        f"{result['requests_per_s']} req/s, {result['images_per_s']} images/s, "
        f"p50 {result['latency_ms']['p50']} ms, p99 {result['latency_ms']['p99']} ms, "
        f"errors {result['errors']}"
    )
    print(json.dumps(result, indent=2))
    if result["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
