"""Prometheus counters of model loads, unloads, evictions and on-demand waits, shared by model control
and the memory budget (one set per app, in the app's own CollectorRegistry)::

    counters = LoadMetrics(metrics.registry)
    counters.unloads.labels("digits", "api").inc()
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class LoadMetrics:
    """Loads, unloads (by reason: api, eviction), evictions and on-demand waits (by outcome), by model."""

    def __init__(self, registry: CollectorRegistry) -> None:
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
