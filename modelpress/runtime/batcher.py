"""Dynamic batching: concurrent requests to one model version merged into one invoke.

A request waits at most ``max_queue_delay`` for company, and only while other requests to the same
model are in flight (``in_flight``), so a lone request pays no delay; a batch never passes
``max_batch_size`` rows; only requests with the same per-row shapes, dtypes and output mode are
merged. A full queue answers 503 with Retry-After::

    batcher = Batcher(backend.predict, max_batch_size=32, max_queue_delay=0.002, max_queue_size=256,
                      workers=4, on_batch=lambda rows, waits: ...)
    outputs = batcher.submit([x], raw=False)       # blocks until its slice of the batch is ready
    batcher.close()
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from modelpress.errors import ModelpressError, UnavailableError


class _Item:
    __slots__ = ("inputs", "raw", "rows", "key", "queued_at", "done", "result", "error")

    def __init__(self, inputs: list[np.ndarray], raw: bool):
        self.inputs = inputs
        self.raw = raw
        self.rows = len(inputs[0]) if inputs and inputs[0].ndim else 1
        self.key = (raw, tuple((a.dtype.str, a.shape[1:]) for a in inputs))
        self.queued_at = time.perf_counter()
        self.done = threading.Event()
        self.result: list[np.ndarray] | None = None
        self.error: BaseException | None = None


class Batcher:
    """A bounded queue in front of ``predict(inputs, raw)`` with ``workers`` threads draining it."""

    def __init__(self, predict: Callable[[list[np.ndarray], bool], list[np.ndarray]], *, max_batch_size: int = 32,
                 max_queue_delay: float = 0.002, max_queue_size: int = 256, workers: int = 1,
                 on_batch: Callable[[int, list[float]], None] | None = None, name: str = "model",
                 in_flight: Callable[[], int] | None = None):
        self.predict = predict
        self.max_batch_size = int(max_batch_size)
        self.max_queue_delay = float(max_queue_delay)
        self.max_queue_size = int(max_queue_size)
        self.on_batch = on_batch
        self.name = name
        self.in_flight = in_flight
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._busy = 0  # requests in batches being run by other workers
        self._threads = [threading.Thread(target=self._work, name=f"batcher-{name}-{i}", daemon=True)
                         for i in range(max(1, int(workers)))]
        for thread in self._threads:
            thread.start()

    def submit(self, inputs: list[np.ndarray], raw: bool = False) -> list[np.ndarray]:
        item = _Item(inputs, raw)
        with self._cond:
            if self._closed:
                raise UnavailableError(f"{self.name} is unloading; retry", retry_after=1)
            if len(self._queue) >= self.max_queue_size:
                raise UnavailableError(f"{self.name} has {len(self._queue)} requests queued (max_queue_size "
                                       f"{self.max_queue_size}); retry shortly", retry_after=1)
            self._queue.append(item)
            self._cond.notify()
        item.done.wait()
        if item.error is not None:
            raise item.error
        return item.result  # type: ignore[return-value]

    @property
    def depth(self) -> int:
        return len(self._queue)

    def _take(self) -> list[_Item] | None:
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            first = self._queue.popleft()
            batch, rows = [first], first.rows
            deadline = first.queued_at + self.max_queue_delay
            while rows < self.max_batch_size:
                for item in list(self._queue):
                    if item.key == first.key and rows + item.rows <= self.max_batch_size:
                        self._queue.remove(item)
                        batch.append(item)
                        rows += item.rows
                remaining = deadline - time.perf_counter()
                if rows >= self.max_batch_size or remaining <= 0 or self._closed:
                    break
                if self.in_flight is not None and self.in_flight() <= len(batch) + self._busy + len(self._queue):
                    break  # nobody else is on the way: waiting would only add latency
                self._cond.wait(remaining)
            return batch

    def _work(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            with self._cond:
                self._busy += len(batch)
            try:
                self._run(batch)
            finally:
                with self._cond:
                    self._busy -= len(batch)

    def _run(self, batch: list[_Item]) -> None:
        started = time.perf_counter()
        waits = [started - item.queued_at for item in batch]
        try:
            if len(batch) == 1:
                outputs = self.predict(batch[0].inputs, batch[0].raw)
                batch[0].result = outputs
            else:
                merged = [np.concatenate([item.inputs[i] for item in batch]) for i in range(len(batch[0].inputs))]
                outputs = self.predict(merged, batch[0].raw)
                start = 0
                for item in batch:
                    item.result = [out[start:start + item.rows] for out in outputs]
                    start += item.rows
        except ModelpressError as err:
            for item in batch:
                item.error = err
        except Exception as err:  # an interpreter failure must not kill the worker or hang clients
            for item in batch:
                item.error = ModelpressError(f"{self.name} failed to run: {type(err).__name__}: {err}")
        if self.on_batch is not None:
            self.on_batch(sum(item.rows for item in batch), waits)
        for item in batch:
            item.done.set()

    def close(self) -> None:
        """Stop taking requests; queued ones still run; workers exit when the queue is empty."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
