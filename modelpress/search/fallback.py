"""Full-integer int8 with per-layer float fallback, as accuracy-aware quantizers do it.

Start from full int8, rank the quantized layers by how much accuracy each one costs (revert it alone to
float and measure on a small ranking subset), then keep the most harmful ones in float, one more at a time,
until the accuracy budget holds. The mixed model comes from TensorFlow's own selective quantization
(``tf.lite.experimental.QuantizationDebugger`` with ``denylisted_nodes``), so no extra dependency::

    layers = quantized_layers(model, calibration)             # tensor names, graph order
    blob = selective_int8(model, calibration, denylist=layers[-1:])

Mixed graphs run int8 and float kernels side by side: only CPU/GPU profiles with float I/O accept them.
Those quantize with LiteRT's quantizer, so there a layer may also keep int8 weights with int16 activations
instead of going to float: a fallback entry is a layer's tensor name (float), or ``int16x8:`` and the name::

    layers = quantizer_layers(float32_blob)                     # weight-bearing ops' output tensors
    blob = mixed_int8(float32_blob, calibration, ["int16x8:" + layers[0], layers[-1]])
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
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


INT16 = "int16x8:"
WEIGHT_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"}


def split_entry(entry: str) -> tuple[str, str]:
    """(precision, tensor name) of a fallback entry: ``int16x8:NAME`` or a plain name (float)."""
    return ("int16x8", entry[len(INT16):]) if entry.startswith(INT16) else ("float", entry)


def quantizer_layers(float_model: bytes) -> list[str]:
    """The output tensor names of the weight-bearing ops of a float32 flatbuffer, in graph order: the names
    LiteRT's quantizer's recipes match (they carry the Keras layer names)."""
    import tflite

    from modelpress.tflite_graph import read_graph

    ops = read_graph(float_model).ops
    model = tflite.Model.GetRootAsModel(float_model, 0)
    graph = model.Subgraphs(0)
    names = []
    for i in range(graph.OperatorsLength()):
        if i < len(ops) and ops[i] in WEIGHT_OPS:
            names.append(graph.Tensors(graph.Operators(i).Outputs(0)).Name().decode())
    return names


def mixed_int8(float_model: bytes, calibration: np.ndarray, fallback: list[str] | tuple[str, ...],
               input_name: str, hardware: str = "cpu", threads: int = 1) -> bytes:
    """int8 by LiteRT's quantizer with the ``fallback`` layers in int16 activations or float."""
    from modelpress.converters.mixed_precision import LayerPrecision
    from modelpress.converters.quantizer import quantize_flatbuffer

    layers = [(re.escape(name), precision) for precision, name in map(split_entry, fallback)]
    return quantize_flatbuffer(float_model, "mixed", {input_name: np.asarray(calibration)},
                               LayerPrecision("int8", layers), hardware, threads)
