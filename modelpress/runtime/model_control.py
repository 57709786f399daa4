"""Model control for the registry: which models are loaded (``poll`` or ``explicit`` mode, the repository
API's load / unload) and the memory budget (load on demand at a model's first request, unload the least
recently used idle model when the next one would not fit)::

    control = ModelControl(registry)          # the registry makes one; protocols reach it through the plane
    control.load("digits")                    # POST /v2/repository/models/digits/load
    control.unload("digits", version=2)       # POST /v2/repository/models/digits/versions/2/unload
    control.index()                           # [{"name": "digits", "version": "1", "state": "READY", ...}]

With ``max_memory`` set, a model counts ``max(package estimate, RSS growth measured at its load)`` bytes;
a request for a model that is not loaded waits up to ``load_wait`` seconds for it, then gets a 503 with
Retry-After while the load goes on. A model is refused only when its package estimate alone is over the
whole budget (a lone model whose measured size turns out larger is kept: nothing else can be unloaded).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from modelpress.errors import ArtifactError, ModelpressError, NotFoundError, UnavailableError
from modelpress.manifest import read_manifest
from modelpress.runtime.memory import package_estimate, parse_memory, process_rss
from modelpress.runtime.state import ModelState

if TYPE_CHECKING:
    from modelpress.runtime.registry import ModelRegistry
    from modelpress.runtime.served import ModelRecord

log = logging.getLogger(__name__)
INDEX_STATES = {ModelState.AVAILABLE: "READY", ModelState.LOADING: "LOADING", ModelState.UNLOADING: "UNLOADING"}
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _LoadJob:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: ModelpressError | None = None


class _ControlMetrics:
    """Loads, unloads, evictions and on-demand waits by model; the budget and its use, at scrape time."""

    def __init__(self, control: ModelControl, registry) -> None:
        self.control = control
        self.loads = Counter("modelpress_model_loads", "Model loads (a model's versions brought up)", ["model"],
                             registry=registry)
        self.unloads = Counter("modelpress_model_unloads", "Model unloads by reason (api, eviction)",
                               ["model", "reason"], registry=registry)
        self.evictions = Counter("modelpress_model_evictions", "Idle models unloaded to make room (memory budget)",
                                 ["model"], registry=registry)
        self.waits = Counter("modelpress_on_demand_waits", "Requests that waited for an on-demand load, by outcome "
                             "(loaded, timeout, failed)", ["model", "outcome"], registry=registry)
        self.wait_seconds = Histogram("modelpress_on_demand_wait_seconds", "Time requests waited for on-demand loads",
                                      ["model"], buckets=WAIT_BUCKETS, registry=registry)
        registry.register(self)

    def collect(self):
        budget = GaugeMetricFamily("modelpress_memory_budget_bytes", "The memory budget for loaded models (0: none)")
        budget.add_metric([], float(self.control.budget or 0))
        used = GaugeMetricFamily("modelpress_memory_used_bytes", "Memory counted against the budget, by model",
                                 labels=["model"])
        for name, size in self.control.sizes().items():
            used.add_metric([name], float(size))
        rss = GaugeMetricFamily("modelpress_process_resident_bytes", "Resident memory of this server process")
        rss.add_metric([], float(process_rss() or 0))
        yield from (budget, used, rss)


class ModelControl:
    """Which models the registry keeps loaded; every change of a model's versions goes through here, under
    the registry's scan lock, so that a scan, an API call and an on-demand load never race."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        config = registry.config
        self.explicit = config.model_control == "explicit"
        self.budget = parse_memory(config.max_memory) if config.max_memory else None
        self.load_wait = config.load_wait
        self.startup = set(config.load_models)
        self._cond = threading.Condition(threading.Lock())  # notified when a model becomes idle
        self._jobs: dict[str, _LoadJob] = {}
        self._measured_once = False
        self._local = threading.local()
        self.metrics = None
        if registry.metrics is not None:
            self.metrics = _ControlMetrics(self, registry.metrics.registry)

    # --- what the registry asks ----------------------------------------------------------------------
    def initially_wanted(self, name: str) -> bool:
        """Whether a model first seen by a scan is to be served: always in poll mode; in explicit mode
        when named in ``load_models`` (``*``: every model)::

            ModelRecord(name, wanted=control.initially_wanted(name))
        """
        return not self.explicit or "*" in self.startup or name in self.startup

    def sync(self, record: ModelRecord) -> None:
        """Bring a model in line with the repository after a scan (scan lock held)::

            record.folders = entry.versions; control.sync(record)
        """
        if not record.wanted:
            if record.versions:
                self._unload_now(record, "api")
            return
        if self.budget is None:
            self._sync_counted(record)
        elif record.versions:  # resident: hot reload within the budget; not resident: loads on demand
            self._bring_up(record, deadline=time.monotonic() + self.load_wait)

    def _sync_counted(self, record: ModelRecord) -> None:
        resident = bool(record.versions)
        self.registry._sync_model(record, record.folders)
        if not resident and record.versions and self.metrics is not None:
            self.metrics.loads.labels(record.name).inc()

    def notify_idle(self) -> None:
        """Wake a load waiting for room: a request ended (``acquire`` calls it)::

            control.notify_idle()
        """
        if self.budget is not None:
            with self._cond:
                self._cond.notify_all()

    @contextlib.contextmanager
    def reserve(self, record: ModelRecord) -> Iterator[None]:
        """Hold ``record`` against eviction while a request checks it out; load it on demand first when
        the budget unloaded it (or never loaded it), waiting at most ``load_wait`` seconds::

            with control.reserve(record), registry._lock:
                served = record.versions[max(record.versions)]; served.inflight += 1
        """
        if self.budget is None:  # nothing is ever evicted: no bookkeeping on the request path
            yield
            return
        with self.registry._lock:
            record.waiters += 1
        try:
            if record.wanted and not record.versions:
                self._wait_for_load(record)
            yield
        finally:
            with self.registry._lock:
                record.waiters -= 1
            self.notify_idle()

    # --- the repository API --------------------------------------------------------------------------
    def load(self, name: str, version: int | None = None) -> None:
        """Load a model (its policy's versions) or one more version of it, now; waits for the load::

            control.load("digits"); control.load("digits", version=1)
        """
        record = self.registry.lookup_model(name)
        if version is not None and version not in record.folders:
            raise NotFoundError(f"model {name!r} has no version {version} in the repository; versions there: "
                                f"{', '.join(str(v) for v in sorted(record.folders)) or 'none'}")
        with self.registry._scan_lock:
            record.wanted, record.reason = True, None
            if version is not None:
                record.extra.add(version)
                record.excluded.discard(version)
            else:
                record.excluded.clear()
            if self.budget is None:
                self._sync_counted(record)
            else:
                self._bring_up(record, deadline=time.monotonic() + self.load_wait)
        if not record.versions or (version is not None and version not in record.versions):
            raise ArtifactError(f"model {name!r} failed to load{self.registry._why(record)}")

    def unload(self, name: str, version: int | None = None) -> None:
        """Unload a model (it stays unloaded, on-demand loading included, until loaded again), or one
        version of it; in-flight requests finish first::

            control.unload("digits", version=1); control.unload("digits")
        """
        record = self.registry.lookup_model(name)
        with self.registry._scan_lock:
            if version is None:
                record.wanted = False
                record.reason = "unloaded through the repository API"
                self._unload_now(record, "api")
                return
            if version not in record.versions and version not in record.folders:
                raise NotFoundError(f"model {name!r} has no version {version}; versions in the repository: "
                                    f"{', '.join(str(v) for v in sorted(record.folders)) or 'none'}")
            loaded = version in record.versions
            record.excluded.add(version)
            record.extra.discard(version)
            self.registry._sync_model(record, record.folders)
            if loaded and self.metrics is not None:
                self.metrics.unloads.labels(name, "api").inc()

    def index(self, ready_only: bool = False) -> list[dict]:
        """The repository index as Triton and MLServer answer it: a row per model version with its state
        (READY, LOADING, UNLOADING, UNAVAILABLE) and the reason when it is not ready::

            control.index(ready_only=True)    # [{"name": "digits", "version": "2", "state": "READY", "reason": ""}]
        """
        rows = []
        with self.registry._lock:
            for name in sorted(self.registry.models):
                record = self.registry.models[name]
                numbers = sorted(set(record.folders) | set(record.versions) | set(record.retired), reverse=True)
                for v in numbers:
                    served = record.versions.get(v)
                    retired = record.retired.get(v)
                    if served is not None:
                        state, reason = INDEX_STATES.get(served.state, "UNAVAILABLE"), ""
                    elif retired is not None and retired.state == ModelState.UNLOADING:
                        state, reason = "UNLOADING", ""
                    elif v not in record.folders:
                        continue
                    else:
                        state, reason = "UNAVAILABLE", self._reason(record, v)
                    row = {"name": name, "version": str(v), "state": state, "reason": reason}
                    if state == "READY" and record.size:
                        row["memory_bytes"] = record.size
                    rows.append(row)
                if not numbers:
                    rows.append({"name": name, "version": "", "state": "UNAVAILABLE",
                                 "reason": record.config_error or "no complete version folder yet"})
        return [row for row in rows if row["state"] == "READY"] if ready_only else rows

    def take_wait(self) -> float | None:
        """Seconds the current thread's last request waited for an on-demand load (then forgotten), or None:
        the service reports it to the client in a ``Server-Timing`` header::

            waited = control.take_wait()      # 0.042 after a request that waited 42 ms, else None
        """
        waited = getattr(self._local, "waited", None)
        self._local.waited = None
        return waited

    def sizes(self) -> dict[str, int]:
        """Bytes counted against the budget by each loaded model::

            control.sizes()                   # {"digits": 1237536}
        """
        with self.registry._lock:
            return {r.name: r.size for r in self.registry.models.values() if r.versions}

    # --- internals -----------------------------------------------------------------------------------
    def _reason(self, record: ModelRecord, version: int) -> str:
        if version in record.failed:
            return record.failed[version][1]
        if record.config_error:
            return record.config_error
        if record.reason:
            return record.reason
        if not record.wanted:
            return "not loaded (explicit model control): load it with POST /v2/repository/models/<model>/load"
        if record.versions or version in record.excluded:
            return "not served by the model's version policy"
        return "not loaded yet: loads on its first request (memory budget)"

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
        if self.metrics is not None:
            self.metrics.waits.labels(record.name, outcome).inc()
            self.metrics.wait_seconds.labels(record.name).observe(time.monotonic() - started)
        if not finished:
            raise UnavailableError(f"model {record.name!r} is being loaded on demand (memory budget) and was not "
                                   f"ready within {self.load_wait:g} s; retry shortly", retry_after=2)
        if job.error is not None:
            raise job.error

    def _run_job(self, record: ModelRecord, job: _LoadJob) -> None:
        try:
            with self.registry._scan_lock:
                if record.wanted and not record.versions:
                    self._bring_up(record, deadline=time.monotonic() + max(self.load_wait, 1.0) * 4)
            if not record.versions:
                job.error = UnavailableError(f"model {record.name!r} could not be loaded on demand"
                                             f"{self.registry._why(record)}", retry_after=5)
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
            pool = self.registry._settings(record, manifest)[2]
            total += package_estimate(folder, manifest, pool)
        return total

    def _used(self, excluding: ModelRecord | None = None) -> int:
        with self.registry._lock:
            return sum(r.size for r in self.registry.models.values() if r.versions and r is not excluding)

    def _idle_victim(self, keep: ModelRecord) -> ModelRecord | None:
        with self.registry._lock:
            idle = [r for r in self.registry.models.values()
                    if r is not keep and r.versions and not r.waiters
                    and all(s.inflight == 0 for s in r.versions.values())]
            return min(idle, key=lambda r: r.last_used) if idle else None

    def _bring_up(self, record: ModelRecord, deadline: float) -> None:
        """Make room for ``record`` (evicting idle models, least recently used first), then load it and
        measure its size (scan lock held)."""
        assert self.budget is not None
        if not record.pending():
            self.registry._sync_model(record, record.folders)  # removals only: nothing to make room for
            return
        estimate = self._estimate(record)
        need = max(estimate, record.measured or 0)
        if estimate > self.budget:
            raise UnavailableError(f"model {record.name!r} needs about {estimate / 2**20:.1f} MiB by its package, more "
                                   f"than the whole memory budget ({self.budget / 2**20:.1f} MiB); raise "
                                   "--max-memory or serve it on a larger machine")
        while self._used(excluding=record) + need > self.budget and self._used(excluding=record) > 0:
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
        self.registry._sync_model(record, record.folders)
        after = process_rss()
        if record.versions:
            # the process's first interpreter also pays for the runtime's own start-up: not the model's size
            if not resident and self._measured_once and before is not None and after is not None and after > before:
                record.measured = after - before
            self._measured_once = True
            record.size = max(need, record.measured or 0)
            record.last_used = time.monotonic()
            record.reason = None
            if self.metrics is not None:
                self.metrics.loads.labels(record.name).inc()
            log.info("model %s loaded within the memory budget: %.1f MiB (package estimate %.1f MiB, measured "
                     "%.1f MiB); %.1f of %.1f MiB used", record.name, record.size / 2**20, estimate / 2**20,
                     (record.measured or 0) / 2**20, self._used() / 2**20, self.budget / 2**20)
        else:
            record.size = 0

    def _evict(self, victim: ModelRecord, newcomer: ModelRecord) -> None:
        log.info("unloading idle model %s (least recently used, %.1f MiB) to make room for %s", victim.name,
                 victim.size / 2**20, newcomer.name)
        victim.reason = f"unloaded to make room for {newcomer.name} (memory budget); loads again on its next request"
        self._unload_now(victim, "eviction")
        if self.metrics is not None:
            self.metrics.evictions.labels(victim.name).inc()

    def _unload_now(self, record: ModelRecord, reason: str) -> None:
        """Take every version of ``record`` out of service and unload it once its in-flight requests end;
        an eviction (idle by construction) waits for the memory to be returned before the next load."""
        with self.registry._lock:
            served = list(record.versions.values())
            record.versions = {}
            record.size = 0
        for version in served:
            if reason == "eviction":
                version.state = ModelState.UNLOADING
                version.retire(self.registry.config.unload_timeout)
            else:
                self.registry._retire(record, version)
        if served and self.metrics is not None:
            self.metrics.unloads.labels(record.name, reason).inc()
