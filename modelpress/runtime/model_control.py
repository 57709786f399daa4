"""Model control: which models are loaded (``poll`` or ``explicit`` mode) and the repository API's
index / load / unload. Every change goes through the table's ``change_lock``, so that a scan, an API call and
an on-demand load never race; under a memory budget, loads go through :class:`MemoryBudget` for room::

    control = ModelControl(config, table, loader, budget)   # built by modelpress.runtime.parts.build_parts
    control.load("digits")                    # POST /v2/repository/models/digits/load
    control.unload("digits", version=2)       # POST /v2/repository/models/digits/versions/2/unload
    control.index()                           # [{"name": "digits", "version": "1", "state": "READY", ...}]
"""

from __future__ import annotations

import logging
import time

from modelpress.errors import ArtifactError, NotFoundError
from modelpress.runtime.budget import MemoryBudget
from modelpress.runtime.config import RuntimeConfig
from modelpress.runtime.load_metrics import LoadMetrics
from modelpress.runtime.loader import VersionLoader
from modelpress.runtime.records import RecordTable
from modelpress.runtime.served import ModelRecord
from modelpress.runtime.state import ModelState

log = logging.getLogger(__name__)
INDEX_STATES = {ModelState.AVAILABLE: "READY", ModelState.LOADING: "LOADING", ModelState.UNLOADING: "UNLOADING"}


class ModelControl:
    """Which models the runtime keeps loaded, and the repository API over them."""

    def __init__(self, config: RuntimeConfig, table: RecordTable, loader: VersionLoader, budget: MemoryBudget,
                 counters: LoadMetrics | None = None) -> None:
        self.explicit = config.model_control == "explicit"
        self.startup = set(config.load_models)
        self.table, self.loader, self.budget, self.counters = table, loader, budget, counters

    # --- what a scan asks ----------------------------------------------------------------------------
    def initially_wanted(self, name: str) -> bool:
        """Whether a model first seen by a scan is to be served: always in poll mode; in explicit mode
        when named in ``load_models`` (``*``: every model)::

            ModelRecord(name, wanted=control.initially_wanted(name))
        """
        return not self.explicit or "*" in self.startup or name in self.startup

    def sync(self, record: ModelRecord) -> None:
        """Bring a model in line with the repository after a scan (change_lock held)::

            loader.refresh(record, entry, known); control.sync(record)
        """
        if not record.wanted:
            if record.versions:
                self._unload_now(record)
            return
        if self.budget.limit is None:
            self._sync_counted(record)
        elif record.versions:  # resident: hot reload within the budget; not resident: loads on demand
            self.budget.bring_up(record, deadline=time.monotonic() + self.budget.load_wait)

    def take_wait(self) -> float | None:
        """Seconds this thread's last request waited for an on-demand load, or None (see MemoryBudget)::

            waited = control.take_wait()
        """
        return self.budget.take_wait()

    # --- the repository API --------------------------------------------------------------------------
    def load(self, name: str, version: int | None = None) -> None:
        """Load a model (its policy's versions) or one more version of it, now; waits for the load::

            control.load("digits"); control.load("digits", version=1)
        """
        record = self.table.lookup(name)
        if version is not None and version not in record.folders:
            raise NotFoundError(f"model {name!r} has no version {version} in the repository; versions there: "
                                f"{', '.join(str(v) for v in sorted(record.folders)) or 'none'}")
        with self.table.change_lock:
            record.wanted, record.reason = True, None
            if version is not None:
                record.extra.add(version)
                record.excluded.discard(version)
            else:
                record.excluded.clear()
            if self.budget.limit is None:
                self._sync_counted(record)
            else:
                self.budget.bring_up(record, deadline=time.monotonic() + self.budget.load_wait)
        if not record.versions or (version is not None and version not in record.versions):
            raise ArtifactError(f"model {name!r} failed to load: {record.why_not()}")

    def unload(self, name: str, version: int | None = None) -> None:
        """Unload a model (it stays unloaded, on-demand loading included, until loaded again), or one
        version of it; in-flight requests finish first::

            control.unload("digits", version=1); control.unload("digits")
        """
        record = self.table.lookup(name)
        with self.table.change_lock:
            if version is None:
                record.wanted = False
                record.reason = "unloaded through the repository API"
                self._unload_now(record)
                return
            if version not in record.versions and version not in record.folders:
                raise NotFoundError(f"model {name!r} has no version {version}; versions in the repository: "
                                    f"{', '.join(str(v) for v in sorted(record.folders)) or 'none'}")
            loaded = version in record.versions
            record.excluded.add(version)
            record.extra.discard(version)
            self.loader.sync(record)
            if loaded and self.counters is not None:
                self.counters.unloads.labels(name, "api").inc()

    def index(self, ready_only: bool = False) -> list[dict]:
        """The repository index as Triton and MLServer answer it: a row per model version with its state
        (READY, LOADING, UNLOADING, UNAVAILABLE) and the reason when it is not ready::

            control.index(ready_only=True)    # [{"name": "digits", "version": "2", "state": "READY", "reason": ""}]
        """
        rows = []
        with self.table.lock:
            for record in self.table.records():
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
                        state, reason = "UNAVAILABLE", record.why_not(v)
                    row = {"name": record.name, "version": str(v), "state": state, "reason": reason}
                    if state == "READY" and record.size:
                        row["memory_bytes"] = record.size
                    rows.append(row)
                if not numbers:
                    rows.append({"name": record.name, "version": "", "state": "UNAVAILABLE",
                                 "reason": record.why_not()})
        return [row for row in rows if row["state"] == "READY"] if ready_only else rows

    # --- internals -----------------------------------------------------------------------------------
    def _sync_counted(self, record: ModelRecord) -> None:
        resident = bool(record.versions)
        self.loader.sync(record)
        if not resident and record.versions and self.counters is not None:
            self.counters.loads.labels(record.name).inc()

    def _unload_now(self, record: ModelRecord) -> None:
        """Take every version of ``record`` out of service (an API unload); each unloads once its
        in-flight requests end."""
        if self.loader.take_down(record) and self.counters is not None:
            self.counters.unloads.labels(record.name, "api").inc()
