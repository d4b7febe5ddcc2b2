"""Request batching (--enable_batching, gan_keras.serving.batching): the parameters file, and
merged calls that give each request exactly its own rows, in order, keep errors per request,
pad to allowed_batch_sizes and answer a full queue 503 / UNAVAILABLE at once.

The batcher's own tests run on a fake model whose calls a test holds open, so which requests
merge is decided by the test, not by timing; the end-to-end ones run the tiny exports over
REST and gRPC.
"""

import asyncio
import concurrent.futures
import threading
import time

import grpc
import helpers
import numpy as np
import pytest
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from gan_keras.serving import app as serving_app
from gan_keras.serving import batching, batching_parameters, grpc_service
from gan_keras.serving.batching_parameters import BatchingConfigError, BatchingParameters
from gan_keras.serving.codec import ServingError

LATENT = 8
CLASSES = 3
# Failure guards only: every wait ends as soon as what it waits for has happened.
GUARD_SECONDS = 60


# ----------------------------------------------------------------------------
# The parameters file
# ----------------------------------------------------------------------------


def test_parameters_file_in_tf_servings_text_format(tmp_path):
    path = tmp_path / "batching.config"
    path.write_text(
        "max_batch_size { value: 8 }\n"
        "batch_timeout_micros { value: 500 }\n"
        "max_enqueued_batches { value: 3 }\n"
        "num_batch_threads { value: 2 }\n"
        'thread_pool_name { value: "ignored" }\n'
        "allowed_batch_sizes: 2\nallowed_batch_sizes: 4\nallowed_batch_sizes: 8\n"
    )
    assert batching_parameters.read_batching_parameters_file(path) == BatchingParameters(
        max_batch_size=8,
        batch_timeout_micros=500,
        max_enqueued_batches=3,
        num_batch_threads=2,
        allowed_batch_sizes=(2, 4, 8),
    )
    defaults = batching_parameters.parse_batching_parameters("")
    assert (defaults.max_batch_size, defaults.batch_timeout_micros) == (1000, 0)
    assert defaults.max_enqueued_batches == 10 and defaults.num_batch_threads >= 1


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("max_batch_size: 8", "max_batch_size"),  # a wrapper message, not a bare number
        ("max_batch_sise { value: 8 }", "max_batch_sise"),
        ("pad_variable_length_inputs: true", "pad_variable_length_inputs is not supported"),
        ("max_batch_size { value: 0 }", "max_batch_size must be >= 1"),
        ("num_batch_threads { value: -1 }", "num_batch_threads must be >= 1"),
        ("max_enqueued_batches { value: 0 }", "max_enqueued_batches must be >= 1"),
        ("batch_timeout_micros { value: -5 }", "batch_timeout_micros must be >= 0"),
        (
            "max_batch_size { value: 8 } allowed_batch_sizes: 4 allowed_batch_sizes: 2 "
            "allowed_batch_sizes: 8",
            "increasing",
        ),
        ("max_batch_size { value: 8 } allowed_batch_sizes: 4", "must equal max_batch_size"),
    ],
)
def test_bad_parameters_are_refused_naming_the_field(text, fragment):
    with pytest.raises(BatchingConfigError, match=fragment):
        batching_parameters.parse_batching_parameters(text)


# ----------------------------------------------------------------------------
# The batcher, on a fake model whose calls the test holds open
# ----------------------------------------------------------------------------


