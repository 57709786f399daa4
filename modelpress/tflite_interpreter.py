"""Run a .tflite model: the one interpreter wrapper that verification and the runtime share.

The interpreter comes from ai-edge-litert, else tflite_runtime, else tf.lite (in that order; a
candidate that imports but cannot create an interpreter, as tflite_runtime 2.14 under NumPy 2, is
skipped). Quantized inputs and outputs are converted from and to real values with the model's own
scale and zero point, unless the caller passes the model's integer dtype::

    model = TFLiteModel("artifact/model.tflite", threads=4)
    probs = model.predict([x_float32])[0]          # quantizes x, dequantizes the output
    raw = model.predict([x_int8], dequantize=False)  # the model's own integers

Not thread-safe: one TFLiteModel per concurrent worker (see runtime's interpreter pool).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelpress.errors import ArtifactError, BadRequestError
from modelpress.manifest import TensorSpec, shape_text

log = logging.getLogger(__name__)

_INTERPRETER: tuple[Any, Any, str] | None = None
#: the signature served by default when a model has several, in order of preference (else its first)
SERVING_SIGNATURES = ("serving_default", "serve", "serving", "predict", "infer", "main")
_SKIPPED: set[str] = set()

DELEGATE_LIBRARIES = {
    "edgetpu": ("libedgetpu.so.1", "libedgetpu.1.dylib", "edgetpu.dll"),
    "gpu": ("libtensorflowlite_gpu_delegate.so",),
}


def _candidates():
    def litert():
        from ai_edge_litert.interpreter import Interpreter, load_delegate

        return Interpreter, load_delegate, "ai-edge-litert"

    def tflite_runtime():
        from tflite_runtime.interpreter import Interpreter, load_delegate

        return Interpreter, load_delegate, "tflite_runtime"

    def tf_lite():
        import tensorflow as tf

        return tf.lite.Interpreter, tf.lite.experimental.load_delegate, "tf.lite"

    return (litert, tflite_runtime, tf_lite)


def interpreter_backend() -> tuple[Any, Any, str]:
    """(Interpreter class, load_delegate function, backend name) of the first working candidate."""
    global _INTERPRETER
    if _INTERPRETER is not None:
        return _INTERPRETER
    errors = []
    for candidate in _candidates():
        try:
            interpreter_cls, load_delegate, name = candidate()
        except Exception as err:  # ImportError, or a broken install
            errors.append(f"{candidate.__name__}: {type(err).__name__}: {err}")
            continue
        if name in _SKIPPED:
            errors.append(f"{name}: cannot create an interpreter")
            continue
        _INTERPRETER = (interpreter_cls, load_delegate, name)
        return _INTERPRETER
    raise ArtifactError(
        "no TFLite interpreter is available (" + "; ".join(errors) + "); install one with "
        "`pip install ai-edge-litert`"
    )


def _delegates(delegate: str | None, load_delegate) -> list[Any]:
    if not delegate or delegate in ("none", "xnnpack"):
        return []  # XNNPACK is applied by default for float and int8 CPU kernels
    libraries = DELEGATE_LIBRARIES.get(delegate)
    if not libraries:
        log.warning("delegate %r has no loader on this platform; running on the CPU", delegate)
        return []
    for library in libraries:
        try:
            return [load_delegate(library)]
        except (OSError, ValueError, RuntimeError):
            continue
    log.warning("delegate %r asked for but %s not found; running on the CPU instead", delegate,
                " / ".join(libraries))
    return []


class TFLiteModel:
    """A loaded .tflite model with real-valued predict on a batch."""

    def __init__(self, model: str | Path | bytes, threads: int = 1, delegate: str | None = None,
                 signature: str | None = None):
        """``signature`` picks one of a multi-signature model's signature runners (by default the model's
        only signature, ``serving_default``, or its first); tensors are then named by its keys."""
        kwargs: dict[str, Any] = {"num_threads": int(threads)}
        if isinstance(model, (bytes, bytearray)):
            kwargs["model_content"] = bytes(model)
            self.source = "<bytes>"
        else:
            path = Path(model)
            if not path.is_file():
                raise ArtifactError(f"TFLite model {path} does not exist")
            kwargs["model_path"] = str(path)
            self.source = str(path)
        while True:
            interpreter_cls, load_delegate, self.backend = interpreter_backend()
            delegates = _delegates(delegate, load_delegate)
            if delegates:
                kwargs["experimental_delegates"] = delegates
            try:
                self._interpreter = interpreter_cls(**kwargs)
                break
            except AttributeError as err:
                # tflite_runtime 2.14 built against NumPy 1 fails here under NumPy 2: try the next one.
                if self.backend == "tf.lite":
                    raise ArtifactError(f"cannot create a TFLite interpreter: {err}") from None
                log.warning("%s cannot create an interpreter (%s); trying the next backend", self.backend, err)
                _skip_backend(self.backend)
            except ValueError as err:
                raise ArtifactError(f"{self.source} is not a valid TFLite model: {err}") from None
        try:
            self._interpreter.allocate_tensors()
            allocated = True
        except RuntimeError as err:
            # a model with dynamic dimensions may not prepare at its placeholder shape (1 for each open
            # dimension): it is prepared at the first real shape instead
            if not any(int(v) < 0 for d in self._interpreter.get_input_details()
                       for v in d.get("shape_signature", d["shape"])):
                raise ArtifactError(f"{self.source} cannot be prepared by the TFLite interpreter: {err}") from None
            log.debug("%s: not prepared at its placeholder shape (%s); preparing at the first real shape",
                      self.source, err)
            allocated = False
        self.signatures = _signature_keys(self._interpreter)
        self.signature = _pick_signature(self.signatures, signature, self.source)
        self._runner = None
        if self.signature is not None and len(self.signatures) > 1:
            # several entry points (e.g. a streaming model's "init" and "serve"): run through the runner
            self._runner = self._interpreter.get_signature_runner(self.signature)
            self.input_details = [dict(d, name=k) for k, d in self._runner.get_input_details().items()]
            self.output_details = [dict(d, name=k) for k, d in self._runner.get_output_details().items()]
        else:
            self.input_details = self._interpreter.get_input_details()
            self.output_details = self._interpreter.get_output_details()
            _use_signature_names(self._interpreter, self.input_details, self.output_details)
        self._shapes: list[tuple | None] = [tuple(d["shape"]) if allocated else None for d in self.input_details]

    @property
    def inputs(self) -> list[dict[str, Any]]:
        return self.input_details

    @property
    def outputs(self) -> list[dict[str, Any]]:
        return self.output_details

    def input_specs(self) -> list[TensorSpec]:
        """Inputs as manifest TensorSpecs (-1 for a dynamic dimension, scale/zero point if quantized)."""
        return [_spec(d) for d in self.input_details]

    def output_specs(self) -> list[TensorSpec]:
        return [_spec(d) for d in self.output_details]

    def _prepare(self, index: int, value: np.ndarray) -> np.ndarray:
        detail = self.input_details[index]
        dtype = np.dtype(detail["dtype"])
        value = np.asarray(value)
        signature = detail.get("shape_signature", detail["shape"])
        if value.ndim != len(signature):
            raise BadRequestError(
                f"input {detail['name']!r} expects {len(signature)} dimensions "
                f"{shape_text(signature)}, got shape {list(value.shape)}"
            )
        for axis, (want, got) in enumerate(zip(signature, value.shape)):
            if axis > 0 and want > 0 and want != got:
                raise BadRequestError(
                    f"input {detail['name']!r} expects shape {shape_text(signature)}, got {list(value.shape)}"
                )
        scale, zero_point = detail["quantization"]
        if value.dtype == dtype:
            return value
        if np.issubdtype(dtype, np.integer) and scale:
            if not np.issubdtype(value.dtype, np.number):
                raise BadRequestError(f"input {detail['name']!r} needs numbers, got {value.dtype}")
            info = np.iinfo(dtype)
            q = np.round(value.astype(np.float32) / scale + zero_point)
            return np.clip(q, info.min, info.max).astype(dtype)
        try:
            return value.astype(dtype)
        except (TypeError, ValueError):
            raise BadRequestError(f"input {detail['name']!r} needs {dtype.name}, got {value.dtype}") from None

    @property
    def fixed_batch(self) -> int | None:
        """The batch size a static-shape model (Edge TPU, microcontroller) was converted with, else None."""
        sizes = {int(d.get("shape_signature", d["shape"])[0]) for d in self.input_details
                 if len(d.get("shape_signature", d["shape"]))}
        return sizes.pop() if len(sizes) == 1 and min(sizes) > 0 else None

    def predict(self, inputs: Sequence[np.ndarray], dequantize: bool = True) -> list[np.ndarray]:
        """Run one batch. ``inputs`` follow the model's input order; outputs follow its output order.

        A model converted with a fixed batch size runs a larger batch in slices of that size.
        """
        if len(inputs) != len(self.input_details):
            raise BadRequestError(f"the model takes {len(self.input_details)} input(s), got {len(inputs)}")
        prepared = [self._prepare(i, value) for i, value in enumerate(inputs)]
        fixed = self.fixed_batch
        rows = {len(value) for value in prepared if value.ndim}
        if fixed is not None and rows and rows != {fixed}:
            total = rows.pop()
            if rows or total % fixed:
                raise BadRequestError(f"this model runs batches of exactly {fixed} (static shapes); "
                                      f"send a multiple of {fixed} rows in every input")
            parts = [self._invoke([value[i:i + fixed] for value in prepared], dequantize)
                     for i in range(0, total, fixed)]
            return [np.concatenate([part[k] for part in parts]) for k in range(len(self.output_details))]
        return self._invoke(prepared, dequantize)

    def predict_named(self, feed: dict[str, np.ndarray], batch_size: int = 64,
                      dequantize: bool = True) -> dict[str, np.ndarray]:
        """Inputs and outputs by signature name, in batches of ``batch_size`` rows::

            model.predict_named({"spectrogram": x})   # {"tempo": probs, ...}
        """
        names = [d["name"] for d in self.input_details]
        missing = [n for n in names if n not in feed]
        if missing:
            raise BadRequestError(f"no value for input(s) {', '.join(map(repr, missing))}; the model takes "
                                  f"{', '.join(map(repr, names))}")
        total = len(next(iter(feed.values())))
        parts = [self.predict([feed[n][i:i + batch_size] for n in names], dequantize=dequantize)
                 for i in range(0, total, batch_size)]
        return {d["name"]: np.concatenate([p[k] for p in parts]) for k, d in enumerate(self.output_details)}

    def _invoke(self, prepared: list[np.ndarray], dequantize: bool) -> list[np.ndarray]:
        if self._runner is not None:
            answer = self._runner(**{d["name"]: v for d, v in zip(self.input_details, prepared)})
            return [self._dequantized(np.asarray(answer[d["name"]]), d, dequantize) for d in self.output_details]
        resized = False
        for i, value in enumerate(prepared):
            if tuple(value.shape) != self._shapes[i]:
                self._interpreter.resize_tensor_input(self.input_details[i]["index"], list(value.shape))
                self._shapes[i] = tuple(value.shape)
                resized = True
        if resized:
            try:
                self._interpreter.allocate_tensors()
            except RuntimeError as err:
                self._shapes = [None] * len(self._shapes)
                raise BadRequestError(f"the model cannot run inputs of shape(s) "
                                      f"{[list(v.shape) for v in prepared]}: {str(err).splitlines()[0]}") from None
        for i, value in enumerate(prepared):
            self._interpreter.set_tensor(self.input_details[i]["index"], value)
        self._interpreter.invoke()
        return [self._dequantized(self._interpreter.get_tensor(d["index"]), d, dequantize) for d in self.output_details]

    @staticmethod
    def _dequantized(out: np.ndarray, detail: dict[str, Any], dequantize: bool) -> np.ndarray:
        scale, zero_point = detail["quantization"]
        if dequantize and scale and np.issubdtype(out.dtype, np.integer):
            out = (out.astype(np.float32) - zero_point) * np.float32(scale)
        return np.array(out, copy=True)


def _spec(detail: dict[str, Any]) -> TensorSpec:
    scale, zero_point = detail["quantization"]
    return TensorSpec(
        name=detail["name"], shape=[int(v) for v in detail.get("shape_signature", detail["shape"])],
        dtype=np.dtype(detail["dtype"]).name,
        scale=float(scale) if scale else None, zero_point=int(zero_point) if scale else None,
    )


def _signature_keys(interpreter: Any) -> list[str]:
    try:
        return list(interpreter.get_signature_list())
    except (AttributeError, ValueError, RuntimeError):
        return []


def _pick_signature(keys: list[str], wanted: str | None, source: str) -> str | None:
    if wanted is not None:
        if wanted not in keys:
            raise ArtifactError(f"{source} has no signature {wanted!r}; it has {', '.join(keys) or 'none'}")
        return wanted
    if not keys:
        return None
    preferred = [k for k in SERVING_SIGNATURES if k in keys]
    return preferred[0] if preferred else keys[0]


def _use_signature_names(interpreter: Any, inputs: list[dict], outputs: list[dict]) -> None:
    """Name tensors as the model's serving signature does ("input_layer", "output_0"), not by the
    converter's internal names ("serving_default_input_layer:0"), when the model has one signature."""
    try:
        signatures = interpreter.get_signature_list()
        if len(signatures) != 1:
            return
        runner = interpreter.get_signature_runner()
        names_in = {d["index"]: name for name, d in runner.get_input_details().items()}
        names_out = {d["index"]: name for name, d in runner.get_output_details().items()}
    except (AttributeError, ValueError, RuntimeError):
        return
    for details, names in ((inputs, names_in), (outputs, names_out)):
        for detail in details:
            detail["name"] = names.get(detail["index"], detail["name"])


def _skip_backend(name: str) -> None:
    """Forget a backend that imported but cannot create an interpreter, so the next one is tried."""
    global _INTERPRETER
    _SKIPPED.add(name)
    _INTERPRETER = None
