"""The clients of benchmarks/serve_load_test.py: one request built once and sent over and over.

`request_inputs` is the request (latent vectors for :predict's default signature, or the
sampling signature's scalars); `RestClient` sends it as :predict JSON in the row format most
clients use (on one keep-alive http.client connection per thread: `requests` took 0.6-0.8 ms
of the clients' CPU per request against 0.1-0.2, so its clients' core ran out near the
server's rate, docs/serving.md#batching), `GrpcClient` as a TF Serving PredictRequest;
`run_load` sends it from several threads for a fixed time and reports requests/s, latency
percentiles, errors and the clients' own CPU time per request.
"""

import http.client
import json
import threading
import time
import urllib.parse

import numpy as np
import requests


def request_inputs(info: dict, signature: str, batch: int) -> dict:
    if signature.startswith("serving_default"):
        z = np.random.default_rng(0).standard_normal((batch, info["latent_dim"]))
        inputs = {"z": z.astype(np.float32)}
        if info["num_classes"]:
            inputs["label"] = np.arange(batch, dtype=np.int32) % info["num_classes"]
        return inputs
    inputs = {"num_samples": np.int32(batch), "seed": np.int64(0)}
    if info["num_classes"]:
        inputs["label"] = np.zeros([0], np.int32)
    return inputs


class RestClient:
    def __init__(self, base_url: str, signature: str, inputs: dict):
        self.url = base_url + ":predict"
        if signature.startswith("serving_default"):  # the row format, as most clients send
            names = sorted(inputs)
            rows = [{n: inputs[n][i].tolist() for n in names} for i in range(len(inputs["z"]))]
            instances = [row["z"] for row in rows] if names == ["z"] else rows
            payload = {"signature_name": signature, "instances": instances}
            self.key = "predictions"
        else:
            payload = {
                "signature_name": signature,
                "inputs": {n: v.tolist() for n, v in inputs.items()},
            }
            self.key = "outputs"
        self.body = json.dumps(payload).encode()
        self.prefix = f'{{"{self.key}":'.encode()

    def session(self):
        parts = urllib.parse.urlsplit(self.url)
        return http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

    def call(self, connection) -> str | None:
        """One request; None if it succeeded, else the error."""
        path = urllib.parse.urlsplit(self.url).path
        try:
            connection.request("POST", path, self.body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            connection.close()  # the next request reconnects
            raise
        # Parsing every response in 8 client threads would make the clients' GIL the
        # bottleneck; check its start instead (one response is parsed fully first).
        if response.status == 200 and data.startswith(self.prefix):
            return None
        return f"{response.status}: {data[:200].decode(errors='replace')}"

    def images(self, connection) -> int:
        connection.close()
        payload = requests.post(self.url, data=self.body, timeout=60).json()[self.key]
        first = payload[0] if isinstance(payload, list) else next(iter(payload.values()))
        return len(payload) if isinstance(payload, list) else len(first)


class GrpcClient:
    def __init__(self, port: int, signature: str, inputs: dict):
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        self.grpc = grpc
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.request = predict_pb2.PredictRequest()
        self.request.model_spec.name = "generator"
        self.request.model_spec.signature_name = signature
        for name, value in inputs.items():
            self.request.inputs[name].CopyFrom(tf.make_tensor_proto(value))

    def session(self):
        return self.stub

    def call(self, stub) -> str | None:
        try:
            stub.Predict(self.request, timeout=60)
        except self.grpc.RpcError as e:
            return f"{e.code().name}: {e.details()[:200]}"
        return None

    def images(self, stub) -> int:
        outputs = stub.Predict(self.request, timeout=60).outputs
        return next(iter(outputs.values())).tensor_shape.dim[0].size


def run_load(client, client_threads: int, seconds: float) -> dict:
    latencies: list[list[float]] = [[] for _ in range(client_threads)]
    errors: list[list[str]] = [[] for _ in range(client_threads)]
    start_barrier = threading.Barrier(client_threads + 1)
    deadline = [0.0]

    def worker(i):
        session = client.session()
        start_barrier.wait()
        while time.monotonic() < deadline[0]:
            t0 = time.perf_counter()
            try:
                error = client.call(session)
            except Exception as e:  # a dropped connection counts as a failed request
                error = repr(e)
            if error is None:
                latencies[i].append(time.perf_counter() - t0)
            else:
                errors[i].append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(client_threads)]
    for t in threads:
        t.start()
    cpu_start = time.process_time()
    t_start = time.monotonic()
    deadline[0] = t_start + seconds
    start_barrier.wait()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t_start
    client_cpu = time.process_time() - cpu_start
    lat = np.array([x for per in latencies for x in per]) * 1000.0
    errs = [x for per in errors for x in per]
    done = lat.size + len(errs)

    def pct(q):
        return round(float(np.percentile(lat, q)), 1) if lat.size else None

    return {
        "requests": int(done),
        "errors": len(errs),
        "first_errors": errs[:3],
        "elapsed_s": round(elapsed, 2),
        "requests_per_s": round(lat.size / elapsed, 1),
        "latency_ms": {
            "p50": pct(50),
            "p90": pct(90),
            "p99": pct(99),
            "max": round(float(lat.max()), 1) if lat.size else None,
        },
        # All client threads' CPU time (this process) per request: what a client on the
        # server's cores would have taken from it.
        "client_cpu_ms_per_request": round(1000.0 * client_cpu / max(done, 1), 2),
    }
