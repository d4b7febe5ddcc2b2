"""Request batching: concurrent :predict requests merged into one model call.

What: with ``--enable_batching`` (TensorFlow Serving's flag), :predict requests (REST and gRPC)
to the same model version and signature whose inputs fit together are queued, concatenated
along the batch dimension, run as one model call, and the outputs split back: each request
gets exactly its own rows, in its own order. The parameters are TF Serving's
``--batching_parameters_file`` (gan_keras.serving.batching_parameters).

Why: one model call per request pays the call's fixed cost (Python dispatch, the
concrete function's call, small matrix products) per request; under many concurrent
clients, requests queue behind each other anyway, and merging the queued ones into one call
turns that waiting into throughput. As in TF Serving, with ``batch_timeout_micros`` 0 a
lone request is not delayed: a batch forms only out of requests that would have waited. A
lone request from a thread (gRPC) runs on that thread when nothing is queued and a batch slot
is free, rather than being handed to a batch thread and back; one waiting on the REST
server's event loop holds no thread, so it goes to a batch thread either way.

Which requests merge (the batch key): the same `Servable` (model and version), the same
signature, inputs with a free leading dimension (``[None, ...]`` in the signature) of equal
row counts, the same trailing shapes and dtypes, and identical values of every other input
(scalars such as ``edit``'s ``strength``). Requests whose signature has no batchable input
(``sample``'s scalars), whose batchable inputs disagree on the row count, or with more
rows than ``max_batch_size`` run on their own, as with batching off (TF Serving refuses
the last). Requests are validated one by one before they are queued, so a bad request is
answered on its own; if a merged call fails anyway (or its outputs cannot be split by
rows), each of its requests is run again on its own, so an error stays with the request
that caused it. Padding repeats the batch's first row, and padded rows are dropped.

Prometheus (gan_keras.serving.prometheus) records each merged call's size and each
request's wait in the queue.
"""

import asyncio
import collections
import dataclasses
import logging
import threading
import time
import weakref

import numpy as np

from gan_keras.serving.batching_parameters import BatchingParameters
from gan_keras.serving.codec import ServingError

logger = logging.getLogger(__name__)

# TF Serving's message: its SharedBatchScheduler answers a full queue with this, UNAVAILABLE.
QUEUE_FULL_MESSAGE = "The batch scheduling queue to which this task was submitted is full"


class _LoopSignal:
    """`done` of a request waiting on an event loop (Batcher.run_async): `set()`, called on a
    batch thread, completes the loop's future from the loop's own thread."""

    def __init__(self, loop, future):
        self._loop, self._future, self._set = loop, future, False

    def _complete(self):
        if not self._future.done():  # the waiting request may have been cancelled
            self._future.set_result(None)

    def set(self) -> None:
        self._set = True
        self._loop.call_soon_threadsafe(self._complete)

    def is_set(self) -> bool:
        return self._set


@dataclasses.dataclass(eq=False)
class _Task:
    """One request in a queue; `done` (a threading.Event or a _LoopSignal) is set once its
    outputs or its error are in place."""

    inputs: dict
    rows: int
    run: object  # run(servable, signature_name, inputs) -> outputs
    enqueued: float
    done: object
    outputs: dict | None = None
    error: BaseException | None = None
    # Set when the caller runs the request's batch on its own thread (Batcher.run).
    batch_here: object = None

    def result(self) -> dict:
        if self.error is not None:
            raise self.error
        return self.outputs


@dataclasses.dataclass(eq=False)
class _Batch:
    key: tuple
    servable: object
    signature_name: str
    model_name: str
    batched: tuple  # names of the inputs concatenated along the rows
    deadline: float
    tasks: list = dataclasses.field(default_factory=list)
    rows: int = 0


