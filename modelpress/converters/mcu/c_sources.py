"""C sources a firmware build takes as they are: the model as a C array, and an op resolver that
registers exactly the model's ops.

    files = write_c_sources(folder, model_bytes, name="digits_cnn", ops=graph.ops, arena_bytes=7_008,
                            arena_comment="measured minimum 6,272 B on TFLite Micro + 10% headroom")
    # -> model_data.h, model_data.cc, model_ops.h

``model_data.cc`` holds a 16-byte-aligned ``const unsigned char`` array (TFLite Micro reads the
flatbuffer in place, so it stays in flash), ``model_data.h`` declares it with its length and the tensor
arena size, and ``model_ops.h`` fills a ``tflite::MicroMutableOpResolver<N>`` with N = the number of
distinct ops. The method names are TFLite Micro's own (tensorflow/lite/micro/micro_mutable_op_resolver.h,
tflite-micro commit 90b983c, 2026-08-20).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from modelpress.errors import ConstraintError

#: builtin op name -> the MicroMutableOpResolver method that registers it
RESOLVER_METHODS: dict[str, str] = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax", "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable", "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul", "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs", "BROADCAST_TO": "AddBroadcastTo", "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast", "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D",
    "COS": "AddCos", "CUMSUM": "AddCumSum", "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice", "EMBEDDING_LOOKUP": "AddEmbeddingLookup",
    "ELU": "AddElu", "EQUAL": "AddEqual", "EXP": "AddExp", "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill",
    "FLOOR": "AddFloor", "FLOOR_DIV": "AddFloorDiv", "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather", "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual", "HARD_SWISH": "AddHardSwish", "IF": "AddIf",
    "L2_NORMALIZATION": "AddL2Normalization", "L2_POOL_2D": "AddL2Pool2D", "LEAKY_RELU": "AddLeakyRelu",
    "LESS": "AddLess", "LESS_EQUAL": "AddLessEqual", "LOG": "AddLog", "LOGICAL_AND": "AddLogicalAnd",
    "LOGICAL_NOT": "AddLogicalNot", "LOGICAL_OR": "AddLogicalOr", "LOGISTIC": "AddLogistic",
    "LOG_SOFTMAX": "AddLogSoftmax", "MAXIMUM": "AddMaximum", "MAX_POOL_2D": "AddMaxPool2D",
    "MIRROR_PAD": "AddMirrorPad", "MEAN": "AddMean", "MINIMUM": "AddMinimum", "MUL": "AddMul", "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual", "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2", "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize", "READ_VARIABLE": "AddReadVariable", "REDUCE_ALL": "AddReduceAll",
    "REDUCE_MAX": "AddReduceMax", "REDUCE_MIN": "AddReduceMin", "RELU": "AddRelu", "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape", "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor", "REVERSE_V2": "AddReverseV2", "ROUND": "AddRound",
    "RSQRT": "AddRsqrt", "SELECT_V2": "AddSelectV2", "SHAPE": "AddShape", "SIN": "AddSin", "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax", "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SQUEEZE": "AddSqueeze", "SQRT": "AddSqrt", "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference", "STRIDED_SLICE": "AddStridedSlice", "SUB": "AddSub",
    "SUM": "AddSum", "SVDF": "AddSvdf", "TANH": "AddTanh", "TRANSPOSE_CONV": "AddTransposeConv",
    "TRANSPOSE": "AddTranspose", "UNPACK": "AddUnpack",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM", "VAR_HANDLE": "AddVarHandle",
    "WHILE": "AddWhile", "ZEROS_LIKE": "AddZerosLike",
    # custom operators TFLite Micro registers by name
    "ethos-u": "AddEthosU", "TFLite_Detection_PostProcess": "AddDetectionPostprocess",
}

DATA_HEADER = "model_data.h"
DATA_SOURCE = "model_data.cc"
OPS_HEADER = "model_ops.h"
BYTES_PER_LINE = 12


@dataclass
class CSources:
    """The names a firmware build uses, as written into the three files."""

    prefix: str
    files: list[str]
    array: str
    length: str
    arena_define: str
    register_function: str
    op_count: int
    methods: list[str]

    def to_dict(self) -> dict:
        return {"files": self.files, "array": self.array, "length": self.length, "arena_define": self.arena_define,
                "register_function": self.register_function, "op_count": self.op_count,
                "resolver_methods": self.methods}


def c_identifier(name: str) -> str:
    """A C identifier from a model name: ``c_identifier("Digits CNN-2") == "digits_cnn_2"``."""
    ident = re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower() or "model"
    return f"m_{ident}" if ident[0].isdigit() else ident


def resolver_methods(ops: list[str]) -> list[str]:
    """The resolver calls for the distinct ``ops``, in first-seen order; ConstraintError naming any op
    TFLite Micro has no kernel for::

        resolver_methods(["CONV_2D", "CONV_2D", "SOFTMAX"]) == ["AddConv2D", "AddSoftmax"]
    """
    distinct = list(dict.fromkeys(ops))
    missing = [op for op in distinct if op not in RESOLVER_METHODS]
    if missing:
        raise ConstraintError(f"TFLite Micro has no kernel for op(s) {', '.join(missing)}; a microcontroller "
                              "cannot run this model. Replace the layers that produce them (e.g. GELU -> ReLU, "
                              "or a supported activation) and convert again")
    return [RESOLVER_METHODS[op] for op in distinct]


def _array_lines(data: bytes) -> str:
    rows = []
    for start in range(0, len(data), BYTES_PER_LINE):
        chunk = data[start:start + BYTES_PER_LINE]
        rows.append("    " + ", ".join(f"0x{b:02x}" for b in chunk) + ",")
    return "\n".join(rows)


def write_c_sources(folder: Path, model: bytes, name: str, ops: list[str], arena_bytes: int,
                    arena_comment: str) -> CSources:
    """Write model_data.h / model_data.cc / model_ops.h into ``folder`` and return the names used.

        src = write_c_sources(Path("pkg"), data, "digits_cnn", graph.ops, 7008, "measured ... + 10%")
        src.array, src.arena_define   # 'digits_cnn_model_data', 'DIGITS_CNN_TENSOR_ARENA_SIZE'
    """
    prefix = c_identifier(name)
    upper = prefix.upper()
    methods = resolver_methods(ops)
    guard = f"{upper}_MODEL_DATA_H_"
    array, length = f"{prefix}_model_data", f"{prefix}_model_data_len"
    arena_define = f"{upper}_TENSOR_ARENA_SIZE"
    header = f"""/* {name}: the model for TFLite Micro, generated by modelpress. */
