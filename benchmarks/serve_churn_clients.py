"""The clients of benchmarks.serve_version_churn: threads that ask the served model which
version answers (REST `:sample`'s X-Model-Version, gRPC Predict's model_spec.version), one
`Record` per request, and the server's resident memory sampled while they run."""

import dataclasses
import pathlib
import threading
import time

import numpy as np
import requests

MODEL = "generator"
TARGETS = ("stable", "canary", "latest")


@dataclasses.dataclass
class Record:
    """One request: what it asked for, when (time.monotonic), and the version or error."""

    target: str
    sent: float
    received: float
    version: int | None
    error: str | None


class RequestFailed(Exception):
    """An answer that is not a success: its status and the start of its body."""


class RestSampler:
    """``GET [/labels/L]:sample?n=1&seed=S``; the version from the PNG's X-Model-Version."""

    def __init__(self, url: str, timeout: float):
        self.url, self.timeout = url, timeout

    def session(self):
        return requests.Session()

    def call(self, session, target: str, seed: int) -> int:
        path = self.url if target == "latest" else f"{self.url}/labels/{target}"
        r = session.get(f"{path}:sample", params={"n": 1, "seed": seed}, timeout=self.timeout)
        if r.status_code != 200:
            raise RequestFailed(f"{r.status_code}: {r.text[:200]}")
        version = r.headers.get("X-Model-Version")
        if version is None or not r.content.startswith(b"\x89PNG"):
            raise RequestFailed(f"200 without a PNG or X-Model-Version: {r.headers}")
        return int(version)

    def close(self):
        pass


class GrpcSampler:
    """gRPC Predict of the ``sample`` signature (version_label L, or no version); the
    version from the PredictResponse's model_spec."""

    def __init__(self, port: int, timeout: float):
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        self.grpc, self.tf, self.timeout = grpc, tf, timeout
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.request = predict_pb2.PredictRequest()
        self.request.model_spec.name = MODEL
        self.request.model_spec.signature_name = "sample"
        self.request.inputs["num_samples"].CopyFrom(tf.make_tensor_proto(np.int32(1)))
        self.predict_request = predict_pb2.PredictRequest

    def session(self):
        return self.stub

    def call(self, stub, target: str, seed: int) -> int:
        request = self.predict_request()
        request.CopyFrom(self.request)
        if target != "latest":
            request.model_spec.version_label = target
        request.inputs["seed"].CopyFrom(self.tf.make_tensor_proto(np.int64(seed)))
        try:
            response = stub.Predict(request, timeout=self.timeout)
        except self.grpc.RpcError as e:
            raise RequestFailed(f"{e.code().name}: {e.details()[:200]}") from None
        if response.outputs["images"].tensor_shape.dim[0].size != 1:
            raise RequestFailed("OK without the one image asked for")
        return response.model_spec.version.value

    def close(self):
        self.channel.close()


def run_clients(sampler, client_threads: int, seconds: float, until=None) -> list[Record]:
    """`client_threads` threads asking for stable, canary and latest in turn for `seconds`
    (or until the threading.Event `until` is set)."""
    records: list[list[Record]] = [[] for _ in range(client_threads)]
    deadline = time.monotonic() + seconds
    until = until or threading.Event()

    def worker(index: int) -> None:
        session = sampler.session()
        i = 0
        while time.monotonic() < deadline and not until.is_set():
            target = TARGETS[(index + i) % len(TARGETS)]
            sent = time.monotonic()
            version, error = None, None
            try:
                version = sampler.call(session, target, index * 1_000_000 + i)
            except Exception as e:  # a refused or dropped connection, a timeout: failed
                error = str(e) if isinstance(e, RequestFailed) else repr(e)
            records[index].append(Record(target, sent, time.monotonic(), version, error))
            i += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(client_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted((r for per in records for r in per), key=lambda r: r.sent)


def rss_mb(pid: int) -> float:
    """The process's resident set size, MB, from /proc/PID/status."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for process {pid}")


class RssSampler:
    """Samples a process's RSS every `interval` seconds on a thread, until `stop`."""

    def __init__(self, pid: int, interval: float):
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.monotonic()
        self._thread.start()

    def _run(self) -> None:
        while True:
            self.samples.append((time.monotonic() - self._started, rss_mb(self.pid)))
            if self._stop.wait(self.interval):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
