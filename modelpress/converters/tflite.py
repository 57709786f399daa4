"""Keras (either flavour) or SavedModel to TFLite bytes, for every quantization mode.

    data = to_tflite_bytes(model, quantization="int8", calibration=x_calib,
                           input_dtype="uint8", output_dtype="uint8", op_set="int8_builtins")

Quantization: ``none`` (float32), ``dynamic`` (int8 weights, float activations), ``float16`` (fp16
weights), ``int8`` (full integer; needs calibration samples), ``int16x8`` (int16 activations, int8
weights; needs calibration samples).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from typing import Any

import numpy as np

from modelpress.errors import ConversionError, DataError
from modelpress.model_io import LoadedModel, load_model

log = logging.getLogger(__name__)

CALIBRATION_STEPS = 300


def _tf():
    import tensorflow as tf

    return tf


def _dtype(name: str):
    tf = _tf()
    return {"float32": tf.float32, "float16": tf.float16, "int8": tf.int8, "uint8": tf.uint8,
            "int16": tf.int16}[name]


def _fixed_batch(source: LoadedModel, batch_size: int):
    """The same Keras model called on inputs of a fixed batch size, so no op computes shapes at run time."""
    if source.flavor == "tf_keras":
        import tf_keras as keras_module
    else:
        import keras as keras_module
    model = source.model
    shapes = model.inputs
    inputs = [keras_module.Input(batch_shape=(batch_size, *tuple(t.shape)[1:]), dtype=t.dtype,
                                 name=_layer_name(t)) for t in shapes]
    outputs = model(inputs if len(inputs) > 1 else inputs[0])
    return keras_module.Model(inputs, outputs, name=model.name)


def _layer_name(tensor) -> str | None:
    history = getattr(tensor, "_keras_history", None)
    return getattr(history[0], "name", None) if history else None


def _converter(source: LoadedModel, batch_size: int | None = None):
    tf = _tf()
    if source.flavor == "saved_model":
        return tf.lite.TFLiteConverter.from_saved_model(str(source.path), signature_keys=["serving_default"])
    # Works for Keras 3 and tf_keras models alike in TF 2.21, and keeps the batch dimension dynamic.
    model = source.model if batch_size is None else _fixed_batch(source, batch_size)
    return tf.lite.TFLiteConverter.from_keras_model(model)


def _representative(samples: np.ndarray):
    steps = min(len(samples), CALIBRATION_STEPS)

    def generate():
        for i in range(steps):
            yield [samples[i: i + 1].astype(np.float32)]

    return generate


def to_tflite_bytes(model: Any, quantization: str = "none", calibration: np.ndarray | None = None,
                    input_dtype: str = "float32", output_dtype: str = "float32",
                    op_set: str = "builtins", batch_size: int | None = None) -> bytes:
    """Convert and return the flatbuffer. Raises ConversionError with the converter's own reason.

    ``batch_size`` fixes the batch dimension (Edge TPU, microcontrollers); by default it stays dynamic.
    """
    tf = _tf()
    source = model if isinstance(model, LoadedModel) else load_model(model)
    converter = _converter(source, batch_size)
    ops = {
        "builtins": [tf.lite.OpsSet.TFLITE_BUILTINS],
        "int8_builtins": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8],
        "select_tf_ops": [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS],
    }[op_set]
    if quantization in ("int8", "int16x8"):
        if calibration is None or len(calibration) == 0:
            raise DataError(f"{quantization} quantization needs calibration samples; pass --calibration "
                            "FILE.npz|FILE.npy|IMAGE_FOLDER (or --calibration random to accept a poor model)")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(calibration)
        if quantization == "int16x8":
            ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        elif op_set == "builtins":
            ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = _dtype(input_dtype)
        converter.inference_output_type = _dtype(output_dtype)
    elif quantization == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization != "none":
        raise ConversionError(f"unknown quantization {quantization!r}")
    converter.target_spec.supported_ops = ops
    captured = io.StringIO()  # Keras 3 prints its export summary; the converter logs to fd 2
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured), _quiet_fd2():
            return converter.convert()
    except Exception as err:
        reason = _first_reason(str(err)) or type(err).__name__
        raise ConversionError(f"TFLite conversion ({quantization}, ops {op_set}) failed: {reason}") from None


def _first_reason(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if "error:" in line:
            return line[line.index("error:") + 6:].strip()
    return text.strip().splitlines()[0] if text.strip() else ""


@contextlib.contextmanager
def _quiet_fd2():
    """Silence the MLIR converter's C++ logging (written to fd 2) unless modelpress logs at DEBUG."""
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
