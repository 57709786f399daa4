"""Full-integer int8 with per-layer float fallback, as accuracy-aware quantizers do it.

Start from full int8, rank the quantized layers by the error each one adds, measured in ONE instrumented
pass: ``tf.lite.experimental.QuantizationDebugger``'s layer statistics run each int8 layer beside its float
twin on the calibration inputs and give the root-mean-square difference of their outputs; one run of the
float model (every tensor kept) gives each layer's typical output magnitude, and their ratio (noise to
signal: 0.01 is 40 dB SNR) ranks the layers. TF's guide ranks by ``rmse/scale`` instead (the error in
quantization steps), but that is ~0.3 for any layer whose range one outlier channel has blown up, the very
layer that wipes out its other channels; the error relative to the signal sees it. Then keep the most
harmful layers in float until the accuracy budget holds. The mixed model comes from TensorFlow's own
selective quantization (the debugger's ``denylisted_nodes``), so no extra dependency::

    ranked = rank_layers(model, calibration)        # [LayerError('.../fc1/MatMul;...', 'FULLY_CONNECTED', 0.41), ...]
    blob = selective_int8(model, calibration, denylist=[r.name for r in ranked[:2]])

The ranking costs one conversion and one debug run whatever the model's depth (ranking by reverting one
layer at a time and scoring it cost a conversion and an evaluation per layer: on a MobileNetV2, minutes).

Mixed graphs run int8 and float kernels side by side: only CPU/GPU profiles with float I/O accept them.
Those quantize with LiteRT's quantizer, so there a layer may also keep int8 weights with int16 activations
instead of going to float: a fallback entry is a layer's tensor name (float), or ``int16x8:`` and the name::

    names = [r.name for r in rank_layers(model, calibration)]   # the same tensor names the recipes match
    blob = mixed_int8(float32_blob, calibration, ["int16x8:" + names[0], names[-1]], "image")
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelpress.errors import ConversionError

CALIBRATION_STEPS = 200
SKIP_OPS = {"RESHAPE", "SOFTMAX", "QUANTIZE", "DEQUANTIZE", "SHAPE", "STRIDED_SLICE", "PACK"}


def _debugger(model: Any, calibration: np.ndarray, denylist: list[str] | tuple[str, ...] = ()):
    import tensorflow as tf

    samples = np.asarray(calibration[:CALIBRATION_STEPS], dtype=np.float32)

    def representative():
        for i in range(len(samples)):
            yield [samples[i:i + 1]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(denylist)) if denylist else None
    return tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=representative,
                                                     debug_options=options)


@contextlib.contextmanager
def _quiet():
    sink = io.StringIO()  # Keras' export summary and the converter's notes go to stdout / stderr
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


@dataclass(frozen=True)
class LayerError:
    """One int8 layer's error against its float twin, in units of its quantization step."""

    name: str
    op: str
    #: root-mean-square error against float over the layer's mean absolute float output (noise to signal)
    relative_error: float
    #: the same error in quantization steps (TF's rmse/scale)
    rmse_per_scale: float

    @property
    def short(self) -> str:
        """A readable layer name: the Keras layer of the tensor's first alias (``fc1`` of ``seq/fc1/MatMul;...``)."""
        first = self.name.split(";")[0].split("/")
        return first[1] if len(first) > 2 else first[0]


def rank_layers(model: Any, calibration: np.ndarray) -> list[LayerError]:
    """The int8 layers that can be kept in float (weights-bearing ops), most harmful first, from one pass::

        rank_layers(model, x_train[:200])[0]     # LayerError(name='sequential/fc3/MatMul;...', op=..., 0.12, 2.7)
    """
    try:
        with _quiet():
            debugger = _debugger(model, calibration)
            debugger.run()
            dump = io.StringIO()
            debugger.layer_statistics_dump(dump)
    except Exception as err:  # noqa: BLE001 - the converter's own reason, as one line
        raise ConversionError(f"int8 layer statistics failed: {str(err).splitlines()[0] if str(err) else err}") \
            from None
    rows = [r for r in csv.DictReader(io.StringIO(dump.getvalue()))
            if r.get("op_name") not in SKIP_OPS and r.get("tensor_name")]
    magnitude = _float_magnitudes(model, calibration, {r["tensor_name"] for r in rows})
    ranked = []
    for row in rows:
        try:
            rmse, scale = math.sqrt(max(float(row["mean_squared_error"]), 0.0)), float(row["scale"])
        except (KeyError, TypeError, ValueError):
            continue
        signal = magnitude.get(row["tensor_name"], 0.0)
        relative = rmse / signal if signal > 0 else (math.inf if rmse > 0 else 0.0)
        steps = rmse / scale if scale > 0 else 0.0
        ranked.append(LayerError(row["tensor_name"], row["op_name"], relative, steps if math.isfinite(steps) else 0.0))
    return sorted(ranked, key=lambda r: (-r.relative_error, -r.rmse_per_scale))


def _float_magnitudes(model: Any, calibration: np.ndarray, names: set[str]) -> dict[str, float]:
    """Mean absolute value of each named tensor of the float TFLite model over the calibration samples."""
    import tensorflow as tf

    from modelpress.tflite_interpreter import interpreter_backend

    with _quiet():
        blob = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    with warnings.catch_warnings():  # "intended for debugging purposes only": that is what it is for here
        warnings.simplefilter("ignore", UserWarning)
        interpreter = interpreter_backend()[0](model_content=blob, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    index = {t["name"]: t["index"] for t in interpreter.get_tensor_details() if t["name"] in names}
    feed = interpreter.get_input_details()[0]["index"]
    totals = dict.fromkeys(index, 0.0)
    samples = np.asarray(calibration[:CALIBRATION_STEPS], dtype=np.float32)
    for i in range(len(samples)):
        interpreter.set_tensor(feed, samples[i:i + 1])
        interpreter.invoke()
        for name, tensor in index.items():
            totals[name] += float(np.mean(np.abs(interpreter.get_tensor(tensor))))
    return {name: total / max(len(samples), 1) for name, total in totals.items()}


def selective_int8(model: Any, calibration: np.ndarray, denylist: list[str] | tuple[str, ...]) -> bytes:
    """An int8 model (float I/O) with the layers in ``denylist`` left in float::

        blob = selective_int8(model, x_train[:200], ["sequential/fc3/MatMul;sequential/fc3/BiasAdd"])
    """
    try:
        with _quiet():
            return bytes(_debugger(model, calibration, denylist).get_nondebug_quantized_model())
    except Exception as err:  # noqa: BLE001
        raise ConversionError(f"selective int8 conversion failed: {str(err).splitlines()[0] if str(err) else err}") \
            from None


INT16 = "int16x8:"


def split_entry(entry: str) -> tuple[str, str]:
    """(precision, tensor name) of a fallback entry: ``int16x8:NAME`` or a plain name (float)."""
    return ("int16x8", entry[len(INT16):]) if entry.startswith(INT16) else ("float", entry)


def mixed_int8(float_model: bytes, calibration: np.ndarray, fallback: list[str] | tuple[str, ...],
               input_name: str, hardware: str = "cpu", threads: int = 1) -> bytes:
    """int8 by LiteRT's quantizer with the ``fallback`` layers in int16 activations or float."""
    from modelpress.converters.mixed_precision import LayerPrecision
    from modelpress.converters.quantizer import quantize_flatbuffer

    layers = [(re.escape(name), precision) for precision, name in map(split_entry, fallback)]
    return quantize_flatbuffer(float_model, "mixed", {input_name: np.asarray(calibration)},
                               LayerPrecision("int8", layers), hardware, threads)
