"""Model registry: the face of the runtime's model parts that the data plane, the app and the metrics
use: which versions are served, their labels, hot reload by polling the repository::

    registry = ModelRegistry(config, metrics)
    registry.start()                                  # first scan now, then every poll_interval seconds
    with registry.acquire("digits", label="stable") as served:
        outputs = served.predict([x])
    registry.stop()

The work is done by the parts :func:`~modelpress.runtime.parts.build_parts` wires (the table of records,
the version loader, the memory budget, model control); the registry runs the scans and checks versions
out to requests.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from modelpress.errors import ModelpressError, NotFoundError, UnavailableError
from modelpress.layout import parse_version
from modelpress.runtime.backends import Backend
from modelpress.runtime.config import RuntimeConfig
from modelpress.runtime.parts import RuntimeParts, build_parts
from modelpress.runtime.repository import ModelEntry, check_name
from modelpress.runtime.served import ModelRecord, ServedVersion
from modelpress.runtime.state import ModelState

log = logging.getLogger(__name__)
LOAD_WORKERS = 4  # models loaded side by side at most (each loads its versions one after another)


class ModelRegistry:
    """Loads, serves and retires the versions found in ``config.repository``."""

    def __init__(self, config: RuntimeConfig, metrics=None, backends: dict[str, type[Backend]] | None = None,
                 parts: RuntimeParts | None = None):
        self.config = config
        self.metrics = metrics
        parts = parts or build_parts(config, metrics, backends)
        self.table, self.loader, self.budget, self.control = parts.table, parts.loader, parts.budget, parts.control
        self.ready = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def models(self) -> dict[str, ModelRecord]:
        """Model name -> record (read it under ``table.lock``)."""
        return self.table.models

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.scan()
        self.ready = True
        if not self.model_names() and not self.config.allow_empty:
            log.warning("the model repository %s holds no model: /v2/health/ready answers 503 until one is "
                        "published there (--allow-empty reports ready anyway)", self.config.repository)
        if self.config.poll_interval > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._poll, name="modelpress-reload", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.loader.unload_all()

    def _poll(self) -> None:
        while not self._stop.wait(self.config.poll_interval):
            try:
                self.scan()
            except ModelpressError as err:
                log.error("repository scan failed: %s", err)
            except Exception:  # keep the poller alive whatever a scan hits
                log.exception("repository scan failed")

    def scan(self) -> None:
        """Bring the served versions in line with the repository (one change at a time)."""
        with self.table.change_lock:
            entries = self.loader.scan()
            # independent models load side by side (bounded), so a slow one does not hold up the others; a
            # model's record takes traffic only once its versions are loaded and warmed up, as before. Under a
            # memory budget one at a time: each load's room is made by unloading others
            workers = 1 if self.budget.limit is not None else max(1, min(LOAD_WORKERS, len(entries)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="modelpress-load") as pool:
                list(pool.map(self._sync_entry, entries.values()))  # re-raises here what a load thread raised
            for name in [n for n in self.table.names() if n not in entries]:
                self.loader.sync(self.table.models[name], {})
                self.table.remove(name)

    def _sync_entry(self, entry: ModelEntry) -> None:
        """Bring one model in line with its entry of the scan (run in the loader pool)."""
        known = self.table.get(entry.name)
        record = known or ModelRecord(entry.name, wanted=self.control.initially_wanted(entry.name))
        self.loader.refresh(record, entry, known=known is not None)
        try:
            self.control.sync(record)
        except Exception:  # never let one model stop the scan of the others
            log.exception("model %s: reloading failed; its versions stay as they were", entry.name)
        self.table.put(record)

    # --- lookup ---------------------------------------------------------------------------------
    def acquire(self, model: str, version: str | int | None = None, label: str | None = None) -> Checkout:
        """The served version a request asked for, counted in flight until the block ends::

            with registry.acquire("digits") as served: ...
        """
        return Checkout(self, self._checkout(model, version, label))

    def release(self, served: ServedVersion) -> None:
        """End one checkout of ``served`` (``acquire``'s block does): wake a retire waiting for its last
        request, and a load waiting for room under the memory budget."""
        with served.cond:
            served.inflight -= 1
            if not served.inflight:  # a retire waits for none in flight: nothing to wake before that
                served.cond.notify_all()
        self.budget.notify_idle()

    def lookup_model(self, model: str) -> ModelRecord:
        """The record of a model in the repository, or a 404 naming the models there."""
        return self.table.lookup(model)

    def label_version(self, model: str, label: str) -> int:
        record = self.lookup_model(model)
        check_name("label", label)
        if label not in record.config.labels:
            labels = ", ".join(f"{k}={v}" for k, v in sorted(record.config.labels.items())) or "none"
            raise NotFoundError(f"model {model!r} has no label {label!r}; its labels: {labels}")
        return record.config.labels[label]

    def _checkout(self, model: str, version: str | int | None = None, label: str | None = None) -> ServedVersion:
        """The served version asked for, already counted in flight (``acquire`` releases it); a model the
        memory budget unloaded is loaded again first."""
        record = self.lookup_model(model)
        if self.budget.limit is None:  # nothing is evicted: no reservation to hold (as budget.reserve does)
            return self._pick(record, model, version, label)
        with self.budget.reserve(record):
            return self._pick(record, model, version, label)

    def _pick(self, record: ModelRecord, model: str, version: str | int | None, label: str | None) -> ServedVersion:
        with self.table.lock:
            record.last_used = time.monotonic()
            if label is not None:
                number = self.label_version(model, label)
            elif version is not None:
                number = parse_version(version if isinstance(version, int) else str(version))
                if number is None:
                    raise NotFoundError(f"version {version!r} of model {model!r} is not an integer version")
            else:
                if not record.versions and record.unloaded_by_client():
                    # the client's own decision, not a passing state of the server: a 4xx, as Triton answers
                    raise NotFoundError(f"model {model!r} has no version loaded: {record.why_not()}")
                if not record.versions:
                    raise UnavailableError(f"model {model!r} has no version available: {record.why_not()}",
                                           retry_after=5)
                number = max(record.versions)
            served = record.versions.get(number)
            if served is None or served.state != ModelState.AVAILABLE:
                served_list = ", ".join(str(v) for v in sorted(record.versions)) or "none"
                on_disk = number in record.failed or (served is None and number in record.folders)
                why = f" ({record.why_not(number)})" if on_disk else ""
                raise NotFoundError(f"version {number} of model {model!r} is not available{why}; "
                                    f"available: {served_list}")
            with served.cond:
                served.inflight += 1
            return served

    @staticmethod
    def unloaded_by_client(record: ModelRecord) -> bool:
        """Whether a model without loaded versions is so because a client unloaded it (see ModelRecord)."""
        return record.unloaded_by_client()

    # --- status ---------------------------------------------------------------------------------
    def status(self, model: str | None = None) -> dict[str, list[dict]]:
        """Per model, each known version newest first: state, error, platform, labels."""
        if model:
            self.lookup_model(model)  # a 404 for an unknown name, not a KeyError
        with self.table.lock:
            if model and model not in self.models:  # removed by a scan since the lookup
                raise NotFoundError(f"model {model!r} was removed from the repository")
            records = [self.models[model]] if model else list(self.models.values())
            out = {}
            for record in records:
                labels: dict[int, list[str]] = {}
                for label, v in record.config.labels.items():
                    labels.setdefault(v, []).append(label)
                rows: dict[int, dict] = {}
                for v, served in record.retired.items():
                    rows[v] = {"version": v, "state": served.state, "error": None}
                for v, (_, error) in record.failed.items():
                    rows[v] = {"version": v, "state": ModelState.FAILED, "error": error}
                for v, served in record.versions.items():
                    error = record.failed[v][1] if v in record.failed else None
                    rows[v] = {"version": v, "state": served.state, "error": error,
                               "platform": served.backend.platform, "batching": served.batcher is not None,
                               "manifest": "inferred" if served.manifest.inferred else "shipped",
                               "stateful": served.manifest.stateful}
                for v, row in rows.items():
                    row["labels"] = sorted(labels.get(v, []))
                out[record.name] = [rows[v] for v in sorted(rows, reverse=True)]
                if record.config_error:
                    out[record.name].insert(0, {"version": None, "state": ModelState.CONFIG_ERROR,
                                                "error": record.config_error, "labels": []})
            return out

    def states(self) -> list[tuple[str, str, str]]:
        return [(name, str(row["version"]), row["state"]) for name, rows in self.status().items()
                for row in rows if row["version"] is not None]

    def model_names(self) -> list[str]:
        return self.table.names()


class Checkout:
    """One request's hold on a served version (``with registry.acquire(...) as served``): a plain class, not
    a generator context manager, since every inference enters one."""
    __slots__ = ("registry", "served")

    def __init__(self, registry: ModelRegistry, served: ServedVersion):
        self.registry, self.served = registry, served

    def __enter__(self) -> ServedVersion:
        return self.served

    def __exit__(self, *exc) -> None:
        self.registry.release(self.served)
