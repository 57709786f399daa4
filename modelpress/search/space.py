"""The search space: one candidate's settings, and the compressor recipe they make.

    s = Settings("prune", steps=({"type": "prune", "sparsity": 0.9},), epochs=3, quantization="int8")
    s.recipe(batch_size=64)          # a modelpress.compressor Recipe: prune 90%, 3 epochs of fine-tuning
    s.compression_key()              # what the fine-tuned model depends on (not the profile, not the quantization)

A candidate is a compression (recipe steps and fine-tuning length; none for plain quantization) plus a
conversion (quantization, and for int8 the layers kept in float: per-layer fallback).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from modelpress.compressor.finetune import FineTune
from modelpress.compressor.recipe import Recipe, Step

# families in the order a size search tries them: cheap (no training) first
FAMILIES = ("quantize", "fallback", "qat", "prune", "prune-layerwise", "l0", "cluster", "prune-mn", "slim")
# post-training quantizations by expected size, smallest first
QUANT_ORDER = ("int8", "dynamic", "int16x8", "float16", "none")
INTEGER_ONLY = ("edgetpu", "mcu")  # hardware that runs only full-integer int8 graphs
L0_EPOCH_FACTOR = 3  # L0 gate training runs at least this many times a pruning candidate's fine-tuning
# ... and at least this many training samples: on LeNet-300-100 (18k images) gates need ~30 epochs to close
# (λ=60: 98.5% exact zeros after 30 epochs; λ=15.4: 92.7% after 18)
L0_SAMPLES = 540_000
L0_MAX_FACTOR = 10  # ... and at most this many times (a small data set would otherwise train for hundreds)
#: soft targets of the source model mixed into a distilled candidate's fine-tuning (FineTune's defaults)
DISTILL = {"alpha": 0.5, "temperature": 4.0}


def quantizations_for(hardware: str, litert: bool = False) -> tuple[str, ...]:
    """The post-training quantizations a device can run, smallest first; with LiteRT's quantizer (CPU and
    GPU profiles with float I/O, ``DeviceProfile.quantizes_with``) int4 weights come first::

        quantizations_for("mcu")                 # ('int8',)
        quantizations_for("cpu", litert=True)    # ('int4', 'int8', 'dynamic', ...)
    """
    if hardware in INTEGER_ONLY:
        return ("int8",)
    return ("int4", *QUANT_ORDER) if litert else QUANT_ORDER


@dataclass(frozen=True)
class Settings:
    """One candidate: ``family`` names the branch of the search it belongs to (for the report)."""

    family: str
    steps: tuple[dict[str, Any], ...] = ()
    epochs: int = 0
    quantization: str = "int8"
    fallback: tuple[str, ...] = ()
    label: str = ""
    batch_size: int = field(default=32, compare=False)
    #: latency search: not scored when it times slower than this (float32's p50 + spread, ms); not in any key
    slower_than_ms: float | None = field(default=None, compare=False)
    distill: bool = False  # fine-tuning mixes in the source model's soft targets (DISTILL)

    @property
    def compressed(self) -> bool:
        return bool(self.steps)

    def describe(self) -> str:
        """A short human label: ``prune 90% + int8`` or the explicit ``label``."""
        if self.label:
            return self.label
        # a step that trains for its own length says so; the last one always names its length
        parts = [_step_text(s) + (f" ({s['epochs']} ep)" if "epochs" in s and s["type"] in ("l0", "qat") else "")
                 for s in self.steps]
        if parts and not (self.steps[-1]["type"] in ("l0", "qat") and "epochs" in self.steps[-1]):
            parts[-1] += f" ({self.epochs} ep{', distilled' if self.distill else ''})"
        int16 = sum(f.startswith("int16x8:") for f in self.fallback)
        kept = [f"{len(self.fallback) - int16} layer(s) float"] if len(self.fallback) > int16 else []
        kept += [f"{int16} layer(s) int16 activations"] if int16 else []
        quant = self.quantization + (f" ({', '.join(kept)})" if kept else "")
        return " + ".join([*parts, quant]) if parts else quant

    def compression_key(self) -> str:
        """The fine-tuned model depends on these only: shared by every quantization and every profile."""
        return json.dumps({"steps": list(self.steps), "finetune": self.finetune().get_config()},
                          sort_keys=True)

    def conversion_key(self) -> str:
        return json.dumps({"quantization": self.quantization, "fallback": list(self.fallback)}, sort_keys=True)

    def finetune(self) -> FineTune:
        """How this candidate fine-tunes: the compressor's defaults (a small decaying rate, best epoch kept), mixing
        in the source's soft targets where ``distill``."""
        return FineTune(epochs=self.epochs, batch_size=self.batch_size,
                        distill=dict(DISTILL) if self.distill else None)

    def recipe(self) -> Recipe:
        """The compressor recipe for this candidate's compression (``RecipeError`` if there is none)."""
        steps = [Step.from_config(dict(s)) for s in self.steps]
        return Recipe(name=self.describe(), steps=steps,
                      finetune=self.finetune(),
                      description=f"found by modelpress press ({self.family})")

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "label": self.describe(), "steps": list(self.steps), "epochs": self.epochs,
                "batch_size": self.batch_size, "distill": self.distill, "quantization": self.quantization,
                "fallback": list(self.fallback)}


