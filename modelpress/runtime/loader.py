"""Version loading: scan the repository, load and warm up versions, retire the ones replaced::

    loader = VersionLoader(config, table, metrics, backends, checks=[model_file_inside(config.repository)])
    entries = loader.scan()                    # {"digits": ModelEntry(...)}; stale deploy leftovers removed
    loader.refresh(record, entries["digits"])  # the record's folders, config.yaml and refused versions
    loader.sync(record)                        # load what its policy serves, retire the rest (change_lock held)

A new version is loaded and warmed up before it takes traffic; a replaced one is unloaded once its
in-flight requests finish; a version that fails to load leaves the others serving, and its error is its
state (``record.failed``), shown in the status endpoints and the repository index.

Pre-load checks (the hook for verifying packages): every callable of ``checks`` is called as
``check(folder, manifest)`` after the version's manifest is read and before any of its files is handed to
a backend. A check that raises :class:`~modelpress.errors.ArtifactError` (any exception, in fact) refuses
the version: it never becomes a served version, and the message is its FAILED state's reason, like any
other load failure. The checks are chosen in one place, :func:`modelpress.runtime.parts.build_parts`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from modelpress.errors import ArtifactError, ModelpressError
from modelpress.manifest import Manifest
from modelpress.manifest_inference import load_manifest
from modelpress.runtime.backends import Backend
from modelpress.runtime.backends.tflite import fit_threads
from modelpress.runtime.config import RuntimeConfig
from modelpress.runtime.leftovers import remove_stale_staging
from modelpress.runtime.records import RecordTable
from modelpress.runtime.repository import ModelEntry, VersionFolder, scan_repository
from modelpress.runtime.served import ModelRecord, ServedVersion
from modelpress.runtime.state import ModelState

log = logging.getLogger("modelpress.runtime.registry")
RETIRED_KEPT = 4  # ended versions a model's status still lists (older ones are forgotten, metrics included)
AMBIGUOUS = ("ambiguous",)  # the fingerprint of a refused version that several folders name

#: ``check(folder, manifest)``: returns None to let a version load, raises ArtifactError to refuse it
PreloadCheck = Callable[[Path, Manifest], None]


def model_file_inside(repository: str | Path) -> PreloadCheck:
    """A pre-load check: the model file, symbolic links followed, lies inside the repository (as version
    folders must)::

        check = model_file_inside("models/"); check(Path("models/digits/1"), manifest)
    """
    root = Path(repository).resolve()

    def check(folder: Path, manifest: Manifest) -> None:
        target = (folder / manifest.model_file).resolve()
        if not target.is_relative_to(root):
            raise ArtifactError(f"{folder}: model file {manifest.model_file!r} links outside the repository "
                                f"(to {target}); copy the file into the package instead")

    return check


class VersionLoader:
    """Loads, warms up and retires the versions of the records in ``table``."""

    def __init__(self, config: RuntimeConfig, table: RecordTable, metrics=None,
                 backends: dict[str, type[Backend]] | None = None, checks: Sequence[PreloadCheck] = ()):
        self.config = config
        self.table = table
        self.metrics = metrics
        self.backends = dict(backends or {})
        self.checks = list(checks)
        self.profile = None
        if config.profile:
            from modelpress.device_profiles import load_profile

            self.profile = load_profile(config.profile)

    # --- the repository -------------------------------------------------------------------------
    def scan(self) -> dict[str, ModelEntry]:
        """The repository's models as they are on disk now (stale staging folders of killed deploys removed)."""
        entries = scan_repository(self.config.repository, self.config.model_name)
        remove_stale_staging(Path(self.config.repository))
        return entries

    def refresh(self, record: ModelRecord, entry: ModelEntry, known: bool) -> None:
        """Bring a record's view of the disk in line with its scan entry; ``known``: the record served
        before (a broken config.yaml edit then keeps the last good policy)."""
        record.folders = entry.versions
        if entry.layout_hint and entry.layout_hint != record.layout_hint:  # said once, not at every poll
            log.warning("model %s: %s", record.name, entry.layout_hint)
        record.layout_hint = entry.layout_hint
        if entry.config_error and known:
            record.config_error = entry.config_error
            log.error("model %s: %s; serving on with its previous config.yaml", record.name, entry.config_error)
        else:
            record.config, record.config_error = entry.config, entry.config_error
            if entry.config_error:
                log.error("model %s: %s", record.name, entry.config_error)
        for v in [v for v, (mark, _) in record.failed.items() if mark == AMBIGUOUS and v not in entry.ambiguous]:
            del record.failed[v]
        for v, message in entry.ambiguous.items():  # refused, and shown FAILED with the reason, until resolved
            if record.failed.get(v, (None, None))[1] != message:
                log.error("model %s: %s", record.name, message)
            record.failed[v] = (AMBIGUOUS, message)

    # --- versions -------------------------------------------------------------------------------
    def sync(self, record: ModelRecord, folders: dict[int, VersionFolder] | None = None) -> None:
        """Load the versions the record's policy serves out of ``folders`` (default: its folders on disk)
        and retire the others; the table's ``change_lock`` is held by the caller."""
        folders = record.folders if folders is None else folders

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
                    served = self.load(record, v, folder.path, folder.fingerprint)
                except ModelpressError as err:
                    message = str(err)
                    record.failed[v] = (folder.fingerprint, message)
                    keeps = sorted(record.versions)
                    log.error("model %s version %s failed to load: %s; %s", record.name, v, message,
                              f"version(s) {keeps} keep serving" if keeps else "no version is serving")
                    continue
                record.failed.pop(v, None)
                with self.table.lock:
                    old = record.versions.get(v)
                    record.versions[v] = served
                if old is not None:
                    self.retire(record, old)
        keep = set(record.choose(loadable()))
        for v in [v for v in record.versions if v not in keep]:
            with self.table.lock:
                old = record.versions.pop(v)
            self.retire(record, old)

    def settings(self, record: ModelRecord, manifest: Manifest) -> tuple[int, str | None, int]:
        """Interpreter threads, delegate and pool size for one version: config.yaml, then the server's
        settings, then the device profile (the server's, else the package's)."""
        profile = manifest.profile or {}
        if self.profile is not None:
            profile = {"threads": self.profile.threads, "delegate": self.profile.delegate}
        threads = record.config.interpreter_threads or self.config.interpreter_threads
        delegate = record.config.delegate or self.config.delegate or profile.get("delegate")
        pool = record.config.pool_size or self.config.pool_size or self.config.request_threads()
        if manifest.stateful and not record.config.pool_size:
            pool = 1  # one state, updated in the order requests arrive (config.yaml pool_size: N for N states)
        if not threads:  # the profile's threads describe its device: fitted to this host's cores
            threads = fit_threads(int(profile.get("threads") or 1), int(pool), record.name)
        return int(threads), delegate, int(pool)

    def load(self, record: ModelRecord, version: int, folder: Path, fingerprint: tuple) -> ServedVersion:
        """Check, load, warm up and wrap one version; every failure comes out as a ModelpressError."""
        started = time.perf_counter()
        backend: Backend | None = None
        try:
            manifest = renamed(load_manifest(folder), record.config.tensor_names)
            backend_cls = self.backends.get(manifest.model_format)
            if backend_cls is None:
                raise ArtifactError(f"no backend serves model format {manifest.model_format!r}; "
                                    f"known: {', '.join(sorted(self.backends))}")
            for check in self.checks:  # the pre-load checks: nothing of a refused package reaches a backend
                check(folder, manifest)
            threads, delegate, pool = self.settings(record, manifest)
            backend = backend_cls(folder, manifest, pool_size=pool, threads=threads, delegate=delegate)
            served = ServedVersion(record.name, version, folder, fingerprint, manifest, backend, self.metrics)
            backend.load()
            if self.config.warmup:
                backend.warmup()
            self._batching(record, served)
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

    def _batching(self, record: ModelRecord, served: ServedVersion) -> None:
        batching = dict(enabled=self.config.batching, max_batch_size=self.config.max_batch_size,
                        max_queue_delay_ms=self.config.max_queue_delay_ms, max_queue_size=self.config.max_queue_size)
        batching.update(record.config.batching)
        if served.manifest.stateful and "enabled" not in record.config.batching:
            batching["enabled"] = False  # merging clients' rows would mix them into one state
        if batching.pop("enabled"):
            if served.backend.supports_batching:
                served.enable_batching(**batching)
            else:
                log.info("model %s version %s has a fixed batch size: dynamic batching is off", record.name,
                         served.version)

    def retire(self, record: ModelRecord, served: ServedVersion) -> None:
        """Take a version out of service: listed as UNLOADING (then END), unloaded in the background once
        its in-flight requests finish."""
        served.state = ModelState.UNLOADING
        with self.table.lock:  # status() reads it under the lock
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

    def take_down(self, record: ModelRecord, wait: bool = False) -> int:
        """Take every version of ``record`` out of service and unload it once its in-flight requests end
        (``wait``: here and now, so that its memory is back before the caller goes on); how many there were."""
        with self.table.lock:
            served = list(record.versions.values())
            record.versions = {}
            record.size = 0
        for version in served:
            if wait:
                version.state = ModelState.UNLOADING
                version.retire(self.config.unload_timeout)
            else:
                self.retire(record, version)
        return len(served)

    def unload_all(self) -> None:
        """Unload every served version (the server stops): in-flight requests finish first."""
        with self.table.lock:
            served = [v for m in self.table.models.values() for v in m.versions.values()]
            for model in self.table.models.values():
                model.versions = {}
        for version in served:
            version.state = ModelState.UNLOADING
            try:
                version.retire(self.config.unload_timeout)
            except Exception:  # one backend failing to unload must not stop the others
                log.exception("unloading %s version %s failed", version.model, version.version)


def renamed(manifest: Manifest, names: dict[str, str]) -> Manifest:
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