class FakeServable:
    """serving_default(z [N, 2], scale []) -> y = z * scale, row = z[:, 0]; 'scalar' answers
    one value for the whole batch (cannot be split by rows)."""

    def __init__(self):
        z = tf.TensorSpec([None, 2], tf.float32)
        scale = tf.TensorSpec([], tf.float32)
        self.input_specs = {
            "serving_default": {"z": z, "scale": scale},
            "scalar": {"z": z},
            "sample": {"n": tf.TensorSpec([], tf.int32)},
        }
        self.calls = []  # the inputs of every model call, in order
        self.threads = []  # the thread of every model call
        self.gate = threading.Event()
        self.gate.set()
        self.running = threading.Event()

    def run(self, servable, signature_name, inputs):
        assert servable is self
        self.calls.append((signature_name, {k: np.array(v) for k, v in inputs.items()}))
        self.threads.append(threading.current_thread().name)
        self.running.set()
        assert self.gate.wait(GUARD_SECONDS), "the test never released the model call"
        z = inputs.get("z")
        if z is not None and np.any(z < 0):
            raise ServingError("negative z: the model refuses it")
        if signature_name == "scalar":
            return {"total": np.float32(z.sum())}
        if signature_name == "sample":
            return {"y": np.arange(int(inputs["n"]), dtype=np.float32)}
        return {"y": z * inputs["scale"], "row": z[:, 0].copy()}


def _z(rows, start):
    """Rows [start, start+1], [start+1, ...]: every row says which request it came from."""
    first = np.arange(start, start + rows, dtype=np.float32)
    return np.stack([first, first + 0.5], axis=1)


class Harness:
    """A Batcher over a FakeServable; submits requests on threads, one at a time in order."""

    def __init__(self, **params):
        self.model = FakeServable()
        self.batches = []
        self.batcher = batching.Batcher(
            BatchingParameters(num_batch_threads=1, **params),
            lambda *args: self.batches.append(args),
        )
        self.pool = concurrent.futures.ThreadPoolExecutor(16)

    def submit(self, inputs, signature_name="serving_default", queued=True):
        """`queued`: wait until the request is queued (or answered), so that requests queue
        in submission order; False for one that runs on its own, unbatched."""
        before = self.batcher.pending()
        future = self.pool.submit(
            self.batcher.run, self.model, signature_name, inputs, self.model.run, "m"
        )
        deadline = time.monotonic() + GUARD_SECONDS
        while queued and self.batcher.pending() == before and not future.done():
            assert time.monotonic() < deadline, "the request was never queued"
            time.sleep(0.001)
        return future

    def hold_the_model(self):
        """Starts one request and keeps its model call running until release(): requests
        submitted meanwhile queue up behind it."""
        self.model.gate.clear()
        self.model.running.clear()
        first = self.pool.submit(
            self.batcher.run,
            self.model,
            "serving_default",
            {"z": _z(1, 1000), "scale": np.float32(1)},
            self.model.run,
            "m",
        )
        assert self.model.running.wait(GUARD_SECONDS)
        return first

    def release(self):
        self.model.gate.set()

    def close(self):
        self.release()
        self.batcher.stop()
        self.pool.shutdown()


@pytest.fixture
def harness(request):
    made = []

    def make(**params):
        made.append(Harness(**params))
        return made[-1]

    yield make
    for h in made:
        h.close()


def test_merged_requests_each_get_their_own_rows_in_order(harness):
    h = harness(max_batch_size=32)
    held = h.hold_the_model()
    sizes = [3, 1, 4, 2]
    requests = [{"z": _z(n, 10 * i), "scale": np.float32(2)} for i, n in enumerate(sizes)]
    futures = [h.submit(r) for r in requests]
    h.release()
    for request, future in zip(requests, futures, strict=True):
        out = future.result(GUARD_SECONDS)
        np.testing.assert_array_equal(out["y"], request["z"] * 2)
        np.testing.assert_array_equal(out["row"], request["z"][:, 0])
    held.result(GUARD_SECONDS)
    # One call for the held request, one for the four queued behind it, rows in order.
    assert len(h.model.calls) == 2
    merged = h.model.calls[1][1]["z"]
    np.testing.assert_array_equal(merged, np.concatenate([r["z"] for r in requests]))
    assert [b[2] for b in h.batches] == [1, sum(sizes)]
    assert len(h.batches[1][3]) == 4  # a queue wait per request


