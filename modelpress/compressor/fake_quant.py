"""Quantization-aware training for Keras 3 models: int8 weight fake-quantization with a straight-through
estimator, as a fine-tuning hook (tfmot, which does QAT for tf_keras models, cannot wrap Keras 3 models).

    hook = WeightFakeQuant(model)                  # every Dense / Conv kernel
    finetune(model, data, settings, "keras3", hooks=[hook])

Before each optimizer step the float ("master") kernels are saved and replaced by their int8 round trip,
per output channel and symmetric in [-127, 127] as TFLite's int8 kernels store them; the forward and backward
passes see the weights the device will run. After the step the update is carried over to the saved float
kernels (``master += updated - quantized``): the straight-through estimator. The model leaves with its float
weights trained to survive int8 rounding, and the int8 conversion calibrates activation ranges as usual
(activations are not fake-quantized here: their ranges come from calibration data at conversion).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelpress.compressor.flavors import kernel_layers, kernel_variable, variable_value

LEVELS = 127.0


def int8_round_trip(kernel: np.ndarray) -> np.ndarray:
    """``kernel`` quantized to int8 per output channel (the last axis; DepthwiseConv2D: the last two) and back::

        int8_round_trip(np.array([[0.5, -1.0], [0.25, 0.1]]))   # steps of 0.5/127 and 1.0/127 per column
    """
    axes = tuple(range(kernel.ndim - 1))
    scale = np.max(np.abs(kernel), axis=axes, keepdims=True) / LEVELS
    scale = np.where(scale > 0, scale, 1.0)
    return (np.clip(np.round(kernel / scale), -LEVELS, LEVELS) * scale).astype(kernel.dtype)


class WeightFakeQuant:
    """Fine-tuning hook (``begin``, ``before_step``, ``after_step``, ``end``) for int8 weight QAT."""

    #: the float weights' accuracy is not what QAT trains for (their int8 round trip's is): best-epoch selection
    #: on float accuracy would keep epoch 0 and undo it, so fine-tuning keeps its last epoch
    select_best = False

    def __init__(self, model: Any):
        self.variables = [kernel_variable(layer) for layer in kernel_layers(model)]
        self._master: list[np.ndarray] = []
        self._quantized: list[np.ndarray] = []

    def begin(self, total_steps: int) -> None:
        pass

    def before_step(self, step: int) -> None:
        self._master = [variable_value(v) for v in self.variables]
        self._quantized = [int8_round_trip(w) for w in self._master]
        for variable, value in zip(self.variables, self._quantized):
            variable.assign(value)

    def after_step(self, step: int) -> None:
        for variable, master, quantized in zip(self.variables, self._master, self._quantized):
            variable.assign(master + (variable_value(variable) - quantized))

    def end(self) -> None:
        self._master, self._quantized = [], []
