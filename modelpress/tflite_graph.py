"""Read a .tflite flatbuffer without running it: op names, tensors and an activation-memory estimate.

Reads the file itself (through the ``tflite`` flatbuffer bindings), so the answer does not depend on
which delegate an interpreter would apply::

    graph = read_graph(Path("model.tflite").read_bytes())
    graph.ops              # ['CONV_2D', 'FULLY_CONNECTED', 'SOFTMAX', ...] in graph order
    graph.op_counts        # {'CONV_2D': 2, ...}
    graph.activation_bytes # a lower bound of the tensor arena a microcontroller needs
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from modelpress.errors import ArtifactError

_TYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 7: "int16", 9: "int8", 17: "int4"}
_TYPE_BYTES = {  # tflite.TensorType values -> bytes per element
    0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 5: 0, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 13: 0, 14: 4, 15: 0,
    16: 2, 17: 0.5, 18: 2,
}


@dataclass
class TFLiteGraph:
    ops: list[str]
    custom_ops: list[str] = field(default_factory=list)
    activation_bytes: int = 0
    weight_bytes: int = 0
    tensor_count: int = 0
    weight_types: set[str] = field(default_factory=set)
    activation_types: set[str] = field(default_factory=set)

    @property
    def quantization(self) -> str:
        """The quantization mode the tensor types imply: int8, int16x8, int4, dynamic, float16 or none."""
        if "int16" in self.activation_types:
            return "int16x8"
        if self.activation_types & {"int8", "uint8"}:
            return "int8"
        if "int4" in self.weight_types:
            return "int4"
        if "int8" in self.weight_types:
            return "dynamic"
        if "float16" in self.weight_types:
            return "float16"
        return "none"

    @property
    def op_counts(self) -> dict[str, int]:
        return dict(Counter(self.ops))

    def ops_outside(self, allowed: list[str]) -> list[str]:
        """The distinct op names not in ``allowed``, in first-seen order."""
        allowed_set = set(allowed)
        return list(dict.fromkeys(op for op in self.ops if op not in allowed_set))


def _op_name(code, names) -> str:
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == 32:  # CUSTOM
        custom = code.CustomCode()
        return custom.decode() if custom else "CUSTOM"
    return names.get(builtin, f"BUILTIN_{builtin}")


def read_graph(content: bytes) -> TFLiteGraph:
    """Parse a TFLite flatbuffer; raise ArtifactError if it is not one."""
    import tflite

    if len(content) < 8 or content[4:8] != b"TFL3":
        raise ArtifactError("not a TFLite flatbuffer (the file identifier 'TFL3' is missing)")
    try:
        model = tflite.Model.GetRootAsModel(content, 0)
        names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
        ops: list[str] = []
        custom: list[str] = []
        activation = 0
        weights = 0
        tensors = 0
        weight_types: set[str] = set()
        activation_types: set[str] = set()
        for s in range(model.SubgraphsLength()):
            graph = model.Subgraphs(s)
            tensors += graph.TensorsLength()
            sizes = []
            constant = []
            for t in range(graph.TensorsLength()):
                tensor = graph.Tensors(t)
                shape = tensor.ShapeAsNumpy() if tensor.ShapeLength() else np.array([1])
                n = int(np.ceil(int(np.prod(np.maximum(shape, 1))) * _TYPE_BYTES.get(tensor.Type(), 4)))
                buffer = model.Buffers(tensor.Buffer()) if tensor.Buffer() < model.BuffersLength() else None
                is_const = buffer is not None and (buffer.DataLength() > 0 or buffer.Size() > 0)
                sizes.append(n)
                constant.append(is_const)
                kind = _TYPE_NAMES.get(tensor.Type(), "other")
                if is_const:
                    weights += n
                    weight_types.add(kind)
                else:
                    activation_types.add(kind)
            for o in range(graph.OperatorsLength()):
                op = graph.Operators(o)
                name = _op_name(codes[op.OpcodeIndex()], names)
                ops.append(name)
                if max(codes[op.OpcodeIndex()].BuiltinCode(), codes[op.OpcodeIndex()].DeprecatedBuiltinCode()) == 32:
                    custom.append(name)
                live = [i for i in list(op.InputsAsNumpy()) + list(op.OutputsAsNumpy()) if i >= 0]
                activation = max(activation, sum(sizes[i] for i in live if not constant[i]))
    except ArtifactError:
        raise
    except Exception as err:  # a truncated or corrupt flatbuffer raises from deep inside the bindings
        raise ArtifactError(f"corrupt TFLite flatbuffer ({type(err).__name__}: {err})") from None
    return TFLiteGraph(ops=ops, custom_ops=custom, activation_bytes=activation, weight_bytes=weights,
                       tensor_count=tensors, weight_types=weight_types, activation_types=activation_types)