def test_requests_that_do_not_fit_together_are_not_merged(harness):
    h = harness(max_batch_size=4)
    held = h.hold_the_model()
    a = h.submit({"z": _z(3, 0), "scale": np.float32(1)})
    other_scale = h.submit({"z": _z(1, 10), "scale": np.float32(3)})  # another batch key
    too_many = h.submit({"z": _z(2, 20), "scale": np.float32(1)})  # 3 + 2 > max_batch_size
    # More rows than max_batch_size, and no batchable input: each runs on its own.
    alone = h.submit({"z": _z(5, 30), "scale": np.float32(1)}, queued=False)
    scalars = h.submit({"n": np.int32(3)}, "sample", queued=False)
    h.release()
    np.testing.assert_array_equal(a.result(GUARD_SECONDS)["y"], _z(3, 0))
    np.testing.assert_array_equal(other_scale.result(GUARD_SECONDS)["y"], _z(1, 10) * 3)
    np.testing.assert_array_equal(too_many.result(GUARD_SECONDS)["y"], _z(2, 20))
    np.testing.assert_array_equal(alone.result(GUARD_SECONDS)["y"], _z(5, 30))
    np.testing.assert_array_equal(scalars.result(GUARD_SECONDS)["y"], [0, 1, 2])
    held.result(GUARD_SECONDS)
    rows = sorted(len(inputs["z"]) for sig, inputs in h.model.calls if sig == "serving_default")
    assert rows == [1, 1, 2, 3, 5]


def test_an_error_stays_with_the_request_that_caused_it(harness):
    h = harness(max_batch_size=32)
    held = h.hold_the_model()
    good = [{"z": _z(2, 10 * i), "scale": np.float32(1)} for i in range(3)]
    bad = {"z": -_z(1, 5), "scale": np.float32(1)}
    futures = [h.submit(good[0]), h.submit(bad), h.submit(good[1]), h.submit(good[2])]
    h.release()
    held.result(GUARD_SECONDS)
    with pytest.raises(ServingError, match="negative z"):
        futures[1].result(GUARD_SECONDS)
    for request, future in zip(good, futures[:1] + futures[2:], strict=True):
        np.testing.assert_array_equal(future.result(GUARD_SECONDS)["y"], request["z"])


def test_outputs_that_cannot_be_split_fall_back_to_one_call_each(harness):
    h = harness(max_batch_size=32)
    held = h.hold_the_model()
    requests = [{"z": _z(2, 10 * i)} for i in range(3)]
    futures = [h.submit(r, "scalar") for r in requests]
    h.release()
    held.result(GUARD_SECONDS)
    for request, future in zip(requests, futures, strict=True):
        assert future.result(GUARD_SECONDS)["total"] == request["z"].sum()
    # And that signature is no longer merged.
    assert h.batcher._plan(h.model, "scalar", requests[0]) is None


def test_batches_are_padded_to_the_next_allowed_size(harness):
    h = harness(max_batch_size=8, allowed_batch_sizes=(2, 4, 8))
    held = h.hold_the_model()
    requests = [{"z": _z(1, 10), "scale": np.float32(1)}, {"z": _z(2, 20), "scale": np.float32(1)}]
    futures = [h.submit(r) for r in requests]
    h.release()
    held.result(GUARD_SECONDS)
    for request, future in zip(requests, futures, strict=True):
        out = future.result(GUARD_SECONDS)
        np.testing.assert_array_equal(out["y"], request["z"])  # padding rows dropped
    # The held request (1 row) ran at 2, the 3 merged rows at 4, padded with the first row.
    padded = h.model.calls[1][1]["z"]
    assert [len(c[1]["z"]) for c in h.model.calls] == [2, 4]
    np.testing.assert_array_equal(padded[3], requests[0]["z"][0])
    assert [b[2] for b in h.batches] == [2, 4]


