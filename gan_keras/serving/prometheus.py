"""Prometheus metrics of one server, served at TF Serving's /monitoring/prometheus/metrics.

Each app has its own `prometheus_client.CollectorRegistry` (not the process-wide
default one), so several servers in one process (tests) count separately.

    gan_serving_requests_total{model_name, entrypoint, api, signature_name, status}
        requests answered; entrypoint REST or gRPC, api predict/sample/metadata/status/...,
        status a canonical code name (OK, INVALID_ARGUMENT, NOT_FOUND, ...), as TF Serving's
        :tensorflow:serving:request_count labels its status
    gan_serving_request_latency_seconds{model_name, entrypoint, api, signature_name}
        histogram of the time from the request reaching our code to the answer being built
    gan_serving_model_run_seconds{model_name, signature_name}
        histogram of the model call alone (TF Serving's runtime_latency), which with the one
        above tells how much of a request's time is the model and how much the codec
    gan_serving_model_version{model_name}
        the highest version being served (-1: none), one sample per served model
    gan_serving_batch_size{model_name, signature_name}
        with --enable_batching: histogram of the rows each merged model call ran (after
        padding to allowed_batch_sizes), as TF Serving's batch size metrics
    gan_serving_batch_queue_seconds{model_name, signature_name}
        with --enable_batching: histogram of each batched request's wait in the queue, from
        being queued to its batch starting
"""

import time

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

# Milliseconds matter here: a 16-image request takes ~10 ms.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

# HTTP status -> the canonical code TF Serving's REST API maps it from.
HTTP_STATUS_CODES = {
    200: "OK",
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    408: "DEADLINE_EXCEEDED",
    413: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}

# Rows per merged model call: powers of two up to TF Serving's default max_batch_size (1000).
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def status_for_http(status: int) -> str:
    return HTTP_STATUS_CODES.get(status, "UNKNOWN" if status >= 300 else "OK")


class _ServedVersions:
    """A collector: gan_serving_model_version, read from the server at each scrape."""

    def __init__(self, served_versions):
        self.served_versions = served_versions

    def describe(self):
        return []

    def collect(self):
        family = GaugeMetricFamily(
            "gan_serving_model_version",
            "The highest version being served (-1: none).",
            labels=["model_name"],
        )
        for name, version in self.served_versions().items():
            family.add_metric([name], -1.0 if version is None else float(version))
        yield family


class ServingMetrics:
    def __init__(self, model_name: str, current_version, served_versions=None):
        """`current_version()` -> the served version or None, read at each scrape; or, for
        several models, `served_versions()` -> {model name: version or None}. `model_name`
        labels what names no served model (e.g. a malformed path)."""
        self.model_name = model_name
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gan_serving_requests",
            "Requests answered, by entry point, API, signature and status.",
            ["model_name", "entrypoint", "api", "signature_name", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gan_serving_request_latency_seconds",
            "Time to answer a request, from reaching the handler to the answer being built.",
            ["model_name", "entrypoint", "api", "signature_name"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.model_run = Histogram(
            "gan_serving_model_run_seconds",
            "Time of the model call alone.",
            ["model_name", "signature_name"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "gan_serving_batch_size",
            "Rows per merged model call (--enable_batching), after padding.",
            ["model_name", "signature_name"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.batch_queue = Histogram(
            "gan_serving_batch_queue_seconds",
            "Time a batched request waited in the queue before its batch ran.",
            ["model_name", "signature_name"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        if served_versions is None:

            def served_versions():
                return {model_name: current_version()}

        self.registry.register(_ServedVersions(served_versions))

    def observe(
        self,
        entrypoint: str,
        api: str,
        signature_name: str,
        status: str,
        seconds: float,
        model_name: str | None = None,
    ) -> None:
        labels = (model_name or self.model_name, entrypoint, api, signature_name)
        self.requests.labels(*labels, status).inc()
        self.latency.labels(*labels).observe(seconds)

    def run_model(
        self, servable, signature_name: str, inputs: dict, model_name: str | None = None
    ) -> dict:
        """servable.run, timed."""
        start = time.perf_counter()
        try:
            return servable.run(signature_name, inputs)
        finally:
            self.model_run.labels(model_name or self.model_name, signature_name).observe(
                time.perf_counter() - start
            )

    def observe_batch(
        self, model_name: str, signature_name: str, size: int, queue_seconds: list
    ) -> None:
        """One merged call (gan_keras.serving.batching): its size, each request's wait."""
        labels = (model_name or self.model_name, signature_name)
        self.batch_size.labels(*labels).observe(size)
        queue = self.batch_queue.labels(*labels)
        for seconds in queue_seconds:
            queue.observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """(the Prometheus text format, its content type)."""
        data = prometheus_client.generate_latest(self.registry)
        return data, prometheus_client.CONTENT_TYPE_LATEST
