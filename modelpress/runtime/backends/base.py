"""The backend contract: a small class that loads one model package, predicts on a batch, unloads.

Backends know nothing of HTTP (no Flask here). Capabilities are attributes::

    backend = TFLiteBackend(folder, manifest, pool_size=4, threads=2, delegate=None)
    backend.load(); backend.warmup()
    probs, = backend.predict([x], raw=False)     # real-valued in and out
    backend.unload()
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from modelpress.errors import BadRequestError
from modelpress.manifest import Manifest, TensorSpec


class Backend:
    """Base class. Subclasses set ``platform`` and implement ``load``, ``predict`` and ``unload``."""

    platform: ClassVar[str] = "unknown"
    #: merged batches are allowed (the model has a dynamic batch dimension)
    supports_batching: bool = False

    def __init__(self, folder: str | Path, manifest: Manifest, *, pool_size: int = 1,
                 threads: int | None = None, delegate: str | None = None):
        self.folder = Path(folder)
        self.manifest = manifest
        self.pool_size = max(1, int(pool_size))
        self.threads = threads
        self.delegate = delegate
        self.supports_batching = all(s.shape and s.shape[0] == -1 for s in manifest.inputs)

    @property
    def inputs(self) -> list[TensorSpec]:
        return self.manifest.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self.manifest.outputs

    @property
    def fixed_batch(self) -> int | None:
        sizes = {s.shape[0] for s in self.inputs if s.shape}
        return sizes.pop() if len(sizes) == 1 and min(sizes) > 0 else None

    def load(self) -> None:
        raise NotImplementedError

    def predict(self, inputs: list[np.ndarray], raw: bool = False) -> list[np.ndarray]:
        """Run one batch; ``raw`` returns quantized outputs as the model's own integers."""
        raise NotImplementedError

    def unload(self) -> None:
        raise NotImplementedError

    def warmup(self) -> None:
        """One predict on zeros, so the first client request does not pay for lazy allocation."""
        batch = self.fixed_batch or 1
        zeros = [np.zeros([batch, *[max(d, 1) for d in s.shape[1:]]], dtype=np.float32 if s.quantized else s.dtype)
                 for s in self.inputs]
        try:
            self.predict(zeros)
        except BadRequestError:
            # a dynamic dimension guessed as 1 may be too small for the model (a window longer than that):
            # it runs at the clients' shapes, so it is warmed up by the first request instead
            if not any(d < 0 for s in self.inputs for d in s.shape[1:]):
                raise
