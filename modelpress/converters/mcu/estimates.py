"""Estimates for a microcontroller or NPU profile, before anything runs (as Edge Impulse shows them).

    est = estimate(profile, data)              # data: the .tflite bytes
    est.macs, est.flash_bytes, est.arena_bytes, est.inference_ms

- ``macs``: multiply-accumulates of the conv, depthwise, fully-connected, transpose-conv and batch-matmul
  ops, counted from the tensor shapes in the flatbuffer;
- ``flash_bytes``: the model file (a firmware keeps it in flash as it is);
- ``arena_bytes``: the largest set of activation tensors one op holds at once, a lower bound of the
  tensor arena (TFLite Micro adds its own bookkeeping; the measured figure sits beside it);
- ``inference_ms``: MACs / (the profile's ``macs_per_cycle`` x ``clock_hz``).

Pure Python (the ``tflite`` flatbuffer bindings): no TensorFlow, so ``inspect`` can show them anywhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from modelpress.device_profiles import DeviceProfile, builtin_profiles
from modelpress.tflite_graph import read_graph

LABEL = "estimate"


@dataclass
class Estimate:
    profile: str
    macs: int
    flash_bytes: int
    arena_bytes: int
    inference_ms: float | None
    clock_hz: int | None
    macs_per_cycle: float | None
    kind: str = LABEL

    def to_dict(self) -> dict:
        return asdict(self)


def _shape(tensor) -> list[int]:
    return [int(d) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []


def count_macs(data: bytes) -> int:
    """Multiply-accumulates of one inference (batch as in the model), from the flatbuffer's shapes.

        count_macs(Path("model.tflite").read_bytes())   # e.g. 339_604 for the example CNN
    """
    import tflite

    read_graph(data)  # ArtifactError for something that is not a .tflite
    model = tflite.Model.GetRootAsModel(data, 0)
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    total = 0
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for o in range(graph.OperatorsLength()):
            op = graph.Operators(o)
            code = model.OperatorCodes(op.OpcodeIndex())
            name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "")
            ins = [graph.Tensors(i) if i >= 0 else None for i in op.InputsAsNumpy()]
            outs = [graph.Tensors(i) for i in op.OutputsAsNumpy() if i >= 0]
            if not outs or len(ins) < 2 or ins[1] is None:
                continue
            out_elems = int(np.prod(np.maximum(_shape(outs[0]), 1)))
            weights = _shape(ins[1])
            if name == "CONV_2D" and len(weights) == 4:
                total += out_elems * weights[1] * weights[2] * weights[3]
            elif name == "DEPTHWISE_CONV_2D" and len(weights) == 4:
                total += out_elems * weights[1] * weights[2]
            elif name == "FULLY_CONNECTED" and len(weights) == 2:
                total += out_elems * weights[1]
            elif name == "TRANSPOSE_CONV" and len(ins) > 2 and ins[2] is not None:
                kernel = weights if len(weights) == 4 else [1, 1, 1, 1]
                total += int(np.prod(np.maximum(_shape(ins[2]), 1))) * kernel[0] * kernel[1] * kernel[2]
            elif name == "BATCH_MATMUL" and ins[0] is not None and _shape(ins[0]):
                total += out_elems * _shape(ins[0])[-1]
    return int(total)


def estimate(profile: DeviceProfile, data: bytes) -> Estimate:
    """The profile's estimates for a model, from its bytes.

        estimate(load_profile("cortex-m"), data).inference_ms
    """
    graph = read_graph(data)
    macs = count_macs(data)
    time_ms = None
    if profile.clock_hz and profile.macs_per_cycle:
        time_ms = macs / (profile.macs_per_cycle * profile.clock_hz) * 1000.0
    return Estimate(profile=profile.name, macs=macs, flash_bytes=len(data), arena_bytes=int(graph.activation_bytes),
                    inference_ms=time_ms, clock_hz=profile.clock_hz, macs_per_cycle=profile.macs_per_cycle)


def mcu_profiles() -> list[DeviceProfile]:
    """The built-in microcontroller and NPU profiles (``hardware: mcu``): ``[p.name for p in mcu_profiles()]``."""
    return [p for p in builtin_profiles() if p.hardware == "mcu"]


def estimates_for_builtin_profiles(data: bytes) -> list[dict]:
    """One estimate row per built-in microcontroller / NPU profile, with whether the model fits.

        rows = estimates_for_builtin_profiles(Path("model.tflite").read_bytes())
    """
    rows = []
    for profile in mcu_profiles():
        row = estimate(profile, data).to_dict()
        row["fits_flash"] = profile.max_artifact_bytes is None or row["flash_bytes"] <= profile.max_artifact_bytes
        row["fits_ram"] = profile.ram_budget_bytes is None or row["arena_bytes"] <= profile.ram_budget_bytes
        rows.append(row)
    return rows
