"""What the registry serves: one loaded version (``ServedVersion``: its backend, batcher, in-flight count)
and one model's record (``ModelRecord``: its versions, failures, folders, wanted state). Kept apart from the
registry's scanning and loading::

    served = record.versions[max(record.versions)]
    outputs = served.predict([x])
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modelpress.errors import ModelpressError, ServingError
from modelpress.manifest import Manifest
from modelpress.runtime import tracing
from modelpress.runtime.backends import Backend
from modelpress.runtime.batcher import Batcher
from modelpress.runtime.memory import release_memory
from modelpress.runtime.repository import ModelConfig, VersionFolder
from modelpress.runtime.state import ModelState

log = logging.getLogger("modelpress.runtime.registry")


class ServedVersion:
    """One loaded version: its backend, optional batcher, state and in-flight count."""

    def __init__(self, model: str, version: int, folder: Path, fingerprint: tuple, manifest: Manifest,
                 backend: Backend, metrics):
        self.model, self.version, self.folder, self.fingerprint = model, version, folder, fingerprint
        self.version_text = str(version)  # the metrics' label
        self.manifest, self.backend, self.metrics = manifest, backend, metrics
        self.state = ModelState.LOADING
        self.error: str | None = None
        self.batcher: Batcher | None = None
        self.inflight = 0
        self.cond = threading.Condition()
        #: (name, shape, dtype) of each input sent -> how the data plane orders and converts them (validated)
        self.input_plans: dict[tuple, tuple[list, bool]] = {}

    def _run(self, inputs: list[np.ndarray], raw: bool) -> list[np.ndarray]:
        try:
            return self.backend.predict(inputs, raw)
        except ModelpressError:
            raise
        except Exception as err:  # the backend broke on a valid request: a 500 that says which model, not a crash
            log.error("model %s version %s failed to run a request", self.model, self.version, exc_info=True)
            raise ServingError(f"model {self.model!r} version {self.version} failed to run the request "
                               f"({type(err).__name__}: {str(err)[:300]}); the server keeps serving, and its "
                               "log has the details") from None

    def _timed_predict(self, inputs: list[np.ndarray], raw: bool) -> list[np.ndarray]:
        started = time.perf_counter()
        outputs = self._run(inputs, raw)
        if self.metrics is not None:
            self.metrics.compute(self.model, self.version_text, time.perf_counter() - started)
        return outputs

    def enable_batching(self, max_batch_size: int, max_queue_delay_ms: float, max_queue_size: int) -> None:
        on_batch = None
        if self.metrics is not None:
            on_batch = lambda rows, waits: self.metrics.batch(self.model, self.version_text, rows, waits)  # noqa: E731
        self.batcher = Batcher(self._timed_predict, max_batch_size=max_batch_size,
                               max_queue_delay=max_queue_delay_ms / 1000.0, max_queue_size=max_queue_size,
                               workers=self.backend.pool_size, on_batch=on_batch, name=f"{self.model}:{self.version}",
                               in_flight=lambda: self.inflight)

    def predict(self, inputs: list[np.ndarray], raw: bool = False) -> list[np.ndarray]:
        """Run inputs (already validated) through the batcher when there is one, else straight through."""
        if self.batcher is not None:
            with tracing.stage("batch"):  # queued, merged with other requests and run on the batcher's thread
                return self.batcher.submit(inputs, raw)
        started = time.perf_counter()
        outputs = self._run(inputs, raw)
        if self.metrics is not None:  # compute time, and a batch of the request's own rows that did not queue
            self.metrics.ran(self.model, self.version_text, time.perf_counter() - started,
                             len(inputs[0]) if inputs[0].ndim else 1)
        return outputs

    def retire(self, timeout: float) -> None:
        """Wait for in-flight requests (up to ``timeout`` s), then unload."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.inflight and time.monotonic() < deadline:
                self.cond.wait(max(0.0, deadline - time.monotonic()))
        if self.batcher is not None:
            self.batcher.close()
        try:
            self.backend.unload()
        finally:
            release_memory()  # the interpreters' heap back to the system, so that RSS goes down
            self.state = ModelState.END
            if self.metrics is not None:
                self.metrics.forget(self.model, str(self.version))
            log.info("unloaded model %s version %s", self.model, self.version)


