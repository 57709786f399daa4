"""Prometheus metrics of one app (its own CollectorRegistry, so several apps can live in a process)::

    metrics = Metrics()                       # or Metrics(state_source): anything with states(), read at scrape time
    metrics.request("digits", "1", "v2", 200, seconds=0.004)   # one per request (requestlog.record_request)
    metrics.compute("digits", "1", seconds=0.001)              # the backend's share of it
    body, content_type = metrics.render()     # Prometheus text: modelpress_requests_total{...} 1.0, ...

The app creates its ``Metrics`` before the registry that reports into it, so it registers the model-state
collector once the registry exists instead of passing ``state_source`` here.
"""

from __future__ import annotations

import contextlib
import threading
from collections import defaultdict, deque
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from modelpress.runtime.state import VERSION_STATES

LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
STATES = tuple(str(state) for state in VERSION_STATES)


class StateCollector:
    """The state of every model version, read from ``source.states()`` at scrape time."""

    def __init__(self, source):
        self.source = source

    def collect(self):
        family = GaugeMetricFamily("modelpress_model_state", "1 for the state each model version is in",
                                   labels=["model", "version", "state"])
        for model, version, state in self.source.states():
            for name in STATES:
                family.add_metric([model, version, name], 1.0 if name == str(state) else 0.0)
        yield family


class Metrics:
    """Request counts and latency histograms for request, queue and compute; batch sizes; model states."""

    def __init__(self, state_source=None):
        self.registry = CollectorRegistry()
        self.requests = Counter("modelpress_requests", "Requests by model, version, protocol and HTTP status",
                                ["model", "version", "protocol", "status"], registry=self.registry)
        self.request_seconds = Histogram("modelpress_request_duration_seconds", "Whole request time",
                                         ["model", "protocol"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queue_seconds = Histogram("modelpress_queue_duration_seconds", "Time waiting in the batch queue",
                                       ["model", "version"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.compute_seconds = Histogram("modelpress_compute_duration_seconds", "Backend predict time",
                                         ["model", "version"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("modelpress_batch_size", "Rows per backend invoke", ["model", "version"],
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        if state_source is not None:
            self.registry.register(StateCollector(state_source))
        self._recent: dict[str, deque] = defaultdict(lambda: deque(maxlen=200))
        self._lock = threading.Lock()
        # each labelled series once looked up (prometheus_client's labels() checks and locks on every call,
        # several microseconds a request); looked up and emptied under one lock, so that a series removed by
        # forget() is never kept and counted into again
        self._series: dict[tuple, Any] = {}
        self._series_lock = threading.Lock()

    def _labelled(self, metric, *labels: str):
        series = self._series.get((metric, labels))
        if series is None:
            with self._series_lock:
                series = self._series[(metric, labels)] = metric.labels(*labels)
        return series

    def request(self, model: str, version: str, protocol: str, status: int | str, seconds: float) -> None:
        key = (model, version, protocol, status)
        series = self._series.get(key)
        if series is None:
            with self._series_lock:
                series = self._series[key] = (
                    self.requests.labels(model or "-", version or "-", protocol, str(status)),
                    self.request_seconds.labels(model, protocol) if model else None,
                    self._recent[model] if model else None)
        count, duration, recent = series
        count.inc()
        if duration is not None:
            duration.observe(seconds)
            with self._lock:
                recent.append(seconds)

    def batch(self, model: str, version: str, rows: int, waits: list[float]) -> None:
        self._labelled(self.batch_size, model, version).observe(rows)
        for wait in waits:
            self._labelled(self.queue_seconds, model, version).observe(wait)

    def compute(self, model: str, version: str, seconds: float) -> None:
        self._labelled(self.compute_seconds, model, version).observe(seconds)

    def ran(self, model: str, version: str, seconds: float, rows: int) -> None:
        """A request run on its own (no batcher): its compute time, and a batch of its ``rows`` that waited
        for nothing; the same series as :meth:`compute` and :meth:`batch`, looked up together."""
        series = self._series.get((model, version))
        if series is None:
            with self._series_lock:
                series = self._series[(model, version)] = (self.compute_seconds.labels(model, version),
                                                           self.batch_size.labels(model, version),
                                                           self.queue_seconds.labels(model, version))
        compute, batch, waited = series
        compute.observe(seconds)
        batch.observe(rows)
        waited.observe(0.0)

    def forget(self, model: str, version: str) -> None:
        """Drop the series of a version that is no longer served, so that hot reloads do not grow the
        metrics (and the process) without bound."""
        with self._series_lock:
            self._series.clear()
            for histogram in (self.queue_seconds, self.compute_seconds, self.batch_size):
                with contextlib.suppress(KeyError):
                    histogram.remove(model, version)
            stale = {tuple(s.labels[n] for n in ("model", "version", "protocol", "status"))
                     for family in self.requests.collect() for s in family.samples
                     if s.labels.get("model") == model and s.labels.get("version") == version}
            for labels in stale:
                with contextlib.suppress(KeyError):
                    self.requests.remove(*labels)

    def recent_latency(self, model: str) -> dict[str, float | int | None]:
        """p50 / p95 of the last 200 requests to ``model``, in milliseconds."""
        with self._lock:
            values = sorted(self._recent.get(model, ()))
        if not values:
            return {"count": 0, "p50_ms": None, "p95_ms": None}
        pick = lambda q: round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 3)  # noqa: E731
        return {"count": len(values), "p50_ms": pick(0.5), "p95_ms": pick(0.95)}

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
