"""Native magnitude pruning for Keras 3 models (and any Keras model): unstructured and m:n.

Masks live beside the model rather than in wrapper layers, so there is nothing to strip: after each
fine-tuning step the masks are applied to the kernels, and when the schedule says so they are
recomputed from the weights' magnitudes::

    pruner = MagnitudePruner(model, ConstantSparsity(0.8))
    finetune(model, data, settings, hooks=[pruner])     # kernels stay 80% zero throughout
    pruner.strip()                                       # the same model, plain (a no-op kept for symmetry)

``MNPruner(model, m=2, n=4)`` keeps the ``m`` largest of every ``n`` consecutive weights along each
kernel's input-channel axis (NVIDIA's 2:4 sparsity); layers whose input axis is not a multiple of
``n`` are left dense and listed in ``skipped``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelpress.compressor.flavors import kernel_layers, kernel_variable, variable_value
from modelpress.errors import RecipeError


def magnitude_mask(weights: np.ndarray, sparsity: float) -> np.ndarray:
    """A 0/1 mask zeroing exactly ``round(sparsity * size)`` of the smallest-magnitude weights.

        magnitude_mask(np.array([0.1, -3.0, 0.5, 2.0]), 0.5)   # [0, 1, 0, 1]
    """
    flat = np.abs(weights).ravel()
    k = int(round(sparsity * flat.size))
    mask = np.ones(flat.size, dtype=weights.dtype)
    if k > 0:
        mask[np.argsort(flat, kind="stable")[:k]] = 0
    return mask.reshape(weights.shape)


def input_axis(weights: np.ndarray, class_name: str) -> int:
    """The kernel axis that runs over input channels (rows of a Dense kernel, axis -2 of a conv)."""
    return -2 if weights.ndim >= 2 else 0


def mn_mask(weights: np.ndarray, m: int, n: int, class_name: str = "Dense") -> np.ndarray:
    """A 0/1 mask keeping the ``m`` largest of every ``n`` consecutive weights along the input axis.

        mn_mask(np.arange(8.0).reshape(4, 2), 2, 4).sum(axis=0)   # [2, 2]
    """
    axis = input_axis(weights, class_name)
    moved = np.moveaxis(np.abs(weights), axis, -1)
    if moved.shape[-1] % n:
        raise RecipeError(f"input axis of size {moved.shape[-1]} is not a multiple of {n}")
    groups = moved.reshape(-1, n)
    order = np.argsort(-groups, axis=1, kind="stable")
    mask = np.zeros_like(groups)
    np.put_along_axis(mask, order[:, :m], 1.0, axis=1)
    return np.moveaxis(mask.reshape(moved.shape), -1, axis).astype(weights.dtype)


class _MaskHook:
    """Fine-tuning hook: keeps masked kernels at zero after every optimizer step."""

    def __init__(self, model: Any, layers: list[str] | None = None):
        chosen = kernel_layers(model)
        if layers:
            names = {layer.name for layer in chosen}
            unknown = sorted(set(layers) - names)
            if unknown:
                raise RecipeError(f"layers {unknown} have no kernel to prune; choose from {sorted(names)}")
            chosen = [layer for layer in chosen if layer.name in layers]
        self.layers = chosen
        self.masks: dict[str, np.ndarray] = {}
        self.skipped: list[str] = []

    def apply_masks(self) -> None:
        for layer in self.layers:
            mask = self.masks.get(layer.name)
            if mask is not None:
                var = kernel_variable(layer)
                var.assign(variable_value(var) * mask)

    def begin(self, total_steps: int) -> None:
        self.update_masks(0)
        self.apply_masks()

    def before_step(self, step: int) -> None:
        pass

    def after_step(self, step: int) -> None:
        self.update_masks(step + 1)
        self.apply_masks()

    def end(self) -> None:
        self.apply_masks()

    def update_masks(self, step: int) -> None:
        raise NotImplementedError

    def strip(self) -> Any:
        """Masks are applied in place; the model has no wrappers to remove."""
        self.apply_masks()


class MagnitudePruner(_MaskHook):
    """Unstructured magnitude pruning of every kernel (or ``layers``) following ``schedule``."""

    def __init__(self, model: Any, schedule: Any, layers: list[str] | None = None):
        super().__init__(model, layers)
        self.schedule = schedule
        self.final = False

    @property
    def settled_from(self) -> int:
        """The first step at which every mask is at the final sparsity (fine-tuning keeps weights from then on)."""
        return int(self.schedule.end_step)

    def update_masks(self, step: int) -> None:
        target = self.schedule.sparsity_at(step)
        if target is None:
            return
        for layer in self.layers:
            self.masks[layer.name] = magnitude_mask(variable_value(kernel_variable(layer)), target)

    def end(self) -> None:
        # whatever the step count, the model leaves at the final sparsity exactly
        for layer in self.layers:
            self.masks[layer.name] = magnitude_mask(variable_value(kernel_variable(layer)),
                                                    self.schedule.final_sparsity)
        self.apply_masks()


class MNPruner(_MaskHook):
    """m:n structured sparsity: ``m`` non-zero weights in every block of ``n`` along the input axis."""

    def __init__(self, model: Any, m: int = 2, n: int = 4, layers: list[str] | None = None):
        if not (isinstance(m, int) and isinstance(n, int) and 0 < m < n):
            raise RecipeError(f"m:n sparsity {m}:{n} needs whole numbers with 0 < m < n, such as 2:4")
        super().__init__(model, layers)
        self.m, self.n = m, n
        kept = []
        for layer in self.layers:
            w = variable_value(kernel_variable(layer))
            if np.moveaxis(w, input_axis(w, ""), -1).shape[-1] % n:
                self.skipped.append(layer.name)
            else:
                kept.append(layer)
        self.layers = kept

    def update_masks(self, step: int) -> None:
        if step == 0:
            for layer in self.layers:
                w = variable_value(kernel_variable(layer))
                self.masks[layer.name] = mn_mask(w, self.m, self.n, type(layer).__name__)

    def end(self) -> None:
        for layer in self.layers:
            w = variable_value(kernel_variable(layer))
            self.masks[layer.name] = mn_mask(w, self.m, self.n, type(layer).__name__)
        self.apply_masks()


class KeepZeros(_MaskHook):
    """Keeps the zeros a model already has (after pruning) while a later step fine-tunes it."""

    def __init__(self, model: Any):
        super().__init__(model)
        for layer in self.layers:
            w = variable_value(kernel_variable(layer))
            if (w == 0).mean() > 0.05:
                self.masks[layer.name] = (w != 0).astype(w.dtype)

    def update_masks(self, step: int) -> None:
        pass