@dataclass
class ModelRecord:
    name: str
    config: ModelConfig = field(default_factory=ModelConfig)
    config_error: str | None = None
    versions: dict[int, ServedVersion] = field(default_factory=dict)
    failed: dict[int, tuple[tuple, str]] = field(default_factory=dict)   # version -> (fingerprint, error)
    retired: dict[int, ServedVersion] = field(default_factory=dict)
    # model control and the memory budget (see control.py, budget.py)
    folders: dict[int, VersionFolder] = field(default_factory=dict)  # complete version folders, last scan
    wanted: bool = True                # to be served (False: unloaded through the API, or explicit mode)
    extra: set[int] = field(default_factory=set)      # versions loaded through the API besides the policy's
    excluded: set[int] = field(default_factory=set)   # versions unloaded through the API
    reason: str | None = None          # why the model is not loaded (unloaded, evicted)
    layout_hint: str | None = None     # its folder holds a package itself, not <version>/ folders (last scan)
    waiters: int = 0                   # requests checking it out (it is not evicted under them)
    last_used: float = 0.0             # time.monotonic() of the last checkout
    size: int = 0                      # bytes counted against the memory budget while loaded
    measured: int | None = None        # RSS growth measured at its last load

    def loadable(self) -> list[int]:
        """Versions on disk that did not fail to load as they are now::

            record.loadable()      # [1, 2]
        """
        return [v for v, f in self.folders.items() if not (v in self.failed and self.failed[v][0] == f.fingerprint)]

    def choose(self, loadable: list[int]) -> list[int]:
        """The versions to serve out of ``loadable``: the policy's, less those unloaded through the API,
        plus those loaded through it; newest first::

            record.choose([1, 2, 3])    # [3] for the default policy; [3, 1] after loading version 1
        """
        chosen = {v for v in self.config.choose(loadable) if v not in self.excluded} | (self.extra & set(loadable))
        return sorted(chosen, reverse=True)

    def pending(self) -> list[int]:
        """Versions a sync would load now (new, or changed on disk)::

            record.pending()       # [3] once version 3 was published
        """
        return [v for v in self.choose(self.loadable())
                if v not in self.versions or self.versions[v].fingerprint != self.folders[v].fingerprint]

    def unloaded_by_client(self) -> bool:
        """Whether the model has no versions loaded because a client unloaded it (or, in explicit mode,
        never loaded it): the whole model, or every version its policy would serve::

            record.unloaded_by_client()     # True after POST /v2/repository/models/digits/unload
        """
        if not self.wanted:
            return True
        chosen = [v for v in self.config.choose(list(self.folders)) if v not in self.excluded]
        return bool(self.excluded) and not chosen and not self.extra & set(self.folders)

    def why_not(self, version: int | None = None) -> str:
        """Why this model (or one ``version`` of it) is not served: the one answer the errors, the status
        and the repository index give; where the fix is a request, it names this model's URL::

            record.why_not()     # "it is not loaded (explicit model control); load it with POST
                                 #  /v2/repository/models/digits/load"
            record.why_not(1)    # "version 1 was unloaded through the repository API; load it with POST ..."
        """
        load_url = f"/v2/repository/models/{self.name}"
        if version is not None and version in self.failed:
            return self.failed[version][1]
        if self.reason:
            return self.reason
        if not self.wanted:
            return f"it is not loaded (explicit model control); load it with POST {load_url}/load"
        if version is not None and version in self.excluded:
            return (f"version {version} was unloaded through the repository API; load it with POST "
                    f"{load_url}/versions/{version}/load")
        if version is None and self.excluded and not self.versions:
            versions = ", ".join(str(v) for v in sorted(self.excluded))
            return f"version(s) {versions} unloaded through the repository API; load with POST {load_url}/load"
        if self.config_error:
            return self.config_error
        if version is not None:
            if self.versions:
                return "not served by the model's version policy"
            return "not loaded yet: loads on its first request (memory budget)"
        if self.failed:
            return "; ".join(f"version {v} failed: {e}" for v, (_, e) in sorted(self.failed.items()))
        return self.layout_hint or "no complete version folder yet"
