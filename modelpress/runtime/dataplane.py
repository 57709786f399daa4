"""The data plane between protocols and the registry: lookup, validation against the signature, predict,
and protocol-neutral answers (readiness, metadata, status) that each protocol words its own way; the
protocols never read registry records::

    with plane.model("digits", version="2") as served:
        x = decode(body, served.manifest.inputs)          # protocol-specific
        outputs = plane.predict(served, {"image": x})      # {"output_0": array}, validated and run
    plane.ready()                                          # True once the repository was loaded
    plane.model_ready("digits")                            # Readiness(model="digits", version=2, ready=True)
    plane.metadata("digits", label="stable")               # ModelMetadata(..., inputs=[TensorSpec...])
    plane.status("digits")                                 # {"digits": [{"version": 2, "state": AVAILABLE...}]}
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from modelpress.errors import BadRequestError, NotFoundError, UnavailableError
from modelpress.layout import parse_version
from modelpress.manifest import TensorSpec, shape_text
from modelpress.runtime.codecs.arrays import v2_datatype
from modelpress.runtime.registry import Checkout, ModelRegistry
from modelpress.runtime.served import ServedVersion
from modelpress.runtime.state import ModelState

#: input plans (see ``DataPlane.validate``) kept per served version before starting over
INPUT_PLANS = 64
#: each input's name in the model's order with the dtype it is converted to (None: as sent); raw or not
InputPlan = tuple[list[tuple[str, 'np.dtype | None']], bool]


def accepted_types(spec: TensorSpec) -> str:
    own = v2_datatype(spec.dtype)
    if spec.quantized:
        return f"{own} (the model's quantized values) or FP32 (real values, quantized by the server)"
    return own


@dataclass(frozen=True)
class Readiness:
    """Whether a model (or one version) takes traffic, and why not."""
    model: str
    version: int | None
    ready: bool
    error: str | None = None
    #: not ready because a client unloaded it (repository API, explicit mode): not the server's doing
    unloaded: bool = False


@dataclass(frozen=True)
class ModelMetadata:
    """What a client needs to call a served version: its signature and where it came from."""
    model: str
    version: int
    versions: list[int]
    platform: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    quantization: str | None
    profile: str | None
    labels: dict[str, int] = field(default_factory=dict)
    inferred: bool = False   # the manifest was read from a model made elsewhere, not shipped with it
    stateful: bool = False   # the model keeps resource variables between calls


class DataPlane:
    """Validation, inference and protocol-neutral answers over a :class:`ModelRegistry`; knows nothing of HTTP."""

    def __init__(self, registry: ModelRegistry):
        self.registry = registry

    # --- protocol-neutral answers ---------------------------------------------------------------
    def ready(self) -> bool:
        """The server takes traffic: see :meth:`not_ready_reason`."""
        return self.not_ready_reason() is None

    def not_ready_reason(self) -> str | None:
        """Why the server as a whole is not ready, or None: the repository was scanned once (every version found
        then loaded or failed) and there is something to serve: a version AVAILABLE, or in explicit model control
        or under a memory budget a model that can be loaded. ``allow_empty`` makes an empty repository ready."""
        registry, config = self.registry, self.registry.config
        if not registry.ready:
            return "the model repository is still loading; retry shortly"
        if config.allow_empty:
            return None
        if not registry.model_names():
            return (f"the model repository {config.repository} holds no model: not ready until one is published "
                    "there (a folder <model>/<version>/ with a package); start with --allow-empty (or "
                    "MODELPRESS_ALLOW_EMPTY=1) to be ready without one")
        if config.model_control == "explicit" or config.max_memory:
            return None  # models load on request (the repository API, or on demand): none loaded is expected
        if any(state == ModelState.AVAILABLE for _, _, state in registry.states()):
            return None
        unloaded = [name for name in registry.model_names() if self._unloaded_by_client(name)]
        if unloaded and len(unloaded) == len(registry.model_names()):
            return ("no model version is being served: every model was unloaded through the repository API; load "
                    "one again (POST /v2/repository/models/<model>/load)")
        if unloaded:
            return (f"no model version is being served: {', '.join(sorted(unloaded))} unloaded through the "
                    "repository API, the other models' versions failed to load (see /status)")
        with self.registry.table.lock:
            hints = [record.layout_hint for record in self.registry.models.values() if record.layout_hint]
        if hints:
            return "no model version is being served: " + "; ".join(hints)
        return "no model version is being served: every version failed to load (see /status or /v2/repository/index)"

    def _unloaded_by_client(self, name: str) -> bool:
        try:
            return self.registry.unloaded_by_client(self.registry.lookup_model(name))
        except NotFoundError:  # removed from the repository since it was listed
            return False

    def model_ready(self, model: str, version: str | None = None) -> Readiness:
        """Readiness of a model's newest available version, or of one version; a version the repository does
        not hold is a 404 (as for its metadata), not "try again later"."""
        record = self.registry.lookup_model(model)
        try:
            with self.registry.acquire(model, version) as served:
                return Readiness(model, served.version, True)
        except (NotFoundError, UnavailableError) as err:
            number = parse_version(version) if version is not None else None
            if version is not None and number not in record.versions and number not in record.failed:
                raise
            return Readiness(model, number, False, str(err), unloaded=self.registry.unloaded_by_client(record))

    def metadata(self, model: str, version: str | None = None, label: str | None = None) -> ModelMetadata:
        """The signature and origin of the version a request names (newest available by default)."""
        with self.registry.acquire(model, version, label) as served:
            record = self.registry.lookup_model(model)
            profile = served.manifest.profile or {}
            return ModelMetadata(model, served.version, sorted(record.versions), served.backend.platform,
                                 list(served.manifest.inputs), list(served.manifest.outputs),
                                 served.manifest.quantization, profile.get("name"), dict(record.config.labels),
                                 served.manifest.inferred, served.manifest.stateful)

    def reload(self) -> None:
        """Scan the repository now instead of waiting for the next poll."""
        self.registry.scan()

    def status(self, model: str | None = None, version: str | None = None,
               label: str | None = None) -> dict[str, list[dict]]:
        """Per model, its versions newest first (state, error, labels); with ``version`` or ``label``, only that
        version's row (a 404 when the repository lacks it)."""
        if label is not None:
            version = str(self.registry.label_version(model, label))
        rows = self.registry.status(model)
        if version is None:
            return rows
        picked = [r for r in rows[model] if r["version"] is not None and str(r["version"]) == str(version)]
        if not picked:
            raise NotFoundError(f"version {version} of model {model!r} is not in the repository")
        return {model: picked}

    def model(self, model: str, version: str | None = None, label: str | None = None) -> Checkout:
        """The version a request names, held in flight for a ``with`` block (the registry's checkout)."""
        return self.registry.acquire(model, version, label)

    def validate(self, served: ServedVersion, named: dict[str, np.ndarray]) -> tuple[list[np.ndarray], bool]:
        """Inputs in the model's order, checked against names, shapes and dtypes; and whether the client
        sent quantized integers (then outputs stay integers too). The outcome of the checks depends only on
        the names, shapes and dtypes sent, so a request like one already accepted by this version reuses its
        plan (which array goes where, which is converted to what) instead of checking again."""
        key = tuple([(name, array.shape, array.dtype) for name, array in named.items()])
        plan = served.input_plans.get(key)
        if plan is None:
            plan = self._plan(served, named)
            if len(served.input_plans) >= INPUT_PLANS:  # clients sending ever new shapes: start over
                served.input_plans.clear()
            served.input_plans[key] = plan
        order, raw = plan
        return [named[name] if cast is None else named[name].astype(cast, copy=False) for name, cast in order], raw

    def _plan(self, served: ServedVersion, named: dict[str, np.ndarray]) -> InputPlan:
        """Check ``named`` against the signature (a 400 naming what is wrong) and say, for each input in the
        model's order, its name and the dtype it is converted to (None: taken as sent); and whether the client
        sent quantized integers."""
        specs = served.manifest.inputs
        names = [s.name for s in specs]
        unknown = sorted(set(named) - set(names))
        missing = [n for n in names if n not in named]
        if unknown or missing:
            parts = [f"unknown input(s) {', '.join(unknown)}"] if unknown else []
            parts += [f"missing input(s) {', '.join(missing)}"] if missing else []
            raise BadRequestError(f"{'; '.join(parts)}; model {served.model!r} takes "
                                  + ", ".join(f"{s.name} {shape_text(s.shape)} {accepted_types(s)}" for s in specs))
        order, raw_flags, rows = [], [], set()
        for spec in specs:
            array = named[spec.name]
            self._check_shape(spec, array)
            rows.add(array.shape[0])
            cast, raw = self._check_dtype(spec, array)
            order.append((spec.name, cast))
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
        return order, bool(raw_flags) and all(raw_flags)

    @staticmethod
    def _check_shape(spec: TensorSpec, array: np.ndarray) -> None:
        want = spec.shape
        ok = array.ndim == len(want) and all(w < 0 or w == g for w, g in zip(want[1:], array.shape[1:]))
        if not ok:
            raise BadRequestError(f"input {spec.name!r} expects shape {shape_text(want)}, got {list(array.shape)}")

    @staticmethod
    def _check_dtype(spec: TensorSpec, array: np.ndarray) -> tuple[np.dtype | None, bool]:
        """The dtype ``array`` is converted to (None: none needed) and whether it holds quantized values."""
        own = np.dtype(spec.dtype)
        if array.dtype == own:
            return None, spec.quantized
        if array.dtype.kind == "f" and (spec.quantized or own.kind == "f"):
            return np.dtype(np.float32) if spec.quantized else own, False
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
        """Every model version with its state and reason::

            plane.repository_index()     # [{"name": "digits", "version": "2", "state": "READY", "reason": ""}, ...]
        """
        return self.registry.control.index(ready_only)

    def load_model(self, model: str, version: int | None = None) -> None:
        """Load a model (or one more version of it) and wait for it::

            plane.load_model("digits"); plane.load_model("digits", 1)
        """
        self.registry.control.load(model, version)

    def unload_model(self, model: str, version: int | None = None) -> None:
        """Unload a model (or one version of it) once its in-flight requests finish::

            plane.unload_model("digits", 1); plane.unload_model("digits")
        """
        self.registry.control.unload(model, version)