def test_a_full_queue_is_refused_at_once(harness):
    h = harness(max_batch_size=2, max_enqueued_batches=1)
    held = h.hold_the_model()
    queued = h.submit({"z": _z(2, 0), "scale": np.float32(1)})  # fills the one queued batch
    with pytest.raises(ServingError) as e:
        # Run on this thread: it must answer without waiting for the held call.
        h.batcher.run(
            h.model, "serving_default", {"z": _z(1, 9), "scale": np.float32(1)}, h.model.run
        )
    assert e.value.status == 503 and e.value.message == batching.QUEUE_FULL_MESSAGE
    h.release()
    held.result(GUARD_SECONDS)
    np.testing.assert_array_equal(queued.result(GUARD_SECONDS)["y"], _z(2, 0))


def test_stopping_runs_what_is_queued():
    model = FakeServable()
    batcher = batching.Batcher(BatchingParameters(batch_timeout_micros=3_600_000_000))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(
            batcher.run, model, "serving_default", {"z": _z(1, 0), "scale": 1.0}, model.run
        )
        deadline = time.monotonic() + GUARD_SECONDS
        while batcher.pending() == 0:
            assert time.monotonic() < deadline
            time.sleep(0.001)
        batcher.stop()  # the batch's hour-long timeout does not keep the request waiting
        np.testing.assert_array_equal(future.result(GUARD_SECONDS)["y"], _z(1, 0))


# ----------------------------------------------------------------------------
# End to end: the tiny exports over REST and gRPC
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    return helpers.export_tiny_generators(
        tmp_path_factory.mktemp("batching"), latent_dim=LATENT, num_classes=CLASSES
    )


class Served:
    """An app with batching on, over REST (test client) and gRPC (a free loopback port)."""

    def __init__(self, base, name, params):
        self.app = serving_app.create_app(base, name, max_batch=64, poll_seconds=0, batching=params)
        self.name = name
        self.metrics = self.app.config["METRICS"]
        self.batcher = self.app.config["BATCHER"]
        self.server, port = grpc_service.start_server(
            self.app.config["REGISTRY"],
            self.metrics,
            host="127.0.0.1",
            port=0,
            max_batch=64,
            max_workers=16,
            run_predict=self.app.config["RUN_PREDICT"],
        )
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def rest(self, z, labels=None):
        instances = (
            z.tolist()
            if labels is None
            else [{"z": row.tolist(), "label": int(c)} for row, c in zip(z, labels, strict=True)]
        )
        r = self.app.test_client().post(
            f"/v1/models/{self.name}:predict", json={"instances": instances}
        )
        return r.status_code, r.get_json()

    def grpc(self, z, labels=None):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.name
        request.inputs["z"].CopyFrom(tf.make_tensor_proto(z))
        if labels is not None:
            request.inputs["label"].CopyFrom(tf.make_tensor_proto(np.int32(labels)))
        response = self.stub.Predict(request, timeout=GUARD_SECONDS)
        return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}

    def close(self):
        self.channel.close()
        self.server.stop(grace=None).wait()
        self.batcher.stop()
        self.app.config["REGISTRY"].stop()


def _latents(n, seed):
    return np.random.default_rng(seed).standard_normal((n, LATENT)).astype(np.float32)


