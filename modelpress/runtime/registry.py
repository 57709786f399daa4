"""Model registry: which versions are served, their labels, and hot reload by polling the repository.

A new version is loaded and warmed up before it takes traffic; a replaced one is unloaded once its
in-flight requests finish; a version that fails to load leaves the others serving and shows its error
in the status endpoints::

    registry = ModelRegistry(config, metrics)
    registry.start()                                  # first scan now, then every poll_interval seconds
    with registry.acquire("digits", label="stable") as served:
        outputs = served.predict([x])
    registry.stop()
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from modelpress.errors import ArtifactError, ModelpressError, NotFoundError, UnavailableError
from modelpress.layout import parse_version
from modelpress.manifest import Manifest
from modelpress.manifest_inference import load_manifest
from modelpress.runtime.backends import BACKENDS, Backend
from modelpress.runtime.backends.tflite import fit_threads
from modelpress.runtime.config import RuntimeConfig
from modelpress.runtime.leftovers import remove_stale_staging
from modelpress.runtime.model_control import ModelControl
from modelpress.runtime.repository import ModelEntry, check_name, scan_repository
from modelpress.runtime.served import ModelRecord, ServedVersion
from modelpress.runtime.state import ModelState

log = logging.getLogger(__name__)
RETIRED_KEPT = 4  # ended versions a model's status still lists (older ones are forgotten, metrics included)
LOAD_WORKERS = 4  # models loaded side by side at most (each loads its versions one after another)
AMBIGUOUS = ("ambiguous",)  # the fingerprint of a refused version that several folders name


class ModelRegistry:
    """Loads, serves and retires the versions found in ``config.repository``."""

    def __init__(self, config: RuntimeConfig, metrics=None, backends: dict[str, type[Backend]] | None = None):
        self.config = config
        self.metrics = metrics
        self.backends = dict(BACKENDS, **(backends or {}))
        self.models: dict[str, ModelRecord] = {}
        self.ready = False
        self._lock = threading.RLock()
        self._scan_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._profile = None
        if config.profile:
            from modelpress.device_profiles import load_profile

            self._profile = load_profile(config.profile)
        self.control = ModelControl(self)

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.scan()
        self.ready = True
        if self.config.poll_interval > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._poll, name="modelpress-reload", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            served = [v for m in self.models.values() for v in m.versions.values()]
            for model in self.models.values():
                model.versions = {}
        for version in served:
            version.state = ModelState.UNLOADING
            try:
                version.retire(self.config.unload_timeout)
            except Exception:  # one backend failing to unload must not stop the others
                log.exception("unloading %s version %s failed", version.model, version.version)

    def _poll(self) -> None:
        while not self._stop.wait(self.config.poll_interval):
            try:
                self.scan()
            except ModelpressError as err:
                log.error("repository scan failed: %s", err)
            except Exception:  # keep the poller alive whatever a scan hits
                log.exception("repository scan failed")

    # --- loading --------------------------------------------------------------------------------
    def scan(self) -> None:
        """Bring the served versions in line with the repository (one scan at a time)."""
        with self._scan_lock:
            entries = scan_repository(self.config.repository, self.config.model_name)
            remove_stale_staging(Path(self.config.repository))
            # independent models load side by side (bounded), so a slow one does not hold up the others; a
            # model's record takes traffic only once its versions are loaded and warmed up, as before. Under a
            # memory budget one at a time: each load's room is made by unloading others
            workers = 1 if self.control.budget is not None else max(1, min(LOAD_WORKERS, len(entries)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="modelpress-load") as pool:
                list(pool.map(self._sync_entry, entries.values()))  # re-raises here what a load thread raised
            for name in [n for n in self.models if n not in entries]:
                self._sync_model(self.models[name], {})
                with self._lock:
                    del self.models[name]

    def _sync_entry(self, entry: ModelEntry) -> None:
        """Bring one model in line with its entry of the scan (run in the loader pool)."""
        name = entry.name
        record = self.models.get(name)
        if record is None:
            record = ModelRecord(name, wanted=self.control.initially_wanted(name))
        record.folders = entry.versions
        if entry.config_error and name in self.models:  # a broken edit keeps the last good policy
            record.config_error = entry.config_error
            log.error("model %s: %s; serving on with its previous config.yaml", name, entry.config_error)
        else:
            record.config, record.config_error = entry.config, entry.config_error
            if entry.config_error:
                log.error("model %s: %s", name, entry.config_error)
        self._mark_ambiguous(record, entry.ambiguous)
        try:
            self.control.sync(record)
        except Exception:  # never let one model stop the scan of the others
            log.exception("model %s: reloading failed; its versions stay as they were", name)
        with self._lock:
            self.models[name] = record

    @staticmethod
    def _mark_ambiguous(record: ModelRecord, ambiguous: dict[int, str]) -> None:
        """Versions that several folders name are refused, and shown FAILED with the reason, until resolved."""
        for v in [v for v, (mark, _) in record.failed.items() if mark == AMBIGUOUS and v not in ambiguous]:
            del record.failed[v]
        for v, message in ambiguous.items():
            if record.failed.get(v, (None, None))[1] != message:
                log.error("model %s: %s", record.name, message)
            record.failed[v] = (AMBIGUOUS, message)

    def _sync_model(self, record: ModelRecord, folders: dict) -> None:
        def loadable() -> list[int]:
            return [v for v, f in folders.items()
                    if not (v in record.failed and record.failed[v][0] == f.fingerprint)]

        while True:
            wanted = record.choose(loadable())
            pending = [v for v in wanted if v not in record.versions
                       or record.versions[v].fingerprint != folders[v].fingerprint]
            if not pending:
                break
            for v in pending:
                folder = folders[v]
                try:
                    served = self._load(record, v, folder.path, folder.fingerprint)
                except ModelpressError as err:
                    message = str(err)
                    record.failed[v] = (folder.fingerprint, message)
                    keeps = sorted(record.versions)
                    log.error("model %s version %s failed to load: %s; %s", record.name, v, message,
                              f"version(s) {keeps} keep serving" if keeps else "no version is serving")
                    continue
                record.failed.pop(v, None)
                with self._lock:
                    old = record.versions.get(v)
                    record.versions[v] = served
                if old is not None:
                    self._retire(record, old)
        keep = set(record.choose(loadable()))
        for v in [v for v in record.versions if v not in keep]:
            with self._lock:
                old = record.versions.pop(v)
            self._retire(record, old)

    def _settings(self, record: ModelRecord, manifest: Manifest) -> tuple[int, str | None, int]:
        profile = manifest.profile or {}
        if self._profile is not None:
            profile = {"threads": self._profile.threads, "delegate": self._profile.delegate}
        threads = record.config.interpreter_threads or self.config.interpreter_threads
        delegate = record.config.delegate or self.config.delegate or profile.get("delegate")
        pool = record.config.pool_size or self.config.pool_size or self.config.request_threads()
        if manifest.stateful and not record.config.pool_size:
            pool = 1  # one state, updated in the order requests arrive (config.yaml pool_size: N for N states)
        if not threads:  # the profile's threads describe its device: fitted to this host's cores
            threads = fit_threads(int(profile.get("threads") or 1), int(pool), record.name)
        return int(threads), delegate, int(pool)

    def _load(self, record: ModelRecord, version: int, folder: Path, fingerprint: tuple) -> ServedVersion:
        """Load, warm up and wrap one version; every failure comes out as a ModelpressError."""
        started = time.perf_counter()
        backend: Backend | None = None
        try:
            manifest = _renamed(load_manifest(folder), record.config.tensor_names)
            backend_cls = self.backends.get(manifest.model_format)
            if backend_cls is None:
                raise ArtifactError(f"no backend serves model format {manifest.model_format!r}; "
                                    f"known: {', '.join(sorted(self.backends))}")
            self._check_inside(folder, manifest)
            threads, delegate, pool = self._settings(record, manifest)
            backend = backend_cls(folder, manifest, pool_size=pool, threads=threads, delegate=delegate)
            served = ServedVersion(record.name, version, folder, fingerprint, manifest, backend, self.metrics)
            backend.load()
            if self.config.warmup:
                backend.warmup()
            batching = dict(enabled=self.config.batching, max_batch_size=self.config.max_batch_size,
                            max_queue_delay_ms=self.config.max_queue_delay_ms,
                            max_queue_size=self.config.max_queue_size)
            batching.update(record.config.batching)
            if manifest.stateful and "enabled" not in record.config.batching:
                batching["enabled"] = False  # merging clients' rows would mix them into one state
            if batching.pop("enabled"):
                if backend.supports_batching:
                    served.enable_batching(**batching)
                else:
                    log.info("model %s version %s has a fixed batch size: dynamic batching is off", record.name,
                             version)
        except Exception as err:  # a broken package can fail in many ways: a manifest, an interpreter, a backend
            if backend is not None:
                with contextlib.suppress(Exception):
                    backend.unload()
            if isinstance(err, ModelpressError):
                raise
            raise ArtifactError(f"{folder}: {type(err).__name__}: {str(err)[:300]}") from None
        served.state = ModelState.AVAILABLE
        log.info("loaded model %s version %s (%s, %d interpreter(s), %d thread(s) each, delegate %s%s) in %.0f ms",
                 record.name, version, backend.platform, pool, threads, delegate or "none",
                 ", batching" if served.batcher else "", (time.perf_counter() - started) * 1000)
        return served

    def _check_inside(self, folder: Path, manifest: Manifest) -> None:
        """The model file, symbolic links followed, lies inside the repository (as version folders must)."""
        root = Path(self.config.repository).resolve()
        target = (folder / manifest.model_file).resolve()
        if not target.is_relative_to(root):
            raise ArtifactError(f"{folder}: model file {manifest.model_file!r} links outside the repository "
                                f"(to {target}); copy the file into the package instead")

    def _retire(self, record: ModelRecord, served: ServedVersion) -> None:
        served.state = ModelState.UNLOADING
        with self._lock:  # status() reads it under the lock
            ended = sorted(v for v, s in record.retired.items()
                           if s.state == ModelState.END and v != served.version)
            for version in ended[:-RETIRED_KEPT]:
                del record.retired[version]
            record.retired[served.version] = served

        def run() -> None:
            try:
                served.retire(self.config.unload_timeout)
            except Exception:  # pragma: no cover - an unload failure only leaks memory
                log.exception("unloading %s version %s failed", record.name, served.version)

        threading.Thread(target=run, name=f"unload-{record.name}-{served.version}", daemon=True).start()

    # --- lookup ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def acquire(self, model: str, version: str | int | None = None,
                label: str | None = None) -> Iterator[ServedVersion]:
        """The served version a request asked for, counted in flight until the block ends."""
        served = self._checkout(model, version, label)
        try:
            yield served
        finally:
            with served.cond:
                served.inflight -= 1
                served.cond.notify_all()
            self.control.notify_idle()

    def lookup_model(self, model: str) -> ModelRecord:
        """The record of a model in the repository, or a 404 naming the models there."""
        check_name("model", model)
        with self._lock:
            record = self.models.get(model)
            if record is None:
                known = ", ".join(sorted(self.models)) or "none"
                raise NotFoundError(f"model {model!r} is not in the repository; models served: {known}")
            return record

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
        with self.control.reserve(record), self._lock:
            record.last_used = time.monotonic()
            if label is not None:
                number = self.label_version(model, label)
            elif version is not None:
                number = parse_version(version if isinstance(version, int) else str(version))
                if number is None:
                    raise NotFoundError(f"version {version!r} of model {model!r} is not an integer version")
            else:
                if not record.versions and self.unloaded_by_client(record):
                    # the client's own decision, not a passing state of the server: a 4xx, as Triton answers
                    raise NotFoundError(f"model {model!r} has no version loaded{self._why(record)}")
                if not record.versions:
                    raise UnavailableError(f"model {model!r} has no version available{self._why(record)}",
                                           retry_after=5)
                number = max(record.versions)
            served = record.versions.get(number)
            if served is None or served.state != ModelState.AVAILABLE:
                served_list = ", ".join(str(v) for v in sorted(record.versions)) or "none"
                why = f" ({record.failed[number][1]})" if number in record.failed else ""
                raise NotFoundError(f"version {number} of model {model!r} is not available{why}; "
                                    f"available: {served_list}")
            with served.cond:
                served.inflight += 1
            return served

    @staticmethod
    def unloaded_by_client(record: ModelRecord) -> bool:
        """Whether a model without loaded versions is so because a client unloaded it (or, in explicit mode,
        never loaded it): the whole model, or every version its policy would serve."""
        if not record.wanted:
            return True
        chosen = [v for v in record.config.choose(list(record.folders)) if v not in record.excluded]
        return bool(record.excluded) and not chosen and not record.extra & set(record.folders)

    @staticmethod
    def _why(record: ModelRecord) -> str:
        if record.reason:
            return f": {record.reason}"
        if not record.wanted:
            return (": it is not loaded (explicit model control); load it with POST "
                    f"/v2/repository/models/{record.name}/load")
        if record.excluded and not record.versions:
            versions = ", ".join(str(v) for v in sorted(record.excluded))
            return (f": version(s) {versions} unloaded through the repository API; load with POST "
                    f"/v2/repository/models/{record.name}/load")
        if record.config_error:
            return f": {record.config_error}"
        if record.failed:
            return ": " + "; ".join(f"version {v} failed: {e}" for v, (_, e) in sorted(record.failed.items()))
        return ": no complete version folder yet"

    # --- status ---------------------------------------------------------------------------------
    def status(self, model: str | None = None) -> dict[str, list[dict]]:
        """Per model, each known version newest first: state, error, platform, labels."""
        if model:
            self.lookup_model(model)  # a 404 for an unknown name, not a KeyError
        with self._lock:
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
        with self._lock:
            return sorted(self.models)


def _renamed(manifest: Manifest, names: dict[str, str]) -> Manifest:
    """The manifest with tensors renamed as a model's config.yaml asks (``tensor_names``)."""
    if names:
        known = {s.name for s in manifest.inputs + manifest.outputs}
        unknown = sorted(set(names) - known)
        if unknown:
            raise ArtifactError(f"config.yaml tensor_names renames {', '.join(map(repr, unknown))}, which the model "
                                f"does not have; its tensors are {', '.join(map(repr, sorted(known)))}")
        for spec in manifest.inputs + manifest.outputs:
            spec.name = names.get(spec.name, spec.name)
    return manifest
