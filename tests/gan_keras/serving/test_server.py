"""The server's thread defaults (gan_keras.serving.server.default_rest_threads and
default_grpc_threads)."""

import pytest

from gan_keras.serving import server
from gan_keras.serving.batching_parameters import BatchingParameters


@pytest.fixture
def one_cpu(monkeypatch):
    monkeypatch.setattr(server.os, "sched_getaffinity", lambda pid: {0})


def test_four_threads_per_cpu_as_tf_serving(one_cpu, monkeypatch):
    assert server.default_rest_threads() == 4
    assert server.default_grpc_threads(None) == 4
    monkeypatch.setattr(server.os, "sched_getaffinity", lambda pid: {0, 1, 2})
    assert server.default_rest_threads() == 12
    assert server.default_grpc_threads(None) == 12


@pytest.mark.parametrize(
    ("max_batch_size", "threads"),
    [
        (2, 4),  # never fewer than TF Serving's default
        (32, 32),  # one thread per request a batch can merge
        (1000, 64),  # BatchingParameters' default size: capped
    ],
)
def test_grpc_with_batching_enough_threads_to_fill_a_batch(one_cpu, max_batch_size, threads):
    params = BatchingParameters(max_batch_size=max_batch_size, num_batch_threads=1)
    assert server.default_grpc_threads(params) == threads
    # A REST request waiting in a batch holds no thread: TF Serving's default stays.
    assert server.default_rest_threads() == 4
