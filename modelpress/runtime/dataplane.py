"""The data plane between protocols and the registry: lookup, validation against the signature, predict.

Protocols decode with the served version's specs, then hand named arrays here::

    with plane.model("digits", version="2") as served:
        x = decode(body, served.manifest.inputs)          # protocol-specific
        outputs = plane.predict(served, {"image": x})      # {"output_0": array}, validated and run
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from modelpress.errors import BadRequestError
from modelpress.manifest import TensorSpec
from modelpress.runtime.codecs import v2_datatype
from modelpress.runtime.registry import ModelRegistry, ServedVersion


def shape_text(shape: list[int]) -> str:
    return "[" + ", ".join("None" if d < 0 else str(d) for d in shape) + "]"


def accepted_types(spec: TensorSpec) -> str:
    own = v2_datatype(spec.dtype)
    if spec.quantized:
        return f"{own} (the model's quantized values) or FP32 (real values, quantized by the server)"
    return own


class DataPlane:
    """Validation and inference over a :class:`ModelRegistry`; knows nothing of HTTP."""

    def __init__(self, registry: ModelRegistry):
        self.registry = registry

    @contextlib.contextmanager
    def model(self, model: str, version: str | None = None, label: str | None = None) -> Iterator[ServedVersion]:
        with self.registry.acquire(model, version, label) as served:
            yield served

    def validate(self, served: ServedVersion, named: dict[str, np.ndarray]) -> tuple[list[np.ndarray], bool]:
        """Inputs in the model's order, checked against names, shapes and dtypes; and whether the client
        sent quantized integers (then outputs stay integers too)."""
        specs = served.manifest.inputs
        names = [s.name for s in specs]
        unknown = sorted(set(named) - set(names))
        missing = [n for n in names if n not in named]
        if unknown or missing:
            parts = [f"unknown input(s) {', '.join(unknown)}"] if unknown else []
            parts += [f"missing input(s) {', '.join(missing)}"] if missing else []
            raise BadRequestError(f"{'; '.join(parts)}; model {served.model!r} takes "
                                  + ", ".join(f"{s.name} {shape_text(s.shape)} {accepted_types(s)}" for s in specs))
        arrays, raw_flags, rows = [], [], set()
        for spec in specs:
            array = named[spec.name]
            self._check_shape(spec, array)
            rows.add(array.shape[0])
            array, raw = self._check_dtype(spec, array)
            arrays.append(array)
            if spec.quantized:
                raw_flags.append(raw)
        if len(rows) > 1:
            raise BadRequestError(f"inputs disagree on the batch size: {sorted(rows)}; every input needs the same rows")
        if 0 in rows:
            raise BadRequestError("the request holds no rows; send at least one example")
        fixed = served.backend.fixed_batch
        if fixed is not None and rows and next(iter(rows)) % fixed:
            raise BadRequestError(f"model {served.model!r} runs batches of exactly {fixed} (static shapes); "
                                  f"send a multiple of {fixed} rows")
        return arrays, bool(raw_flags) and all(raw_flags)

    @staticmethod
    def _check_shape(spec: TensorSpec, array: np.ndarray) -> None:
        want = spec.shape
        ok = array.ndim == len(want) and all(w < 0 or w == g for w, g in zip(want[1:], array.shape[1:]))
        if not ok:
            raise BadRequestError(f"input {spec.name!r} expects shape {shape_text(want)}, got {list(array.shape)}")

    @staticmethod
    def _check_dtype(spec: TensorSpec, array: np.ndarray) -> tuple[np.ndarray, bool]:
        own = np.dtype(spec.dtype)
        if array.dtype == own:
            return array, spec.quantized
        if array.dtype.kind == "f" and (spec.quantized or own.kind == "f"):
            return (array.astype(np.float32 if spec.quantized else own, copy=False)), False
        raise BadRequestError(f"input {spec.name!r} expects {accepted_types(spec)}, got {v2_datatype(array.dtype)}")

    def predict(self, served: ServedVersion, named: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validate, run (through the batcher when the version has one) and name the outputs."""
        arrays, raw = self.validate(served, named)
        outputs = served.predict(arrays, raw)
        return {spec.name: out for spec, out in zip(served.manifest.outputs, outputs)}

    @staticmethod
    def input_dtype(spec: TensorSpec) -> np.dtype:
        """The dtype a JSON value for ``spec`` is decoded to when the client does not say (real values)."""
        return np.dtype(np.float32) if spec.quantized else np.dtype(spec.dtype)

    # --- the repository extension (model control behind the registry) ---------------------------------
    def repository_index(self, ready_only: bool = False) -> list[dict]:
        """Every model version with its state and reason: ``[{"name", "version", "state", "reason"}]``."""
        return self.registry.control.index(ready_only)

    def load_model(self, model: str, version: int | None = None) -> None:
        """Load a model (or one more version of it) and wait for it."""
        self.registry.control.load(model, version)

    def unload_model(self, model: str, version: int | None = None) -> None:
        """Unload a model (or one version of it) once its in-flight requests finish."""
        self.registry.control.unload(model, version)