def test_concurrent_rest_and_grpc_requests_get_their_own_images(exports):
    params = BatchingParameters(max_batch_size=16, num_batch_threads=1)
    served = Served(exports / "cond", "gen", params)
    try:
        servable = served.app.config["REGISTRY"].current()
        # What each request would get on its own, without the server.
        cases = [
            (_latents(1 + i % 3, i), [(i + k) % CLASSES for k in range(1 + i % 3)])
            for i in range(24)
        ]
        expected = [
            servable.run("serving_default", {"z": z, "label": np.int32(c)}) for z, c in cases
        ]
        # Hold the model so that the requests queue up and merge.
        run_model = served.metrics.run_model
        gate, running = threading.Event(), threading.Event()

        def held_run(*args, **kwargs):
            running.set()
            assert gate.wait(GUARD_SECONDS)
            return run_model(*args, **kwargs)

        served.metrics.run_model = held_run

        def call(i):
            z, labels = cases[i]
            if i % 2:
                return served.grpc(z, labels)
            code, body = served.rest(z, labels)
            assert code == 200, body
            return {k: np.asarray([p[k] for p in body["predictions"]]) for k in ("images",)}

        with concurrent.futures.ThreadPoolExecutor(len(cases)) as pool:
            # The first runs, and is held; the others queue behind it.
            futures = [pool.submit(call, 0)]
            assert running.wait(GUARD_SECONDS)
            futures += [pool.submit(call, i) for i in range(1, len(cases))]
            deadline = time.monotonic() + GUARD_SECONDS
            while served.batcher.pending() < len(cases) - 1 and time.monotonic() < deadline:
                time.sleep(0.005)
            queued = served.batcher.pending()
            gate.set()  # (before any assertion: a failure must not leave the calls held)
            assert queued == len(cases) - 1, "the requests never queued"
            results = [f.result(GUARD_SECONDS) for f in futures]
        for i, (result, want) in enumerate(zip(results, expected, strict=True)):
            # Same rows; a merged call may round differently in the last bit, so +-1.
            assert result["images"].shape == want["images"].shape, i
            diff = np.abs(result["images"].astype(int) - want["images"].astype(int))
            assert diff.max() <= 1, i
        text = served.app.test_client().get("/monitoring/prometheus/metrics").get_data(True)
        sizes = _samples(text, "gan_serving_batch_size_count")
        assert 1 <= sizes < len(cases)  # merged: fewer calls than requests
        assert _samples(text, "gan_serving_batch_queue_seconds_count") == len(cases)
    finally:
        served.close()


def _samples(text, name):
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    )


def test_a_bad_request_is_refused_alone_and_a_full_queue_is_503_and_unavailable(exports):
    params = BatchingParameters(max_batch_size=2, max_enqueued_batches=1, num_batch_threads=1)
    served = Served(exports / "uncond", "generator", params)
    try:
        run_model = served.metrics.run_model
        gate, running = threading.Event(), threading.Event()

        def held_run(*args, **kwargs):
            running.set()
            assert gate.wait(GUARD_SECONDS)
            return run_model(*args, **kwargs)

        served.metrics.run_model = held_run
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            try:
                held = pool.submit(served.rest, _latents(1, 0))
                assert running.wait(GUARD_SECONDS)
                queued = pool.submit(served.grpc, _latents(2, 1))  # fills the one queued batch
                deadline = time.monotonic() + GUARD_SECONDS
                while served.batcher.pending() < 1:
                    assert time.monotonic() < deadline
                    time.sleep(0.005)
                # Refused at once, while the model call is still held.
                code, body = served.rest(_latents(1, 2))
                assert code == 503 and body["error"] == batching.QUEUE_FULL_MESSAGE
                with pytest.raises(grpc.RpcError) as e:
                    served.grpc(_latents(1, 3))
                assert e.value.code() == grpc.StatusCode.UNAVAILABLE
                # A malformed request is answered before it is queued, not with the queue.
                code, body = served.rest(np.zeros((1, LATENT + 1), np.float32))
                assert code == 400 and "shape" in body["error"]
            finally:
                gate.set()
            assert held.result(GUARD_SECONDS)[0] == 200
            assert queued.result(GUARD_SECONDS)["images"].shape == (2, 8, 8, 1)
        text = served.app.test_client().get("/monitoring/prometheus/metrics").get_data(True)
        unavailable = [
            s
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "gan_serving_requests_total" and s.labels["status"] == "UNAVAILABLE"
        ]
        assert {s.labels["entrypoint"] for s in unavailable} == {"REST", "gRPC"}
    finally:
        served.close()


