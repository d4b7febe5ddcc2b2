"""What the serving benchmarks share: the demo-shaped generator they serve when no
--model_base_path is given, the nearest-rank percentile they report latencies with, and the
helpers that run a server subprocess on loopback (a free port, waiting until it answers, CPU
lists for pinning, the process's CPU time).

The generator is untrained (seeded weights): the benchmarks time the server, the wire and the
browser, for which the demo's layer shapes matter and its weights do not.
"""

import os
import pathlib
import socket
import subprocess
import time


def demo_generator(latent_dim: int = 100):
    """configs/fashion_mnist.py's generator shape (28x28 grey), seeded, untrained."""
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


def export_demo_generator(root: pathlib.Path, latent_dim: int = 100) -> pathlib.Path:
    """Exports demo_generator() as a sampling model under root/generator; returns that base."""
    from gan_keras.export import sampling_model

    base = pathlib.Path(root) / "generator"
    sampling_model.export_generator(demo_generator(latent_dim), base, latent_dim=latent_dim)
    return base


def percentile(values, q: float):
    """The nearest-rank q-th percentile of `values` (one of the values, never interpolated)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def cpu_list(text: str) -> set[int]:
    """The CPUs of a taskset-style list, e.g. '0,2-3' -> {0, 2, 3}."""
    cpus = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far, from /proc."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_env() -> dict:
    """The environment a `python -m gan_keras.serve` subprocess runs in: this checkout first on
    PYTHONPATH, TensorFlow's C++ logging quiet."""
    root = pathlib.Path(__file__).resolve().parents[1]
    return dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 180.0) -> dict:
    """The JSON of the first 200 answer from `url` (a server's status endpoint); raises if
    `proc` exits first or nothing answers within `timeout` seconds."""
    import requests

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