def _step_text(step: dict[str, Any]) -> str:
    kind = step["type"]
    if kind == "prune":
        where = f" {','.join(step['layers'])}" if step.get("layers") else ""
        return f"prune{where} {step['sparsity']:.0%}"
    if kind == "prune_mn":
        return f"{step.get('pattern', '2:4')} sparsity"
    if kind == "cluster":
        return f"cluster {step['clusters']}"
    if kind == "slim":
        return f"slim {step['ratio']:.0%}"
    if kind == "qat" and step.get("bits") == 4:
        return "int4 weight grid" + (" per kernel" if step.get("granularity") == "tensor" else "")
    if kind == "l0":
        return f"L0 gates λ={step['strength']:.3g}"
    return kind


def prune_steps(sparsity: float) -> tuple[dict[str, Any], ...]:
    return ({"type": "prune", "sparsity": round(float(sparsity), 4)},)


def layerwise_steps(levels: dict[str, float], epochs: int) -> tuple[dict[str, Any], ...]:
    """One prune step per sparsity level (layers sharing it together), the largest first; later steps tune
    for half the epochs, as Deep Compression's iterative pruning does::

        layerwise_steps({"fc1": 0.97, "fc2": 0.9, "fc3": 0.75}, 3)
    """
    groups: dict[float, list[str]] = {}
    for name, level in levels.items():
        if level > 0:
            groups.setdefault(round(float(level), 4), []).append(name)
    steps = []
    for i, (level, names) in enumerate(sorted(groups.items(), reverse=True)):
        step: dict[str, Any] = {"type": "prune", "sparsity": level, "layers": sorted(names)}
        if i:
            step["epochs"] = max(1, epochs // 2)
        steps.append(step)
    return tuple(steps)


def cluster_step(clusters: int, epochs: int) -> dict[str, Any]:
    return {"type": "cluster", "clusters": int(clusters), "preserve_sparsity": True, "epochs": max(1, epochs // 2)}


QAT_STEP: dict[str, Any] = {"type": "qat"}


COMPACT_FAMILIES = ("prune", "prune-layerwise", "l0")  # their candidates end on the int4 grid where int4 runs


def runs_int4(hardware: str, litert: bool) -> bool:
    """Whether a device runs int4 weights: LiteRT's quantizer makes them for CPU and GPU profiles."""
    return litert and hardware not in INTEGER_ONLY


#: families whose int4 grid is one per kernel (tensorwise int4): an L0-gated LeNet-300-100 kept the same accuracy
#: (0.68 against 0.65 pt below its baseline on validation) in 8.8 KB of gzip where a scale per channel took 10.6
TENSOR_GRID_FAMILIES = ("l0",)


def int4_grid_step(epochs: int, family: str = "") -> dict[str, Any]:
    """Weight sharing on the int4 grid that int4 conversion stores exactly, 4 bits a weight instead of int8 codes of
    16 shared values: 15 values per output channel, or per kernel for :data:`TENSOR_GRID_FAMILIES` (stored
    tensorwise: one scale and zero point a kernel, no longer one per channel)::

        int4_grid_step(6)              # {'type': 'qat', 'bits': 4, 'epochs': 3}
        int4_grid_step(6, "l0")        # {'type': 'qat', 'bits': 4, 'epochs': 3, 'granularity': 'tensor'}
    """
    step: dict[str, Any] = {"type": "qat", "bits": 4, "epochs": max(1, epochs // 2)}
    if family in TENSOR_GRID_FAMILIES:
        step["granularity"] = "tensor"
    return step


def slim_steps(ratio: float) -> tuple[dict[str, Any], ...]:
    return ({"type": "slim", "ratio": round(float(ratio), 4), "criterion": "l2"},)


def l0_steps(strength: float, epochs: int, train_samples: int | None = None) -> tuple[dict[str, Any], ...]:
    """Hard-concrete gates under an L0 penalty of ``strength`` (λ), trained three times as long as pruning
    fine-tunes and over at least ``L0_SAMPLES`` samples of ``train_samples`` (at most ten times as long): the gates
    need the steps to close::

        l0_steps(10.0, 3)              # ({'type': 'l0', 'strength': 10.0, 'epochs': 9},)
        l0_steps(10.0, 3, 18000)       # 30 epochs
    """
    count = L0_EPOCH_FACTOR * int(epochs)
    if train_samples:
        count = min(max(count, math.ceil(L0_SAMPLES / train_samples)), L0_MAX_FACTOR * int(epochs))
    return ({"type": "l0", "strength": round(float(strength), 4), "epochs": count},)
