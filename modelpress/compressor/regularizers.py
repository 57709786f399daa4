"""Penalties for regularized fine-tuning, ``L(w) + λ R(w)``: L1, L2, and group lasso over output channels.

    penalty = Penalty(model, kind="group_lasso", strength=1e-3)
    penalty()          # a scalar tensor, added to the loss at every step (in finetune)
    penalty.norms()    # {layer: per-output-channel L2 norms}, the ranking structured pruning uses

Group lasso sums the L2 norms of each output channel's (or unit's) weights, driving whole channels to
zero so that ``slim`` can then remove them (Wen et al. 2016, "Learning Structured Sparsity").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelpress.compressor.flavors import KERNELS, kernel_layers, kernel_variable, variable_value
from modelpress.errors import RecipeError

PENALTIES = ("l1", "l2", "group_lasso")


def channel_matrix(weights: Any, class_name: str):
    """The kernel as a (fan-in, output channels) matrix: works on numpy arrays and tensors alike."""
    import tensorflow as tf

    shape = weights.shape
    if class_name == "DepthwiseConv2D":  # (kh, kw, in, mult): output channel c*mult + j
        return tf.reshape(weights, (int(shape[0]) * int(shape[1]), -1))
    return tf.reshape(weights, (-1, int(shape[-1])))


def channel_norms(layer: Any) -> np.ndarray:
    """L2 norm of each output channel / unit of a layer's kernel."""
    w = variable_value(kernel_variable(layer))
    name = type(layer).__name__
    if name == "DepthwiseConv2D":
        return np.sqrt((w.reshape(w.shape[0] * w.shape[1], -1) ** 2).sum(axis=0))
    return np.sqrt((w.reshape(-1, w.shape[-1]) ** 2).sum(axis=0))


class Penalty:
    """``strength * R(w)`` summed over the chosen layers' kernels."""

    def __init__(self, model: Any, kind: str = "l2", strength: float = 1e-4, layers: list[str] | None = None):
        if kind not in PENALTIES:
            raise RecipeError(f"penalty {kind!r} is not one of {', '.join(PENALTIES)}")
        try:
            strength = float(strength)
        except (TypeError, ValueError):
            raise RecipeError(f"penalty strength (lambda) {strength!r} is not a number") from None
        if strength < 0:
            raise RecipeError(f"penalty strength (lambda) {strength} must not be negative")
        self.kind, self.strength = kind, strength
        chosen = kernel_layers(model)
        if layers:
            names = {layer.name for layer in chosen}
            unknown = sorted(set(layers) - names)
            if unknown:
                raise RecipeError(f"regularize targets {unknown} are not layers with kernels; choose from "
                                  f"{sorted(names)}")
            chosen = [layer for layer in chosen if layer.name in layers]
        self.layers = chosen
        self.variables = [(kernel_variable(layer), type(layer).__name__) for layer in chosen]

    def __call__(self):
        import tensorflow as tf

        total = tf.constant(0.0)
        for var, class_name in self.variables:
            if self.kind == "l1":
                total += tf.reduce_sum(tf.abs(var))
            elif self.kind == "l2":
                total += tf.reduce_sum(tf.square(var))
            else:
                matrix = channel_matrix(var, class_name)
                total += tf.reduce_sum(tf.sqrt(tf.reduce_sum(tf.square(matrix), axis=0) + 1e-12))
        return self.strength * total

    def norms(self) -> dict[str, np.ndarray]:
        return {layer.name: channel_norms(layer) for layer in self.layers if type(layer).__name__ in KERNELS}
