"""The memory budget (``max_memory``): reservations, least-recently-used eviction and on-demand loads::

    budget = MemoryBudget(config, table, loader, counters)
    with budget.reserve(record):          # a request: loads the model first if the budget unloaded it
        ...                               # (waiting at most load_wait seconds), and holds it against eviction
    budget.bring_up(record, deadline)     # make room (evict idle models, LRU first), load, measure

A model counts ``max(package estimate, RSS growth measured at its load)`` bytes; a request for a model
that is not loaded waits up to ``load_wait`` seconds for it, then gets a 503 with Retry-After while the load
goes on. A model is refused only when its package estimate alone is over the whole budget (a lone model
whose measured size turns out larger is kept: nothing else can be unloaded). Without ``max_memory``
(``budget.limit is None``) nothing is counted and ``reserve`` costs nothing on the request path.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily

from modelpress.errors import ModelpressError, UnavailableError
from modelpress.manifest import read_manifest
from modelpress.runtime.config import RuntimeConfig
from modelpress.runtime.load_metrics import LoadMetrics
from modelpress.runtime.loader import VersionLoader
from modelpress.runtime.memory import package_estimate, parse_memory, process_rss
from modelpress.runtime.records import RecordTable
from modelpress.runtime.served import ModelRecord

log = logging.getLogger("modelpress.runtime.model_control")


class _LoadJob:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: ModelpressError | None = None


class MemoryBudget:
    """What is loaded under ``max_memory``, and room for the next model by evicting idle ones."""

    def __init__(self, config: RuntimeConfig, table: RecordTable, loader: VersionLoader,
                 counters: LoadMetrics | None = None) -> None:
        self.limit = parse_memory(config.max_memory) if config.max_memory else None
        self.load_wait = config.load_wait
        self.table, self.loader, self.counters = table, loader, counters
        self._cond = threading.Condition(threading.Lock())  # notified when a model becomes idle
        self._jobs: dict[str, _LoadJob] = {}
        self._measured_once = False
        self._local = threading.local()

    # --- the request path ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def reserve(self, record: ModelRecord) -> Iterator[None]:
        """Hold ``record`` against eviction while a request checks it out; load it on demand first when
        the budget unloaded it (or never loaded it), waiting at most ``load_wait`` seconds::

            with budget.reserve(record), table.lock:
                served = record.versions[max(record.versions)]; served.inflight += 1
        """
        if self.limit is None:  # nothing is ever evicted: no bookkeeping on the request path
            yield
            return
        with self.table.lock:
            record.waiters += 1
        try:
            if record.wanted and not record.versions:
                self._wait_for_load(record)
            yield
        finally:
            with self.table.lock:
                record.waiters -= 1
            self.notify_idle()

    def notify_idle(self) -> None:
        """Wake a load waiting for room: a request ended (``acquire`` calls it)."""
        if self.limit is not None:
            with self._cond:
                self._cond.notify_all()

    def take_wait(self) -> float | None:
        """Seconds the current thread's last request waited for an on-demand load (then forgotten), or None::

            waited = budget.take_wait()      # 0.042 after a request that waited 42 ms, else None
        """
        waited = getattr(self._local, "waited", None)
        self._local.waited = None
        return waited

    def sizes(self) -> dict[str, int]:
        """Bytes counted against the budget by each loaded model: ``{"digits": 1237536}``."""
        return {r.name: r.size for r in self.table.loaded()}

    def collect(self):
        """The budget and its use, at scrape time (a Prometheus collector)."""
        budget = GaugeMetricFamily("modelpress_memory_budget_bytes", "The memory budget for loaded models (0: none)")
        budget.add_metric([], float(self.limit or 0))
        used = GaugeMetricFamily("modelpress_memory_used_bytes", "Memory counted against the budget, by model",
                                 labels=["model"])
        for name, size in self.sizes().items():
            used.add_metric([name], float(size))
        rss = GaugeMetricFamily("modelpress_process_resident_bytes", "Resident memory of this server process")
        rss.add_metric([], float(process_rss() or 0))
        yield from (budget, used, rss)

    # --- loads within the budget ---------------------------------------------------------------------
    def bring_up(self, record: ModelRecord, deadline: float) -> None:
        """Make room for ``record`` (evicting idle models, least recently used first), then load it and
        measure its size (the table's change_lock held)."""
        assert self.limit is not None
        if not record.pending():
            self.loader.sync(record)  # removals only: nothing to make room for
            return
        estimate = self._estimate(record)
        need = max(estimate, record.measured or 0)
        if estimate > self.limit:
            raise UnavailableError(f"model {record.name!r} needs about {estimate / 2**20:.1f} MiB by its package, more "
                                   f"than the whole memory budget ({self.limit / 2**20:.1f} MiB); raise "
                                   "--max-memory or serve it on a larger machine")
        while self._used(excluding=record) + need > self.limit and self._used(excluding=record) > 0:
            victim = self._idle_victim(keep=record)
            if victim is not None:
                self._evict(victim, record)
                continue
            with self._cond:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    busy = ", ".join(sorted(r for r in self.sizes() if r != record.name))
                    raise UnavailableError(f"the memory budget is full of models that are busy ({busy}); model "
                                           f"{record.name!r} loads as soon as one is idle", retry_after=2)
                self._cond.wait(min(remaining, 0.5))
        resident = bool(record.versions)  # a hot reload: old and new versions overlap, nothing to measure
        before = process_rss()
        self.loader.sync(record)
        after = process_rss()
        if record.versions:
            # the process's first interpreter also pays for the runtime's own start-up: not the model's size
            if not resident and self._measured_once and before is not None and after is not None and after > before:
                record.measured = after - before
            self._measured_once = True
            record.size = max(need, record.measured or 0)
            record.last_used = time.monotonic()
            record.reason = None
            if self.counters is not None:
                self.counters.loads.labels(record.name).inc()
            log.info("model %s loaded within the memory budget: %.1f MiB (package estimate %.1f MiB, measured "
                     "%.1f MiB); %.1f of %.1f MiB used", record.name, record.size / 2**20, estimate / 2**20,
                     (record.measured or 0) / 2**20, self._used() / 2**20, self.limit / 2**20)
        else:
            record.size = 0

    def _wait_for_load(self, record: ModelRecord) -> None:
        started = time.monotonic()
        with self._cond:
            job = self._jobs.get(record.name)
            if job is None:
                job = self._jobs[record.name] = _LoadJob()
                threading.Thread(target=self._run_job, args=(record, job), name=f"load-{record.name}",
                                 daemon=True).start()
        finished = job.done.wait(self.load_wait)
        outcome = "timeout" if not finished else ("failed" if job.error else "loaded")
        self._local.waited = time.monotonic() - started
        if self.counters is not None:
            self.counters.waits.labels(record.name, outcome).inc()
            self.counters.wait_seconds.labels(record.name).observe(time.monotonic() - started)
        if not finished:
            raise UnavailableError(f"model {record.name!r} is being loaded on demand (memory budget) and was not "
                                   f"ready within {self.load_wait:g} s; retry shortly", retry_after=2)
        if job.error is not None:
            raise job.error

    def _run_job(self, record: ModelRecord, job: _LoadJob) -> None:
        try:
            with self.table.change_lock:
                if record.wanted and not record.versions:
                    self.bring_up(record, deadline=time.monotonic() + max(self.load_wait, 1.0) * 4)
            if not record.versions:
                job.error = UnavailableError(f"model {record.name!r} could not be loaded on demand: "
                                             f"{record.why_not()}", retry_after=5)
        except ModelpressError as err:
            job.error = err
        except Exception as err:  # never leave waiters hanging on a job that died
            log.exception("loading model %s on demand failed", record.name)
            job.error = UnavailableError(f"model {record.name!r} failed to load on demand ({type(err).__name__})",
                                         retry_after=5)
        finally:
            with self._cond:
                self._jobs.pop(record.name, None)
            job.done.set()

    def _estimate(self, record: ModelRecord) -> int:
        """Bytes the versions this model would serve are expected to hold, by their packages."""
        total = 0
        for v in record.choose(record.loadable()):
            folder = record.folders[v].path
            try:
                manifest = read_manifest(folder)
            except ModelpressError:
                continue  # the load itself will report it
            pool = self.loader.settings(record, manifest)[2]
            total += package_estimate(folder, manifest, pool)
        return total

    def _used(self, excluding: ModelRecord | None = None) -> int:
        return sum(r.size for r in self.table.loaded(excluding=excluding))

    def _idle_victim(self, keep: ModelRecord) -> ModelRecord | None:
        with self.table.lock:
            idle = [r for r in self.table.loaded(excluding=keep)
                    if not r.waiters and all(s.inflight == 0 for s in r.versions.values())]
            return min(idle, key=lambda r: r.last_used) if idle else None

    def _evict(self, victim: ModelRecord, newcomer: ModelRecord) -> None:
        log.info("unloading idle model %s (least recently used, %.1f MiB) to make room for %s", victim.name,
                 victim.size / 2**20, newcomer.name)
        victim.reason = f"unloaded to make room for {newcomer.name} (memory budget); loads again on its next request"
        unloaded = self.loader.take_down(victim, wait=True)  # idle by construction: its memory back before the load
        if self.counters is not None:
            if unloaded:
                self.counters.unloads.labels(victim.name, "eviction").inc()
            self.counters.evictions.labels(victim.name).inc()
