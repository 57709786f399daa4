"""Native weight clustering (k-means weight sharing, Han et al. 2016) with centroid fine-tuning.

Each kernel's weights are grouped into ``clusters`` centroids; during fine-tuning the optimizer moves the
weights freely for one step, then every weight is set back to its cluster's centroid, the centroid being
the mean of its members' new values (the shared-gradient update of Deep Compression)::

    clusterer = Clusterer(model, clusters=16, preserve_sparsity=True)
    finetune(model, data, settings, hooks=[clusterer])
    unique_values(kernel)    # 16 (zero counts as one of them when sparsity is preserved)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelpress.compressor.flavors import kernel_layers, kernel_variable, variable_value
from modelpress.errors import RecipeError

KMEANS_ITERATIONS = 30


def kmeans_1d(values: np.ndarray, k: int, iterations: int = KMEANS_ITERATIONS) -> tuple[np.ndarray, np.ndarray]:
    """Centroids (linear initialisation over [min, max], as Deep Compression recommends) and assignments.

        centroids, assign = kmeans_1d(np.array([0.0, 0.1, 1.0, 1.1]), 2)   # [0.05, 1.05], [0, 0, 1, 1]
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    distinct = np.unique(values)
    if distinct.size <= k:
        return distinct, np.searchsorted(distinct, values)
    centroids = np.linspace(values.min(), values.max(), k)
    for _ in range(iterations):
        edges = (centroids[1:] + centroids[:-1]) / 2
        assign = np.searchsorted(edges, values)
        sums = np.bincount(assign, weights=values, minlength=k)
        counts = np.bincount(assign, minlength=k)
        empty = counts == 0
        if empty.any():  # move an empty centroid onto the value farthest from its centroid
            far = np.argsort(-np.abs(values - centroids[assign]))
            for i, idx in zip(np.flatnonzero(empty), far):
                sums[i], counts[i] = values[idx], 1
        updated = sums / counts
        order = np.argsort(updated)
        updated = updated[order]
        if np.allclose(updated, centroids):
            centroids = updated
            break
        centroids = updated
    edges = (centroids[1:] + centroids[:-1]) / 2
    return centroids, np.searchsorted(edges, values)


class _LayerClusters:
    def __init__(self, weights: np.ndarray, clusters: int, preserve_sparsity: bool):
        self.shape = weights.shape
        flat = weights.ravel()
        self.zero = (flat == 0) if preserve_sparsity else np.zeros(flat.size, dtype=bool)
        k = clusters - 1 if preserve_sparsity and self.zero.any() else clusters
        centroids, assign = kmeans_1d(flat[~self.zero], k)
        self.k = len(centroids)
        self.assign = assign
        self.centroids = centroids

    def project(self, current: np.ndarray, update_centroids: bool) -> np.ndarray:
        flat = current.ravel().astype(np.float64)
        members = flat[~self.zero]
        if update_centroids and members.size:
            sums = np.bincount(self.assign, weights=members, minlength=self.k)
            counts = np.bincount(self.assign, minlength=self.k)
            self.centroids = np.where(counts > 0, sums / np.maximum(counts, 1), self.centroids)
        out = np.zeros(flat.size)
        out[~self.zero] = self.centroids[self.assign]
        return out.reshape(self.shape)


class Clusterer:
    """Fine-tuning hook that keeps every kernel (or ``layers``) on ``clusters`` shared values."""

    def __init__(self, model: Any, clusters: int = 16, preserve_sparsity: bool = False,
                 layers: list[str] | None = None):
        if not isinstance(clusters, int) or clusters < 2:
            raise RecipeError(f"clusters {clusters!r} must be a whole number of at least 2, such as 16")
        self.clusters = clusters
        self.preserve_sparsity = preserve_sparsity
        chosen = kernel_layers(model)
        if layers:
            chosen = [layer for layer in chosen if layer.name in layers]
        self.layers = chosen
        self.state: dict[str, _LayerClusters] = {}

    def _apply(self, update_centroids: bool) -> None:
        for layer in self.layers:
            var = kernel_variable(layer)
            state = self.state[layer.name]
            var.assign(state.project(variable_value(var), update_centroids).astype(var.dtype.name
                                                                                  if hasattr(var.dtype, "name")
                                                                                  else np.float32))

    def begin(self, total_steps: int) -> None:
        for layer in self.layers:
            w = variable_value(kernel_variable(layer))
            self.state[layer.name] = _LayerClusters(w, self.clusters, self.preserve_sparsity)
        self._apply(update_centroids=False)

    def before_step(self, step: int) -> None:
        pass

    def after_step(self, step: int) -> None:
        self._apply(update_centroids=True)

    def end(self) -> None:
        self._apply(update_centroids=False)

    def strip(self) -> None:
        """Weights are shared in place; there are no wrappers to remove."""
        self.end()
