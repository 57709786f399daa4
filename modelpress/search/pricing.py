"""What one fine-tuning epoch will cost, timed on a few real training steps before any trial has trained.

    per_epoch, per_trial = epoch_seconds(model, "keras3", tuning, batch_size=64, scoring_seconds=0.8)

A time-budgeted search refuses a trial that would likely end past its budget, so before a fine-tuning has been
timed in the search the epoch needs a price. Inference time was a poor one: under a loaded host it priced a
ResNet's epoch about four times too high (765 s for 3 epochs that took ~170 s), and press gave up a candidate
that fitted. Here a copy of the source trains a few batches by the same loop every trial uses
(:func:`modelpress.compressor.finetune.finetune`); the first step (tracing the training function) is left out,
the median of the others scales to an epoch of ``tuning``, and the epoch's scoring on the samples the loop sets
aside is added; the first step (copying the model, tracing; 17 s for a MobileNetV2 on a loaded host) is what a
trial pays once. What a family's hooks add per step (pruning's masks) is not in the price: the first trial
timed replaces it.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from modelpress.compressor.data import Dataset

#: training steps timed (the first, which traces, is not counted)
STEPS = 8


class _StepClock:
    """A fine-tuning hook that notes when each step starts: the gaps are whole steps of the real loop."""

    settled_from = 0
    select_best = True

    def __init__(self):
        self.starts: list[float] = []

    def begin(self, total: int) -> None:
        pass

    def before_step(self, step: int) -> None:
        self.starts.append(time.perf_counter())

    def after_step(self, step: int) -> None:
        pass

    def end(self) -> None:
        self.starts.append(time.perf_counter())


def step_seconds(model: Any, flavor: str, data: Dataset, batch_size: int) -> tuple[float, float]:
    """(median seconds of one training step, seconds of the first step, which traces the training function) of
    a copy of ``model`` (``model`` itself is not touched)."""
    from modelpress.compressor.finetune import FineTune, finetune
    from modelpress.compressor.flavors import clone_model

    n = min(len(data.x_train), batch_size * STEPS)
    sample = Dataset(data.x_train[:n], data.y_train[:n], data.x_val[:0], data.y_val[:0])
    clock = _StepClock()
    started = time.perf_counter()
    finetune(clone_model(model, flavor), sample, FineTune(epochs=1, batch_size=batch_size,
                                                          restore_best=False).for_model(model),
             flavor, hooks=[clock])
    gaps = np.diff(clock.starts)
    if len(gaps) < 2:
        return float(gaps.sum()), time.perf_counter() - started
    return float(np.median(gaps[1:])), float(clock.starts[1] - started)


def epoch_seconds(model: Any, flavor: str, tuning: Dataset, batch_size: int,
                  scoring_seconds: float) -> tuple[float, float]:
    """(seconds one fine-tuning epoch over ``tuning.x_train`` likely takes, ``scoring_seconds`` for the epoch's
    scoring on ``tuning.x_val`` included; seconds a trial spends once, before its first step: copying the model
    and tracing its training function)."""
    step, first = step_seconds(model, flavor, tuning, batch_size)
    return step * math.ceil(len(tuning.x_train) / batch_size) + scoring_seconds, first
