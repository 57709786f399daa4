"""Where trials run: in this process, in local worker processes, or as tasks on a Ray cluster.

    executor = make_executor(search)          # search.launch: from search.options.workers / .ray
    trials = executor.run(search, profile, measurer, [settings_a, settings_b])   # measured, in the order given
    executor.describe()                       # {"kind": "processes", "workers": 2, "threads_per_worker": 1, ...}
    executor.close()

The strategy never knows which: it hands the engine a batch of candidates that can run at once
(:meth:`modelpress.search.engine.Search.trials`) and gets them back in order. Every kind runs the same trial
function (:func:`modelpress.search.worker.run_trial`, which calls the engine's ``measure_trial``). One worker
runs trials in the driver exactly as a sequential search does. A worker process that dies costs the trials it
was running: each is retried once, alone, and recorded as an error if it dies again.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from modelpress.cpus import usable_cpus

THREADS_PER_TRIAL = 4   # a small model's fine-tuning gains little past this many threads
MAX_DEFAULT_WORKERS = 8


def visible_gpus() -> list[str]:
    """GPU ids this process may use, from ``CUDA_VISIBLE_DEVICES`` or TensorFlow's device list."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import tensorflow as tf

        return [str(i) for i, _ in enumerate(tf.config.list_physical_devices("GPU"))]
    except ImportError:
        return []


def default_workers(cores: int | None = None, gpus: int | None = None) -> int:
    """One worker per GPU; without GPUs one per ``THREADS_PER_TRIAL`` cores (at least 1, at most 8)::

        default_workers(cores=2, gpus=0)      # 1: trials run in the driver, as a sequential search
        default_workers(cores=16, gpus=0)     # 4 workers of 4 threads
        default_workers(cores=16, gpus=2)     # 2: one per GPU
    """
    cores = cores or usable_cpus()
    gpus = len(visible_gpus()) if gpus is None else gpus
    if gpus:
        return gpus
    return max(1, min(cores // THREADS_PER_TRIAL, MAX_DEFAULT_WORKERS))


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Cores shared out so that ``workers`` processes do not oversubscribe them::

        threads_per_worker(2, cores=2)        # 1
    """
    return max(1, (cores or usable_cpus()) // max(workers, 1))


class WorkerDied(RuntimeError):
    """A worker process ended while it ran a trial (killed, out of memory, a crash in native code)."""


class Batches:
    """Counts what the strategy submitted: batches and trials (their ratio is the parallelism it offered)."""

    def __init__(self) -> None:
        self.batches = self.submitted = 0

    def count(self, batch: list) -> None:
        self.batches += 1
        self.submitted += len(batch)

    def offered(self) -> dict[str, Any]:
        return {"batches": self.batches, "trials_submitted": self.submitted}


class InProcess:
    """Trials in the driver, one after the other: what a sequential search always did."""

    workers = 1

    def run(self, search: Any, profile: Any, measurer: Any, batch: list) -> list:
        return [search.measure_trial(profile, measurer, settings) for settings in batch]

    def describe(self) -> dict[str, Any]:
        return {"kind": "in-process", "workers": 1}

    def abort(self) -> None:
        """Ctrl-C: nothing runs elsewhere (the trial under way was interrupted in this process)."""

    def close(self) -> None:
        pass


class ProcessPool:
    """``function(payload)`` in spawned worker processes; a dead worker's payloads retried once each, alone.

        pool = ProcessPool(2, function=run, initializer=setup, initargs=(context,))
        pool.map([a, b, c])          # results in order; a WorkerDied in place of a payload that killed its worker
    """

    def __init__(self, workers: int, function: Callable[[Any], Any], initializer: Callable | None = None,
                 initargs: tuple = ()):
        self.workers, self.function = workers, function
        self.initializer, self.initargs = initializer, initargs
        self.context = multiprocessing.get_context("spawn")  # a fresh interpreter: no TensorFlow state forked
        self.slot = self.context.Value("i", 0)
        self.restarts = 0
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            args = (*self.initargs, self.slot) if self.initializer else ()
            self._pool = ProcessPoolExecutor(self.workers, mp_context=self.context, initializer=self.initializer,
                                             initargs=args)
        return self._pool

    def _restart(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None
        self.restarts += 1

    def map(self, payloads: list) -> list:
        futures = [self._executor().submit(self.function, p) for p in payloads]
        results: list[Any] = []
        lost = []
        for index, future in enumerate(futures):
            try:
                results.append(future.result())
            except BrokenProcessPool as err:
                results.append(WorkerDied(str(err)))
                lost.append(index)
        if lost:
            self._restart()
            for index in lost:  # alone, so that a payload that kills its worker again costs only itself
                try:
                    results[index] = self._executor().submit(self.function, payloads[index]).result()
                except BrokenProcessPool as err:
                    results[index] = WorkerDied(f"the worker process running it died twice ({err})")
                    self._restart()
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def abort(self) -> None:
        """Stop now (the user pressed Ctrl-C): queued payloads cancelled, running workers terminated."""
        if self._pool is not None:
            processes = list((getattr(self._pool, "_processes", None) or {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
            self._pool = None


def _call_trial(payload: tuple) -> Any:
    from modelpress.search.worker import run_trial

    return run_trial(*payload)


def startup_summary(startups: list[dict[str, Any]]) -> dict[str, Any]:
    """Worker start-up figures for press.json: each worker's, the median and the longest (seconds)."""
    seconds = sorted(s["seconds"] for s in startups)
    if not seconds:
        return {}
    return {"worker_startup_s": {"median": seconds[len(seconds) // 2], "max": seconds[-1], "workers": startups,
                                 "what": "from the worker process's creation to ready: interpreter, imports, "
                                         "TensorFlow, the source model loaded and its search built"}}


class LocalWorkers(Batches):
    """Trials in ``workers`` local processes, each with its share of the cores (and one GPU when there are GPUs)."""

    def __init__(self, search: Any, workers: int):
        super().__init__()
        from modelpress.search.worker import start, write_context

        self.workers = workers
        self.threads = threads_per_worker(workers)
        self.gpus = visible_gpus()
        self.folder = Path(tempfile.mkdtemp(prefix="modelpress-press-workers-"))
        try:
            self.context = write_context(search, self.folder, self.threads, self.gpus)
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        self.pool = ProcessPool(workers, _call_trial, initializer=start, initargs=(self.context,))
        self.startups: list[dict[str, Any]] = []

    def run(self, search: Any, profile: Any, measurer: Any, batch: list) -> list:
        self.count(batch)
        replies = self.pool.map([(self.context, profile.get_config(), settings) for settings in batch])
        self.startups += [r["startup"] for r in replies if isinstance(r, dict) and r.get("startup")]
        return [died_trial(profile, s, r) if isinstance(r, WorkerDied) else r["trial"] for s, r in zip(batch, replies)]

    def describe(self) -> dict[str, Any]:
        return {"kind": "processes", "workers": self.workers, "threads_per_worker": self.threads,
                "gpus": self.gpus, "worker_restarts": self.pool.restarts, **self.offered(),
                **startup_summary(self.startups)}

    def abort(self) -> None:
        self.pool.abort()

    def close(self) -> None:
        self.pool.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def died_trial(profile: Any, settings: Any, err: Exception | str, what: str = "worker died (retried once)") -> Any:
    """The trial a dead worker (or a failed Ray task) leaves: recorded as an error, the search goes on."""
    from modelpress.search.trial import Trial

    return Trial(profile=profile.name, settings=settings, error=f"{what}: {err}")