#ifndef {guard}
#define {guard}

/* Tensor arena for this model, in bytes: {arena_comment}. */
#define {arena_define} {int(arena_bytes)}
#define {upper}_MODEL_DATA_LEN {len(model)}

#ifdef __cplusplus
extern "C" {{
#endif

/* The .tflite flatbuffer, 16-byte aligned; TFLite Micro reads it in place (tflite::GetModel). */
extern const unsigned char {array}[];
extern const unsigned int {length};

#ifdef __cplusplus
}}
#endif

#endif /* {guard} */
"""
    source = f"""// {name}: the model as a C array, generated by modelpress ({len(model)} bytes).
#include "{DATA_HEADER}"

alignas(16) const unsigned char {array}[] = {{
{_array_lines(model)}
}};

const unsigned int {length} = {len(model)};
"""
    ops_guard = f"{upper}_MODEL_OPS_H_"
    calls = "\n".join(f"  if (resolver.{m}() != kTfLiteOk) return kTfLiteError;" for m in methods)
    register = f"{prefix}_register_ops"
    ops_header = f"""// {name}: the {len(methods)} distinct ops the model uses, generated by modelpress.
#ifndef {ops_guard}
#define {ops_guard}

#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"

constexpr unsigned int k{_camel(prefix)}OpCount = {len(methods)};
using {_camel(prefix)}OpResolver = tflite::MicroMutableOpResolver<k{_camel(prefix)}OpCount>;

// Registers exactly the model's ops; kTfLiteOk, or kTfLiteError at the first that fails.
inline TfLiteStatus {register}({_camel(prefix)}OpResolver& resolver) {{
{calls}
  return kTfLiteOk;
}}

#endif  // {ops_guard}
"""
    (folder / DATA_HEADER).write_text(header, encoding="utf-8")
    (folder / DATA_SOURCE).write_text(source, encoding="utf-8")
    (folder / OPS_HEADER).write_text(ops_header, encoding="utf-8")
    return CSources(prefix=prefix, files=[DATA_SOURCE, DATA_HEADER, OPS_HEADER], array=array, length=length,
                    arena_define=arena_define, register_function=register, op_count=len(methods), methods=methods)


def _camel(prefix: str) -> str:
    return "".join(part.capitalize() for part in prefix.split("_"))
