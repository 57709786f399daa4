"""Per-layer pruning sensitivity: how much accuracy each layer loses when pruned alone, without fine-tuning.

Deep Compression chose each layer's pruning level from such curves (Han et al. 2015, fig. 5); press walks a
size-aware path of per-layer levels through them and bisects along it. One-shot drops are far larger than
what fine-tuning leaves: they only rank how hard each layer can be pruned relative to the others::

    curves = layer_sensitivity(model, x_rank, y_rank)      # {"fc1": {0.5: 0.0, ..., 0.99: 12.3}, ...}
    greedy_path(curves, kernel_sizes(model))               # per-layer levels, ever sparser, size-aware
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelpress.compressor.flavors import kernel_layers, kernel_variable, variable_value
from modelpress.compressor.report import accuracy

LEVELS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.96, 0.97, 0.98, 0.985, 0.99)


def _score(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    outputs = np.concatenate([np.asarray(model(x[i:i + 512], training=False)) for i in range(0, len(x), 512)])
    return accuracy(y, outputs)


def layer_sensitivity(model: Any, x: np.ndarray, y: np.ndarray,
                      levels: tuple[float, ...] = LEVELS) -> dict[str, dict[float, float]]:
    """For every prunable layer, the accuracy drop (points) at each one-shot magnitude-pruning level.

    The model's weights are restored afterwards::

        layer_sensitivity(model, x_val[:500], y_val[:500])["fc1"][0.9]    # e.g. 0.4
    """
    base = _score(model, x, y)
    curves: dict[str, dict[float, float]] = {}
    for layer in kernel_layers(model):
        variable = kernel_variable(layer)
        original = variable_value(variable).copy()
        magnitudes = np.abs(original).ravel()
        curve = {}
        try:
            for level in levels:
                threshold = np.quantile(magnitudes, level)
                variable.assign(np.where(np.abs(original) > threshold, original, 0).astype(original.dtype))
                curve[level] = round((base - _score(model, x, y)) * 100, 3)
        finally:
            variable.assign(original)
        curves[layer.name] = curve
    return curves


def overall_sparsity(levels: dict[str, float], sizes: dict[str, int]) -> float:
    """The fraction of all kernel weights the per-layer levels remove::

        overall_sparsity({"fc1": 0.9, "fc2": 0.5}, {"fc1": 900, "fc2": 100})    # 0.86
    """
    total = sum(sizes.values())
    return sum(levels.get(name, 0.0) * n for name, n in sizes.items()) / max(total, 1)


def kernel_sizes(model: Any) -> dict[str, int]:
    """Kernel weights per prunable layer::

        kernel_sizes(model)       # {'fc1': 235200, 'fc2': 30000, 'fc3': 1000}
    """
    return {layer.name: int(variable_value(kernel_variable(layer)).size) for layer in kernel_layers(model)}


def greedy_path(curves: dict[str, dict[float, float]], sizes: dict[str, int],
                epsilon: float = 0.1) -> list[dict[str, float]]:
    """Per-layer levels from dense to the sparsest, one layer one level further at a time: each step takes
    the layer that removes the most weights per point of (one-shot, running-maximum) drop. Large, redundant
    layers go far first; small, sensitive ones (the classifier) last, as Deep Compression's tables do::

        path = greedy_path({"fc1": {0.5: 0.1, 0.9: 2.0}, "fc3": {0.5: 5.0}}, {"fc1": 900, "fc3": 10})
        path[0]      # {'fc1': 0.5, 'fc3': 0.0}
    """
    ladders = {}
    for name, curve in curves.items():
        worst, ladder = 0.0, []
        for level in sorted(curve):
            worst = max(worst, curve[level])
            ladder.append((level, worst))
        ladders[name] = ladder
    position = {name: -1 for name in curves}
    levels = {name: 0.0 for name in curves}
    path = []
    while True:
        best, best_ratio = None, -1.0
        for name, ladder in ladders.items():
            i = position[name] + 1
            if i >= len(ladder):
                continue
            previous_level, previous_drop = ladder[i - 1] if i else (0.0, 0.0)
            gain = (ladder[i][0] - previous_level) * sizes.get(name, 0)
            ratio = gain / (ladder[i][1] - previous_drop + epsilon)
            if ratio > best_ratio:
                best, best_ratio = name, ratio
        if best is None:
            return path
        position[best] += 1
        levels[best] = ladders[best][position[best]][0]
        path.append(dict(levels))
