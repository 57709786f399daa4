"""Full-integer int8 with per-layer float fallback, as accuracy-aware quantizers do it.

Start from full int8, rank the quantized layers by how much accuracy each one costs (revert it alone to
float and measure on a small ranking subset), then keep the most harmful ones in float, one more at a time,
until the accuracy budget holds. The mixed model comes from TensorFlow's own selective quantization
(``tf.lite.experimental.QuantizationDebugger`` with ``denylisted_nodes``), so no extra dependency::

    layers = quantized_layers(model, calibration)             # tensor names, graph order
    blob = selective_int8(model, calibration, denylist=layers[-1:])

Mixed graphs run int8 and float kernels side by side: only CPU/GPU profiles with float I/O accept them.
"""

from __future__ import annotations

import contextlib
import csv
import io
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


def quantized_layers(model: Any, calibration: np.ndarray) -> list[str]:
    """The names of the int8 layers that can be kept in float (weights-bearing ops), in graph order::

        quantized_layers(model, x_train[:200])    # ['sequential/fc1/MatMul;...', ...]
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
    rows = list(csv.DictReader(io.StringIO(dump.getvalue())))
    return [r["tensor_name"] for r in rows if r.get("op_name") not in SKIP_OPS and r.get("tensor_name")]


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
