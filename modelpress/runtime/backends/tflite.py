"""TFLite backend: a pool of :class:`modelpress.tflite_interpreter.TFLiteModel` (one per concurrent
request; an interpreter is not thread-safe), LiteRT first, then tflite_runtime, then tf.lite::

    backend = TFLiteBackend("repo/digits/1", read_manifest("repo/digits/1"), pool_size=4, threads=1)
    backend.load()
    probs, = backend.predict([x_float32])            # quantized models quantize / dequantize here
    codes, = backend.predict([x_uint8], raw=True)     # the model's own integers, untouched
"""

from __future__ import annotations

import collections
import logging
import queue
import sys
import threading
import time

import numpy as np

from modelpress.errors import ArtifactError, UnavailableError
from modelpress.runtime import tracing
from modelpress.runtime.backends.base import Backend

log = logging.getLogger(__name__)
_DELEGATES: dict[str, bool] = {}
_DELEGATES_LOCK = threading.Lock()


def resolve_delegate(delegate: str | None) -> str | None:
    """``delegate`` when its library loads here, else None, probed once per process (one clear log line
    when it is asked for but absent, instead of one per interpreter)."""
    if not delegate or delegate in ("none", "xnnpack"):
        return delegate
    from modelpress.tflite_interpreter import _delegates, interpreter_backend

    with _DELEGATES_LOCK:
        if delegate not in _DELEGATES:
            hook = sys.unraisablehook
            sys.unraisablehook = lambda unraisable: None  # LiteRT's half-made Delegate complains in __del__
            try:
                _DELEGATES[delegate] = bool(_delegates(delegate, interpreter_backend()[1]))
            finally:
                sys.unraisablehook = hook
    return delegate if _DELEGATES[delegate] else None


class InterpreterPool:
    """The free interpreters of one version, last returned first (its caches are the warmest): a request
    takes one for itself alone (an interpreter is not thread-safe) and gives it back. Taking a free one is a
    ``deque.pop`` (atomic under the GIL) without a lock; only a request that finds none waits, on a condition
    that a return signals when someone waits::

        pool = InterpreterPool([a, b]); model = pool.get(timeout=30); ...; pool.put(model)
    """

    def __init__(self, items=()):
        self._free = collections.deque(items)
        self._cond = threading.Condition(threading.Lock())
        self._waiting = 0

    def get(self, timeout: float) -> object:
        """A free interpreter, waiting up to ``timeout`` seconds for one; ``queue.Empty`` when none came."""
        try:
            return self._free.pop()
        except IndexError:
            pass
        deadline = time.monotonic() + timeout
        with self._cond:
            self._waiting += 1  # counted before looking again, so a put after this look sees it and signals
            try:
                while True:
                    try:
                        return self._free.pop()
                    except IndexError:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise queue.Empty from None
                        self._cond.wait(left)
            finally:
                self._waiting -= 1

    def put(self, item: object) -> None:
        self._free.append(item)
        if self._waiting:
            with self._cond:
                self._cond.notify()

    def qsize(self) -> int:
        return len(self._free)

    def clear(self) -> None:
        self._free.clear()


def fit_threads(wanted: int, pool: int, model: str = "", cores: int | None = None) -> int:
    """Interpreter threads for a model whose device profile asks for ``wanted``: the profile describes the
    device the model was made for, so on this host ``threads x pool`` stays within the usable cores (CPU
    affinity and cgroup quota, :func:`~modelpress.runtime.config.usable_cpus`), one thread at least. The
    choice is logged when it differs from the profile's; an explicit ``interpreter_threads`` is not fitted::

        fit_threads(4, pool=2, cores=2)    # 1: two interpreters of four threads would oversubscribe 2 cores
        fit_threads(4, pool=1, cores=8)    # 4: the profile's threads fit
    """
    from modelpress.runtime.config import usable_cpus

    cores = cores or usable_cpus()
    threads = max(1, min(int(wanted), cores // max(1, pool)))
    if threads != wanted:
        log.info("%s: %d interpreter thread(s) instead of the profile's %d: %d interpreter(s) x %d thread(s) "
                 "would oversubscribe the %d usable core(s) (CPU affinity and cgroup quota); --interpreter-threads "
                 "(or interpreter_threads in config.yaml) overrides", model or "model", threads, wanted, pool,
                 wanted, cores)
    return threads


class TFLiteBackend(Backend):
    platform = "tflite"

    def load(self) -> None:
        from modelpress.tflite_interpreter import TFLiteModel

        path = self.folder / self.manifest.model_file
        asked, self.delegate = self.delegate, resolve_delegate(self.delegate)
        if asked and self.delegate is None:
            log.warning("%s asks for the %s delegate, which is not available here (its library is not "
                        "installed); running on the CPU", self.folder, asked)
        self._pool = InterpreterPool()
        signature = self.manifest.signature
        first = TFLiteModel(path, threads=self.threads or 1, delegate=self.delegate, signature=signature)
        self.interpreter = first.backend
        got = [s.dtype for s in first.input_specs()]
        want = [s.dtype for s in self.inputs]
        if got != want:
            raise ArtifactError(f"{path} takes inputs of {got}, but its manifest says {want}; re-create the package")
        self._pool.put(first)
        for _ in range(self.pool_size - 1):
            self._pool.put(TFLiteModel(path, threads=self.threads or 1, delegate=self.delegate, signature=signature))
        log.info("loaded %s with %s: %d interpreter(s), %s thread(s), delegate %s", path, self.interpreter,
                 self.pool_size, self.threads or 1, self.delegate or "none")

    def predict(self, inputs: list[np.ndarray], raw: bool = False) -> list[np.ndarray]:
        try:
            with tracing.stage("queue"):  # waiting for a free interpreter
                model = self._pool.get(timeout=30)
        except queue.Empty:
            raise UnavailableError("every interpreter stayed busy for 30 s; retry later", retry_after=1) from None
        try:
            with tracing.stage("invoke"):
                return model.predict(inputs, dequantize=not raw)
        finally:
            self._pool.put(model)

    def unload(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.clear()
        self._pool = InterpreterPool()
