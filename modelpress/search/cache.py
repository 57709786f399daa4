"""Trials on disk, so a rerun, or the same search for a second profile, does not train or convert again.

    cache = TrialCache("~/.cache/modelpress/press")
    key = cache.key(model_hash, data_hash, settings.compression_key())
    cache.load_model(key)            # the fine-tuned Keras model, or None
    cache.save_trial(key2, record, tflite_bytes)

Two levels: fine-tuned models are keyed by (source model, data, compression settings), so every profile and
quantization reuses them; measured artifacts by (fine-tuned model, profile, quantization, held-out data).
Every file is written atomically; a damaged entry counts as a miss. Every key also holds the versions of the
code that made the entry (modelpress and the tools that train, convert and run it: :func:`code_versions`), so an
upgrade never answers a trial from a cache written by older code.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from modelpress.atomic import atomic_write_bytes

CACHE_ENV = "MODELPRESS_CACHE"
# the distributions whose code decides what a trial makes and measures
CODE_DISTRIBUTIONS = ("modelpress", "tensorflow", "tf_keras", "keras", "tensorflow-model-optimization",
                      "ai-edge-litert", "litert-quantizer", "tflite-runtime", "numpy")


@functools.lru_cache(maxsize=1)
def code_versions() -> str:
    """The installed versions of the code behind a trial, one string (a missing distribution counts as such)::

        code_versions()      # 'modelpress=0.9.0 tensorflow=2.21.0 tf_keras=2.21.0 keras=3.12.0 ...'
    """
    found = []
    for name in CODE_DISTRIBUTIONS:
        try:
            found.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name}=-")
    return " ".join(found)


def default_cache_dir() -> Path:
    """``$MODELPRESS_CACHE`` or ``~/.cache/modelpress/press``::

        default_cache_dir()      # PosixPath('/home/me/.cache/modelpress/press')
    """
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "modelpress" / "press"


def array_hash(*arrays: np.ndarray) -> str:
    """A stable hash of arrays' shapes, dtypes and bytes::

        array_hash(x_train, y_train)[:12]
    """
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def model_hash(model: Any) -> str:
    """A Keras model's architecture, weights and optimizer (its type and learning rate: fine-tuning starts from
    them), hashed (the same model loaded twice hashes the same)::

        model_hash(keras_model)[:12]
    """
    digest = hashlib.sha256(model.to_json().encode())
    digest.update(array_hash(*model.get_weights()).encode())
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        try:
            digest.update(f"{type(optimizer).__name__}:{float(np.asarray(optimizer.learning_rate)):.6g}".encode())
        except (TypeError, ValueError, AttributeError):
            digest.update(type(optimizer).__name__.encode())
    return digest.hexdigest()


class TrialCache:
    """Fine-tuned models and measured artifacts under ``folder`` (``models/``, ``trials/``)."""

    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder).expanduser() if folder else default_cache_dir()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(*parts: str) -> str:
        """A cache key from ``parts`` and :func:`code_versions` (entries of other code never match)."""
        return hashlib.sha256("\x00".join((code_versions(), *parts)).encode()).hexdigest()[:32]

    def _path(self, kind: str, key: str, suffix: str) -> Path:
        return self.folder / kind / f"{key}{suffix}"

    def _read_json(self, path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def load_model(self, key: str) -> tuple[Any, dict[str, Any]] | None:
        """(fine-tuned Keras model, its record) or None."""
        record = self._read_json(self._path("models", key, ".json"))
        if record is None:
            self.misses += 1
            return None
        path = self._path("models", key, record.get("suffix", ".keras"))
        if not path.is_file():
            self.misses += 1
            return None
        from modelpress.model_io import load_model

        try:
            loaded = load_model(path)
        except Exception:  # noqa: BLE001 - a damaged entry is a miss, the trial runs again
            self.misses += 1
            return None
        self.hits += 1
        return loaded.model, record

    def model_path(self, key: str) -> Path | None:
        record = self._read_json(self._path("models", key, ".json"))
        if record is None:
            return None
        path = self._path("models", key, record.get("suffix", ".keras"))
        return path if path.is_file() else None

    def save_model(self, key: str, model: Any, record: dict[str, Any]) -> Path | None:
        from modelpress.model_io import save_model

        saved = save_model(model, self._path("models", key, ".keras"))
        atomic_write_bytes(self._path("models", key, ".json"),
                           json.dumps({**record, "suffix": saved.suffix}, default=str).encode())
        return saved

    def load_trial(self, key: str) -> dict[str, Any] | None:
        record = self._read_json(self._path("trials", key, ".json"))
        if record is None or (record.get("error") is None and not self.artifact(key)):
            self.misses += 1
            return None
        self.hits += 1
        return record

    def artifact(self, key: str) -> bytes | None:
        path = self._path("trials", key, ".tflite")
        return path.read_bytes() if path.is_file() else None

    def save_trial(self, key: str, record: dict[str, Any], blob: bytes | None) -> None:
        if blob is not None:
            atomic_write_bytes(self._path("trials", key, ".tflite"), blob)
        atomic_write_bytes(self._path("trials", key, ".json"), json.dumps(record, default=str).encode())

    def entry_files(self, trial_key: str, model_key: str = "") -> dict[str, bytes]:
        """A trial's files (and its fine-tuned model's) as bytes by their path under the folder: what another
        machine's cache needs to hold the same entry (:meth:`put_files`)."""
        paths = [self._path("trials", trial_key, ".tflite"), self._path("trials", trial_key, ".json")]
        model = self.model_path(model_key) if model_key else None
        if model is not None:
            paths += [model, self._path("models", model_key, ".json")]
        return {p.relative_to(self.folder).as_posix(): p.read_bytes() for p in paths if trial_key and p.is_file()}

    def put_files(self, files: dict[str, bytes]) -> None:
        """Write entries from :meth:`entry_files`, atomically, each record after the file it points at."""
        for relative in sorted(files, key=lambda name: name.endswith(".json")):
            atomic_write_bytes(self.folder / relative, files[relative])
