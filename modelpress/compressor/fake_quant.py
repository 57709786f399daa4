"""Quantization-aware training for Keras 3 models: int8 weight fake-quantization with a straight-through
estimator, as a fine-tuning hook (tfmot, which does QAT for tf_keras models, cannot wrap Keras 3 models).

    hook = WeightFakeQuant(model)                  # every Dense / Conv kernel
    finetune(model, data, settings, "keras3", hooks=[hook])
    hook = WeightFakeQuant(model, bits=4)          # the int4 grid: 15 shared values per output channel
    hook = WeightFakeQuant(model, bits=4, per_tensor=True)   # 15 shared values per kernel (tensorwise int4)

With ``bits=4`` the hook is weight sharing on the grid LiteRT's int4 weights use (per output channel, symmetric,
scale = max|w| / 7), for both Keras flavours: at the end the kernels are written as their round trip, so the
int4 conversion stores them without a further rounding error (and pruned zeros stay zeros: 0 rounds to 0).

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
BITS = (8, 4)


def int8_round_trip(kernel: np.ndarray, bits: int = 8, per_tensor: bool = False) -> np.ndarray:
    """``kernel`` quantized to ``bits`` per output channel (the last axis; DepthwiseConv2D: the last two) and
    back, symmetric in [-(2^(bits-1)-1), 2^(bits-1)-1] (what TFLite's int8 and LiteRT's int4 weights store);
    ``per_tensor``: one scale for the whole kernel (LiteRT's tensorwise int4)::

        int8_round_trip(np.array([[0.5, -1.0], [0.25, 0.1]]))   # steps of 0.5/127 and 1.0/127 per column
        int8_round_trip(np.array([[0.5, -1.0], [0.25, 0.1]]), bits=4)   # steps of 0.5/7 and 1.0/7
        int8_round_trip(np.array([[0.5, -1.0], [0.25, 0.1]]), bits=4, per_tensor=True)   # steps of 1.0/7
    """
    levels = LEVELS if bits == 8 else float(2 ** (bits - 1) - 1)
    axes = tuple(range(kernel.ndim)) if per_tensor else tuple(range(kernel.ndim - 1))
    scale = np.max(np.abs(kernel), axis=axes, keepdims=True) / levels
    scale = np.where(scale > 0, scale, 1.0)
    return (np.clip(np.round(kernel / scale), -levels, levels) * scale).astype(kernel.dtype)


class WeightFakeQuant:
    """Fine-tuning hook (``begin``, ``before_step``, ``after_step``, ``end``) for int8 weight QAT."""

    #: the float weights' accuracy is not what QAT trains for (their int8 round trip's is): best-epoch selection
    #: on float accuracy would keep epoch 0 and undo it, so fine-tuning keeps its last epoch
    select_best = False

    def __init__(self, model: Any, bits: int = 8, per_tensor: bool = False):
        self.bits, self.per_tensor = int(bits), bool(per_tensor)
        self.variables = [kernel_variable(layer) for layer in kernel_layers(model)]
        self._master: list[np.ndarray] = []
        self._quantized: list[np.ndarray] = []

    def begin(self, total_steps: int) -> None:
        pass

    def before_step(self, step: int) -> None:
        self._master = [variable_value(v) for v in self.variables]
        self._quantized = [int8_round_trip(w, self.bits, self.per_tensor) for w in self._master]
        for variable, value in zip(self.variables, self._quantized):
            variable.assign(value)

    def after_step(self, step: int) -> None:
        for variable, master, quantized in zip(self.variables, self._master, self._quantized):
            variable.assign(master + (variable_value(variable) - quantized))

    def end(self) -> None:
        self._master, self._quantized = [], []

    def strip(self) -> None:
        """Write each kernel as its round trip: the weights the conversion will store, exactly."""
        for variable in self.variables:
            variable.assign(int8_round_trip(variable_value(variable), self.bits, self.per_tensor))
