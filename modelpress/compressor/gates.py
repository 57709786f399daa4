"""L0 regularization with hard-concrete gates (Louizos, Welling & Kingma 2018): ``w* = argmin L(w) + λ R(w)``
where ``R`` is the expected fraction of non-zero weights, in a form that makes exact zeros during training.

Every kernel weight ``θ`` gets a gate ``z`` drawn from a hard-concrete distribution with a learnt ``log α``
(a stretched, clipped binary concrete: it reaches exactly 0 and 1 with non-zero probability); the network is
trained with the kernel ``θ · z``. The penalty is the probability that each gate is non-zero, averaged over
the gated weights, times ``strength``. At the end (:meth:`L0Gates.strip`) each gate takes its deterministic
test value, zero wherever ``log α`` fell far enough, and the kernel becomes ``θ · z``: exact zeros, and no
wrapper is left in the model (both Keras flavours: the gates live beside the model, not in its layers)::

    gates = L0Gates(model, strength=30.0)                # apply: θ and log α beside each kernel
    finetune(model, data, FineTune(epochs=15).for_model(model), "keras3", gates=gates)
    gates.strip()             # kernels = θ · z_test: the digits MLP's fc1 ends >= 90% exact zeros at λ=30
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from modelpress.compressor.flavors import kernel_layers, kernel_variable, variable_value
from modelpress.errors import RecipeError

BETA, GAMMA, ZETA = 2.0 / 3.0, -0.1, 1.1  # temperature and stretch interval of the hard-concrete distribution
OPEN_LOG_ALPHA = 3.0   # initial log α: every test-time gate is 1, so the model starts as it was
GATE_RATE = 0.05       # Adam rate for log α (the weights keep fine-tuning's small rate)


def deterministic_gates(log_alpha: np.ndarray) -> np.ndarray:
    """Deterministic gate values in [0, 1]: exactly 0 where ``sigmoid(log α)·(ζ-γ)+γ <= 0``::

        deterministic_gates(np.array([3.0, -3.0]))      # array([1., 0.])
    """
    return np.clip(1.0 / (1.0 + np.exp(-log_alpha)) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


class L0Gates:
    """Hard-concrete gates on the kernels of ``model`` (or ``layers``), and their L0 penalty (``strength``)."""

    def __init__(self, model: Any, strength: float = 0.1, layers: list[str] | None = None,
                 gate_rate: float = GATE_RATE):
        import tensorflow as tf

        if not float(strength) >= 0:
            raise RecipeError(f"l0 strength {strength!r} must be a number >= 0, such as 0.1")
        chosen = kernel_layers(model)
        if layers:
            unknown = sorted(set(layers) - {layer.name for layer in chosen})
            if unknown:
                raise RecipeError(f"layers {unknown} have no kernel to gate; choose from "
                                  f"{sorted(layer.name for layer in chosen)}")
            chosen = [layer for layer in chosen if layer.name in layers]
        if not chosen:
            raise RecipeError("the model has no Dense or Conv kernels to gate")
        self.strength, self.gate_rate, self.layers = float(strength), float(gate_rate), chosen
        self.targets = [kernel_variable(layer) for layer in chosen]
        keep = [(variable_value(v) != 0).astype(np.float32) for v in self.targets]  # earlier zeros stay zeros
        self.keep = [tf.constant(k) for k in keep]
        self.weights = [tf.Variable(variable_value(v).astype(np.float32), name=f"{layer.name}_theta")
                        for v, layer in zip(self.targets, chosen)]
        self.log_alpha = [tf.Variable(np.where(k > 0, OPEN_LOG_ALPHA, -10.0).astype(np.float32),
                                      name=f"{layer.name}_log_alpha") for k, layer in zip(keep, chosen)]
        self.count = float(sum(k.size for k in keep))
        self.optimizer: Any = None

    @property
    def sources(self) -> list[Any]:
        """The variables fine-tuning trains instead of the kernels: θ then log α."""
        return [*self.weights, *self.log_alpha]

    def begin(self, keras: Any) -> None:
        """Called by the fine-tuning loop: log α gets its own Adam (θ follows the loop's optimizer)."""
        self.optimizer = keras.optimizers.Adam(self.gate_rate)

    def kernels(self, training: bool) -> list[Any]:
        """θ · z per kernel: z sampled (training) or deterministic; differentiable in θ and log α."""
        import tensorflow as tf

        out = []
        for theta, log_alpha, keep in zip(self.weights, self.log_alpha, self.keep):
            if training:
                u = tf.random.uniform(tf.shape(log_alpha), 1e-6, 1.0 - 1e-6)
                s = tf.sigmoid((tf.math.log(u) - tf.math.log(1.0 - u) + log_alpha) / BETA)
            else:
                s = tf.sigmoid(log_alpha)
            z = tf.clip_by_value(s * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)
            out.append(theta * z * keep)
        return out

    def penalty(self) -> Any:
        """``strength`` × expected fraction of non-zero gates (differentiable in log α)."""
        import tensorflow as tf

        shift = BETA * math.log(-GAMMA / ZETA)
        total = tf.add_n([tf.reduce_sum(tf.sigmoid(a - shift) * k) for a, k in zip(self.log_alpha, self.keep)])
        return self.strength * total / self.count

    def strip(self) -> dict[str, float]:
        """Write ``θ · z_test`` into the kernels (exact zeros where a gate closed); returns zeros per layer."""
        zeros = {}
        for layer, var, value in zip(self.layers, self.targets, self.kernels(training=False)):
            kernel = np.asarray(value).astype(variable_value(var).dtype)
            var.assign(kernel)
            zeros[layer.name] = float((kernel == 0).mean())
        return zeros

    def open_fraction(self) -> float:
        """Share of gates whose test value is non-zero (what the kernels will keep)."""
        kept = sum(float((deterministic_gates(np.asarray(a)) * np.asarray(k) > 0).sum())
                   for a, k in zip(self.log_alpha, self.keep))
        return kept / self.count
