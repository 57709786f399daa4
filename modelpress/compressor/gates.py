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

``groups`` adds gates on whole hidden units and input features (``L0Gates(model, 30.0, groups="units+inputs")``):
a removed unit leaves a zero column, a zero row in the next layer and a zero bias, a removed input a zero row,
which gzip stores almost for free where scattered zeros cost their positions.
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
GROUP_PUSH = 0.05      # share of the penalty's gradient a unit / input gate gets (the value counts in full)


def deterministic_gates(log_alpha: np.ndarray) -> np.ndarray:
    """Deterministic gate values in [0, 1]: exactly 0 where ``sigmoid(log α)·(ζ-γ)+γ <= 0``::

        deterministic_gates(np.array([3.0, -3.0]))      # array([1., 0.])
    """
    return np.clip(1.0 / (1.0 + np.exp(-log_alpha)) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


GROUPS = ("weights", "units", "inputs")  # what one gate switches: a weight, a hidden unit, an input feature


def parse_groups(value: Any) -> tuple[str, ...]:
    """``"units+inputs"`` or ``["units", "inputs"]`` -> ``('inputs', 'units')``; RecipeError for anything else."""
    parts = value.split("+") if isinstance(value, str) else value
    if not isinstance(parts, (list, tuple)) or not parts or not all(isinstance(p, str) for p in parts) \
            or set(parts) - set(GROUPS):
        raise RecipeError(f"l0 groups {value!r} must name one or more of {', '.join(GROUPS)} joined by '+', "
                          "such as 'units+inputs+weights'")
    return tuple(sorted(set(parts)))


class L0Gates:
    """Hard-concrete gates on the kernels of ``model`` (or ``layers``), and their L0 penalty (``strength``).

    ``groups`` says what a gate switches: ``weights`` (one gate a kernel weight), ``units`` (one gate a hidden
    unit of a Dense layer followed by a Dense layer in a Sequential model: its kernel column, the next layer's
    kernel row and, once stripped, its bias, so the unit is gone) and ``inputs`` (one gate a row of the first
    kernel when it is a Dense layer: an input feature it no longer reads). Gates multiply, and the penalty is
    the expected number of non-zero kernel weights, so a unit's gate weighs as much as the weights it switches.
    """

    def __init__(self, model: Any, strength: float = 0.1, layers: list[str] | None = None,
                 gate_rate: float = GATE_RATE, groups: Any = ("weights",)):
        import tensorflow as tf

        if not float(strength) >= 0:
            raise RecipeError(f"l0 strength {strength!r} must be a number >= 0, such as 0.1")
        self.groups = parse_groups(groups)
        everything = kernel_layers(model)
        chosen = everything
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
        # log α per gated weight (groups "weights"), then one vector per group of units / inputs
        self.log_alpha = [tf.Variable(np.where(k > 0, OPEN_LOG_ALPHA, -10.0).astype(np.float32),
                                      name=f"{layer.name}_log_alpha") for k, layer in zip(keep, chosen)] \
            if "weights" in self.groups else []
        self.columns: list[int | None] = [None] * len(chosen)  # index into log_alpha of a layer's column gates
        self.rows: list[int | None] = [None] * len(chosen)     # ... and of its row gates
        self.unit_biases: list[tuple[Any, int]] = []           # (bias variable, its gate) of gated units
        index = {id(layer): i for i, layer in enumerate(chosen)}
        if "units" in self.groups:
            for layer, following in _dense_chain(model, everything):
                i, j = index.get(id(layer)), index.get(id(following))
                if i is None or j is None:
                    continue
                self.columns[i] = self.rows[j] = len(self.log_alpha)
                self.log_alpha.append(tf.Variable(np.full(layer.units, OPEN_LOG_ALPHA, np.float32),
                                                  name=f"{layer.name}_unit_log_alpha"))
                if getattr(layer, "bias", None) is not None:
                    self.unit_biases.append((layer.bias, self.columns[i]))
        first, self.input_layer = everything[0], None
        if "inputs" in self.groups and type(first).__name__ == "Dense" and id(first) in index:
            i = index[id(first)]
            if self.rows[i] is None:
                self.rows[i], self.input_layer = len(self.log_alpha), i
                self.log_alpha.append(tf.Variable(np.full(keep[i].shape[0], OPEN_LOG_ALPHA, np.float32),
                                                  name=f"{first.name}_input_log_alpha"))
        self.count = float(sum(k.size for k in keep))
        self.group_push = GROUP_PUSH
        self.optimizer: Any = None

    @property
    def sources(self) -> list[Any]:
        """The variables fine-tuning trains instead of the kernels: θ then log α."""
        return [*self.weights, *self.log_alpha]

    def begin(self, keras: Any) -> None:
        """Called by the fine-tuning loop: log α gets its own Adam (θ follows the loop's optimizer)."""
        self.optimizer = keras.optimizers.Adam(self.gate_rate)

    def _factors(self, i: int, values: list[Any]) -> list[Any]:
        """What multiplies kernel ``i``: its weight gates, its column gates, its row gates (broadcast)."""
        import tensorflow as tf

        rank = len(self.keep[i].shape)
        out = [self.keep[i]]
        if "weights" in self.groups:
            out.append(values[i])
        if self.columns[i] is not None:
            out.append(tf.reshape(values[self.columns[i]], [1] * (rank - 1) + [-1]))
        if self.rows[i] is not None:
            out.append(tf.reshape(values[self.rows[i]], [-1, 1]))
        return out

    def gate_values(self, training: bool) -> list[Any]:
        """z per gate variable: sampled (training) or deterministic; one draw per group per step."""
        import tensorflow as tf

        out = []
        for log_alpha in self.log_alpha:
            if training:
                u = tf.random.uniform(tf.shape(log_alpha), 1e-6, 1.0 - 1e-6)
                s = tf.sigmoid((tf.math.log(u) - tf.math.log(1.0 - u) + log_alpha) / BETA)
            else:
                s = tf.sigmoid(log_alpha)
            out.append(tf.clip_by_value(s * (ZETA - GAMMA) + GAMMA, 0.0, 1.0))
        return out

    def kernels(self, training: bool) -> list[Any]:
        """θ · z per kernel: z sampled (training) or deterministic; differentiable in θ and log α."""
        values = self.gate_values(training)
        return [theta * functools_product(self._factors(i, values)) for i, theta in enumerate(self.weights)]

    def penalty(self) -> Any:
        """``strength`` × expected fraction of non-zero kernel weights (differentiable in log α)."""
        import tensorflow as tf

        shift = BETA * math.log(-GAMMA / ZETA)
        open_ = [tf.sigmoid(a - shift) for a in self.log_alpha]
        n = len(self.weights) if "weights" in self.groups else 0  # group gates: the penalty pushes them less
        open_ = open_[:n] + [p * self.group_push + tf.stop_gradient(p) * (1 - self.group_push) for p in open_[n:]]
        total = tf.add_n([tf.reduce_sum(tf.ones_like(k) * functools_product(self._factors(i, open_)))
                          for i, k in enumerate(self.keep)])
        return self.strength * total / self.count

    def strip(self) -> dict[str, float]:
        """Write ``θ · z_test`` into the kernels (exact zeros where a gate closed) and zero the biases of removed
        units; returns zeros per layer."""
        zeros = {}
        for layer, var, value in zip(self.layers, self.targets, self.kernels(training=False)):
            kernel = np.asarray(value).astype(variable_value(var).dtype)
            var.assign(kernel)
            zeros[layer.name] = float((kernel == 0).mean())
        for bias, gate in self.unit_biases:  # the unit's column and the next layer's row are zero: no output
            closed = deterministic_gates(variable_value(self.log_alpha[gate])) == 0
            bias.assign(np.where(closed, 0, variable_value(bias)).astype(variable_value(bias).dtype))
        return zeros

    def removed(self) -> dict[str, int]:
        """Units (per layer) and inputs whose gate closed, removed whole: ``{'fc1 units': 212, 'fc1 inputs': 301}``."""
        out = {}
        for i, layer in enumerate(self.layers):
            for kind, gate in (("units", self.columns[i]), ("inputs", self.rows[i] if i == self.input_layer else None)):
                if gate is not None:
                    out[f"{layer.name} {kind}"] = int((deterministic_gates(variable_value(self.log_alpha[gate])) == 0)
                                                      .sum())
        return out

    def open_fraction(self) -> float:
        """Share of kernel weights whose test value is non-zero (what the kernels will keep)."""
        values = [deterministic_gates(variable_value(a)) for a in self.log_alpha]
        kept = sum(float((functools_product([np.asarray(f) for f in self._factors(i, values)]) > 0).sum())
                   for i in range(len(self.keep)))
        return kept / self.count


def functools_product(factors: list[Any]) -> Any:
    """The product of broadcastable factors (tensors or arrays)."""
    out = factors[0]
    for f in factors[1:]:
        out = out * f
    return out


def _dense_chain(model: Any, layers: list[Any]) -> list[tuple[Any, Any]]:
    """Pairs (Dense, the next Dense) of a Sequential model whose units feed the next layer's rows one to one."""
    if type(model).__name__ != "Sequential":
        return []
    pairs = []
    for layer, following in zip(layers, layers[1:]):
        if type(layer).__name__ == type(following).__name__ == "Dense" \
                and variable_value(kernel_variable(following)).shape[0] == layer.units:
            pairs.append((layer, following))
    return pairs
