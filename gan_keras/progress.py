"""Progress lines for long loops: how far, how fast, how long to go.

`ProgressLog` logs at most one line per `interval_s` seconds (and always the last one), so a
caller may update it as often as it likes: an update is a clock read and a comparison. The train
stage's line (pipeline.train.loop.format_progress), ingest, evaluate and the judge's training all
print durations the same way (`format_duration`).
"""

import threading
import time
from collections.abc import Callable

from absl import logging

# Seconds between two progress lines of one loop.
INTERVAL_S = 10.0


def format_duration(seconds: float) -> str:
    """M:SS, or H:MM:SS from one hour on (hours keep counting past a day)."""
    minutes, secs = divmod(int(round(max(0.0, seconds))), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressLog:
    """`what: 3000/10000 images (30%)  1200 images/s  elapsed 0:02  ETA 0:06`.

    `update(done, **counts)` sets the count done (and any other counts shown, e.g.
    rejected=3); `add(n, **counts)` adds to them; `values` (name -> float) are shown as
    name=value, e.g. a loss. Thread-safe: Beam may run a DoFn's bundles in several threads of
    one process.
    """

    def __init__(
        self,
        what: str,
        total: int,
        *,
        unit: str = "images",
        interval_s: float | None = None,
        log: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.what, self.total, self.unit = what, int(total), unit
        self.interval_s = INTERVAL_S if interval_s is None else float(interval_s)
        self._log = log or (lambda line: logging.info("%s", line))
        self._clock = clock
        self._start = self._last = clock()
        self.done, self.counts, self.values = 0, {}, {}
        self._finished = False
        self._lock = threading.Lock()

    def add(self, n: int, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                self.counts[name] = self.counts.get(name, 0) + value
            self._advance(self.done + n)

    def update(self, done: int, **counts: int) -> None:
        with self._lock:
            self.counts.update(counts)
            self._advance(done)

    def _advance(self, done: int) -> None:
        self.done = done
        now = self._clock()
        finished = self.total > 0 and done >= self.total
        if (finished and not self._finished) or (
            not finished and now - self._last >= self.interval_s
        ):
            self._last = now
            self._finished = finished
            self._log(self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = (self._clock() if now is None else now) - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.what}: {self.done}/{self.total} {self.unit}"]
        if self.total > 0:
            parts[0] += f" ({100 * min(self.done, self.total) // self.total}%)"
        parts += [f"{value} {name}" for name, value in self.counts.items()]
        parts += [f"{name}={value:.4f}" for name, value in self.values.items()]
        parts += [f"{rate:.0f} {self.unit}/s", f"elapsed {format_duration(elapsed)}"]
        if self.total > 0 and self.done >= self.total:
            parts.append("done")
        elif rate > 0 and self.total > 0:
            parts.append(f"ETA {format_duration((self.total - self.done) / rate)}")
        else:
            parts.append("ETA ?")
        return "  ".join(parts)


def keras_callback(what: str, total_steps: int, *, unit: str = "steps", log=None):
    """A Keras callback feeding a ProgressLog one step per training batch (for `fit(verbose=0)`),
    with the latest loss and accuracy in its line."""
    import keras

    class _ProgressCallback(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.progress = ProgressLog(what, total_steps, unit=unit, log=log)

        def on_train_batch_end(self, batch, logs=None):
            self.progress.values = {
                k: float(logs[k]) for k in ("loss", "accuracy") if logs and k in logs
            }
            self.progress.add(1)

    return _ProgressCallback()