def test_a_lone_request_runs_on_its_callers_thread_within_the_bound(harness):
    """Nothing queued and a batch slot free: no hand-off to a batch thread. The caller's run
    takes the slot, so requests that come meanwhile queue, and merge, behind it."""
    h = harness(max_batch_size=32)
    held = h.hold_the_model()  # one request, alone: it runs on its pool thread
    assert h.model.threads == [h.model.threads[0]] and h.model.threads[0].startswith("Thread")
    later = [h.submit({"z": _z(2, 10 * i), "scale": np.float32(1)}) for i in range(3)]
    assert len(h.model.calls) == 1  # one slot (num_batch_threads 1): the others wait
    h.release()
    assert held.result(GUARD_SECONDS)["row"].tolist() == [1000.0]
    for i, future in enumerate(later):
        assert future.result(GUARD_SECONDS)["row"].tolist() == [10.0 * i, 10.0 * i + 1]
    assert [b[2] for b in h.batches] == [1, 6]
    assert h.model.threads[1] == "batch-0"  # the merged call, on the batch thread


def test_with_a_batch_timeout_a_lone_request_still_waits_for_company(harness):
    h = harness(max_batch_size=2, batch_timeout_micros=3_600_000_000)
    first = h.submit({"z": _z(1, 0), "scale": np.float32(1)})
    second = h.submit({"z": _z(1, 5), "scale": np.float32(1)})
    assert first.result(GUARD_SECONDS)["row"].tolist() == [0.0]
    assert second.result(GUARD_SECONDS)["row"].tolist() == [5.0]
    assert [b[2] for b in h.batches] == [2] and h.model.threads == ["batch-0"]


# ----------------------------------------------------------------------------
# Requests waiting on an event loop (Batcher.run_async, the REST server's)
# ----------------------------------------------------------------------------


def test_requests_on_an_event_loop_merge_without_a_thread_each(harness):
    """All of them wait on one thread (the loop's), yet queue together and merge; an error
    stays with its request, and an unbatchable one runs on the executor."""
    h = harness(max_batch_size=32)
    held = h.hold_the_model()
    sizes = [3, 1, 4, 2]
    executor = concurrent.futures.ThreadPoolExecutor(1)

    async def main():
        def start(inputs, signature_name="serving_default"):
            coroutine = h.batcher.run_async(
                h.model, signature_name, inputs, h.model.run, "m", executor
            )
            return asyncio.ensure_future(coroutine)

        good = [start({"z": _z(n, 10 * i), "scale": np.float32(2)}) for i, n in enumerate(sizes)]
        bad = start({"z": -_z(2, 1), "scale": np.float32(2)})
        sample = start({"n": np.int32(3)}, "sample")
        deadline = time.monotonic() + GUARD_SECONDS
        while h.batcher.pending() < len(sizes) + 1:
            assert time.monotonic() < deadline, "the requests never queued"
            await asyncio.sleep(0.001)
        h.release()
        return (
            await asyncio.gather(*good),
            await asyncio.gather(bad, return_exceptions=True),
            await sample,
        )

    try:
        good, (bad,), sample = asyncio.run(main())
    finally:
        h.release()
        executor.shutdown()
    assert held.result(GUARD_SECONDS)["row"].tolist() == [1000.0]
    for i, (n, outputs) in enumerate(zip(sizes, good, strict=True)):
        np.testing.assert_array_equal(outputs["y"], _z(n, 10 * i) * 2)
    assert isinstance(bad, ServingError) and "negative" in bad.message
    assert sample["y"].tolist() == [0.0, 1.0, 2.0]
    # One merged call of every queued row (it failed on the bad one: then one call each).
    assert [b[2] for b in h.batches] == [1, sum(sizes) + 2]
    merged = [c for c in h.model.calls if c[0] == "serving_default"][1]
    assert merged[1]["z"].shape[0] == sum(sizes) + 2