class Batcher:
    """Queues batchable requests per batch key and runs them, merged, on its own threads.

    A request waits either on its own thread (`run`: the gRPC service, the WSGI route) or on an
    event loop (`run_async`: the REST server), and both kinds merge in the same batches."""

    def __init__(self, params: BatchingParameters, observe_batch=None):
        """`observe_batch(model_name, signature_name, padded_size, queue_seconds_per_request)`
        is called for every merged call (the metrics)."""
        self.params = params
        self._observe_batch = observe_batch
        self._cond = threading.Condition()
        self._queues: dict[tuple, collections.deque] = {}
        self._stopped = False
        # Batches running, on batch threads or on a caller's (Batcher.run), at most
        # num_batch_threads.
        self._running = 0
        # Servable -> signatures whose outputs turned out not to split by rows.
        self._unsplittable = weakref.WeakKeyDictionary()
        self._threads = [
            threading.Thread(target=self._work, name=f"batch-{i}", daemon=True)
            for i in range(params.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Ends the batch threads once the queued batches have run."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)

    def pending(self) -> int:
        """Requests queued and not yet running (for tests and debugging)."""
        with self._cond:
            return sum(len(b.tasks) for q in self._queues.values() for b in q)

    def _plan(self, servable, signature_name: str, inputs: dict):
        """(batch key, batched input names, rows), or None: run the request on its own."""
        if signature_name in self._unsplittable.get(servable, ()):
            return None
        specs = servable.input_specs[signature_name]
        batched, rows, fixed = [], set(), []
        for name in sorted(inputs):
            array = np.asarray(inputs[name])
            shape = specs[name].shape
            if shape.rank and shape[0] is None and array.ndim >= 1:
                batched.append(name)
                rows.add(array.shape[0])
                fixed.append((name, "rows", array.dtype.str, array.shape[1:]))
            else:
                fixed.append((name, "value", array.dtype.str, array.shape, array.tobytes()))
        if not batched or len(rows) != 1:
            return None
        (n,) = rows
        if n < 1 or n > self.params.max_batch_size:
            return None
        return (servable, signature_name, tuple(fixed)), tuple(batched), n

    def run(self, servable, signature_name: str, inputs: dict, run, model_name: str = "") -> dict:
        """The outputs of `signature_name` on `inputs` (already validated), merged with other
        requests where possible; `run(servable, signature_name, inputs)` is the model call.
        Blocks the calling thread until they are ready. A full queue -> ServingError 503, at
        once."""
        task = self.enqueue(
            servable, signature_name, inputs, run, model_name, threading.Event(), run_here=True
        )
        if task is None:
            return run(servable, signature_name, inputs)
        if task.batch_here is not None:
            try:
                self._execute(task.batch_here)
            finally:
                self._finished()
        task.done.wait()
        return task.result()

    async def run_async(
        self, servable, signature_name: str, inputs: dict, run, model_name: str, executor
    ) -> dict:
        """`run` for an event loop: the request waits in the queue without holding a thread,
        and its batch's thread wakes the loop once it is done (one wake-up for all of a
        batch's requests). A request that cannot merge runs on `executor`."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        task = self.enqueue(
            servable, signature_name, inputs, run, model_name, _LoopSignal(loop, future)
        )
        if task is None:
            return await loop.run_in_executor(executor, run, servable, signature_name, inputs)
        await future
        return task.result()

    def enqueue(self, servable, signature_name, inputs, run, model_name, done, run_here=False):
        """Queues the request with `done` (`set()` once its outputs or error are in place) and
        returns its task; None if it cannot merge with others (the caller runs it on its own,
        as with batching off). A full queue -> ServingError 503.

        `run_here`: a caller that can run the model itself (a thread, not an event loop). When
        nothing is queued, a batch slot is free and batches do not wait for more requests
        (`batch_timeout_micros` 0), the request is not queued: its one-request batch is
        `task.batch_here`, for the caller to run and then release (`_finished`). A lone client
        then pays no hand-off to a batch thread and back; requests that come meanwhile queue
        and merge as before."""
        plan = self._plan(servable, signature_name, inputs)
        if plan is None:
            return None
        key, batched, rows = plan
        task = _Task(inputs, rows, run, time.perf_counter(), done)
        with self._cond:
            if self._stopped:
                raise ServingError("The server is shutting down", 503)
            if (
                run_here
                and not self._queues
                and self._running < self.params.num_batch_threads
                and self.params.batch_timeout_micros == 0
            ):
                self._running += 1
                task.batch_here = _Batch(
                    key, servable, signature_name, model_name, batched, task.enqueued, [task], rows
                )
                return task
            queue = self._queues.setdefault(key, collections.deque())
            if queue and queue[-1].rows + rows <= self.params.max_batch_size:
                batch = queue[-1]
            else:
                if len(queue) >= self.params.max_enqueued_batches:
                    if not queue:
                        del self._queues[key]
                    raise ServingError(QUEUE_FULL_MESSAGE, 503)
                batch = _Batch(
                    key,
                    servable,
                    signature_name,
                    model_name,
                    batched,
                    task.enqueued + self.params.batch_timeout_micros / 1e6,
                )
                queue.append(batch)
            batch.tasks.append(task)
            batch.rows += rows
            self._cond.notify()
        return task

    def _next_batch(self):
        """The oldest batch ready to run, removed from its queue, or (None, seconds to wait).
        Called with the lock held."""
        now = time.perf_counter()
        best, wait = None, None
        for queue in self._queues.values():
            front = queue[0]
            full = front.rows >= self.params.max_batch_size
            if len(queue) > 1 or full or now >= front.deadline or self._stopped:
                if best is None or front.tasks[0].enqueued < best.tasks[0].enqueued:
                    best = front
            else:
                remaining = front.deadline - now
                wait = remaining if wait is None else min(wait, remaining)
        if best is None:
            return None, wait
        queue = self._queues[best.key]
        queue.popleft()
        if not queue:
            del self._queues[best.key]
        return best, None

    def _work(self):
        while True:
            with self._cond:
                while True:
                    if self._running < self.params.num_batch_threads:
                        batch, wait = self._next_batch()
                        if batch is not None:
                            self._running += 1
                            break
                    else:  # every slot is taken (a caller runs a batch): wait for one
                        wait = None
                    if self._stopped and not self._queues:
                        return
                    self._cond.wait(wait)
            try:
                self._execute(batch)
            except BaseException as e:  # never leave a request waiting
                logger.exception("A batch of %s failed", batch.signature_name)
                for task in batch.tasks:
                    if not task.done.is_set():
                        task.error = e
                        task.done.set()
            finally:
                self._finished()

    def _finished(self) -> None:
        """A batch is done: its slot is free."""
        with self._cond:
            self._running -= 1
            self._cond.notify_all()

    def _execute(self, batch: _Batch) -> None:
        start = time.perf_counter()
        tasks = batch.tasks
        size = self.params.padded_size(batch.rows)
        if self._observe_batch is not None:
            self._observe_batch(
                batch.model_name,
                batch.signature_name,
                size,
                [start - task.enqueued for task in tasks],
            )
        run = tasks[0].run
        if len(tasks) == 1 and size == batch.rows:
            self._run_alone(batch, tasks[0])
            return
        merged = dict(tasks[0].inputs)
        for name in batch.batched:
            parts = [task.inputs[name] for task in tasks]
            if size > batch.rows:  # pad with copies of the first row
                first = parts[0][:1]
                parts.append(np.repeat(first, size - batch.rows, axis=0))
            merged[name] = np.concatenate(parts, axis=0)
        try:
            outputs = run(batch.servable, batch.signature_name, merged)
            if not all(np.ndim(v) >= 1 and np.shape(v)[0] == size for v in outputs.values()):
                self._unsplittable.setdefault(batch.servable, set()).add(batch.signature_name)
                raise ValueError("outputs do not have one row per input row")
        except Exception as e:
            # Whatever failed the merged call, each request gets its own answer or error.
            logger.info(
                "A merged call of %d requests to %s failed (%s); running them one by one",
                len(tasks),
                batch.signature_name,
                e,
            )
            for task in tasks:
                self._run_alone(batch, task)
            return
        offset = 0
        for task in tasks:
            task.outputs = {k: v[offset : offset + task.rows] for k, v in outputs.items()}
            offset += task.rows
            task.done.set()

    @staticmethod
    def _run_alone(batch: _Batch, task: _Task) -> None:
        try:
            task.outputs = task.run(batch.servable, batch.signature_name, task.inputs)
        except Exception as e:
            task.error = e
        task.done.set()
