"""Open Inference gRPC tensors to numpy and back: typed ``contents`` (one repeated field per datatype) and
``raw_input_contents`` / ``raw_output_contents`` (little-endian bytes, one entry per tensor), with the same
checks and messages as the HTTP codec (:mod:`modelpress.runtime.codecs.v2`)::

    tensors = grpc_inputs(request)                            # [("image", array), ...]
    raw = answer_is_raw(request)                              # the answer mirrors the request's choice
    add_outputs(answer, {"output_0": y}, ["output_0"], raw)   # fills outputs (+ raw_output_contents)
"""

from __future__ import annotations

import math
import sys

import numpy as np

from modelpress.errors import BadRequestError
from modelpress.runtime.codecs.arrays import V2_DATATYPES, show, to_array, v2_datatype
from modelpress.runtime.codecs.v2 import MAX_RANK, MAX_VALUES

#: the typed field of ``InferTensorContents`` for each datatype, and the numpy type its values come as
CONTENTS = {
    "BOOL": ("bool_contents", np.bool_), "INT8": ("int_contents", np.int32), "INT16": ("int_contents", np.int32),
    "INT32": ("int_contents", np.int32), "INT64": ("int64_contents", np.int64),
    "UINT8": ("uint_contents", np.uint32), "UINT16": ("uint_contents", np.uint32),
    "UINT32": ("uint_contents", np.uint32), "UINT64": ("uint64_contents", np.uint64),
    "FP32": ("fp32_contents", np.float32), "FP64": ("fp64_contents", np.float64),
}
#: each datatype's numpy dtype, and the little-endian dtype its raw bytes are read as (built once, not per call)
_DTYPES = {name: np.dtype(V2_DATATYPES[name]) for name in V2_DATATYPES}
_LITTLE = {name: dtype.newbyteorder("<") for name, dtype in _DTYPES.items()}


def grpc_inputs(request) -> list[tuple[str, np.ndarray]]:
    """The inputs of a ``ModelInferRequest`` as (name, array) pairs; a clear 400-class error for each way a
    tensor can be wrong (datatype, shape, values that do not fill it, raw and typed contents mixed)."""
    if not request.inputs:
        raise BadRequestError("the request needs inputs: a list of tensors with name, datatype, shape and "
                              "contents (or raw_input_contents)")
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise BadRequestError(f"raw_input_contents holds {len(raw)} entries for {len(request.inputs)} inputs; send "
                              "one entry per input, in the order of inputs")
    tensors = []
    for index, tensor in enumerate(request.inputs):
        name, datatype, shape = tensor.name, tensor.datatype, list(tensor.shape)
        if not name:
            raise BadRequestError(f"inputs[{index}]: name must be a non-empty string")
        where = f"input {show(name)}"
        if datatype not in V2_DATATYPES:
            raise BadRequestError(f"{where}: datatype {show(datatype)} is not supported; use one of "
                                  f"{', '.join(V2_DATATYPES)}")
        if any(d < 0 for d in shape):
            raise BadRequestError(f"{where}: shape must be a list of non-negative integers, got {show(shape)}")
        if len(shape) > MAX_RANK:
            raise BadRequestError(f"{where}: shape has {len(shape)} dimensions; at most {MAX_RANK} are supported")
        if math.prod(d or 1 for d in shape) > MAX_VALUES:
            raise BadRequestError(f"{where}: shape {show(shape)} is too large: a tensor may have at most "
                                  f"{MAX_VALUES} (2**40) values, counting zero dimensions as 1")
        dtype = _DTYPES[datatype]
        count = math.prod(shape)
        # the typed fields holding values, by name (ListFields lists the non-empty ones in one call); a request
        # that never set contents has none to look for (raw requests, the usual case)
        typed = sorted(field.name for field, _ in tensor.contents.ListFields()) if tensor.HasField("contents") else []
        if raw:
            if typed:
                raise BadRequestError(f"{where} has contents.{typed[0]} while the request uses raw_input_contents; "
                                      "send every input one way: all raw, or all typed")
            array = _raw(raw[index], dtype, _LITTLE[datatype], shape, count, where, "raw_input_contents")
        else:
            array = _typed(tensor.contents, typed, datatype, dtype, count, where)
        if array.size != count:
            raise BadRequestError(f"{where}: {array.size} values do not fill shape {show(shape)} ({count} values)")
        tensors.append((name, array.reshape(shape)))
    return tensors


def _raw(data: bytes, dtype: np.dtype, little: np.dtype, shape: list[int], count: int, where: str,
         field: str) -> np.ndarray:
    if len(data) != count * dtype.itemsize:
        raise BadRequestError(f"{where}: {len(data)} bytes of {field} do not fill shape {show(shape)} of "
                              f"{v2_datatype(dtype)} ({count * dtype.itemsize} bytes)")
    return np.frombuffer(data, dtype=little, count=count).astype(dtype, copy=False)


def _typed(contents, typed: list[str], datatype: str, dtype: np.dtype, count: int, where: str) -> np.ndarray:
    if datatype not in CONTENTS:
        raise BadRequestError(f"{where}: {datatype} has no typed contents field; send it in raw_input_contents")
    field, container = CONTENTS[datatype]
    wrong = [f for f in typed if f != field]
    if wrong:
        raise BadRequestError(f"{where}: a {datatype} tensor takes its values in contents.{field}, "
                              f"got contents.{wrong[0]}")
    values = getattr(contents, field)
    if not len(values) and count:
        raise BadRequestError(f"{where} has no values: put them in contents.{field} or raw_input_contents")
    array = _packed(contents, field, container)
    if array is None:
        array = np.fromiter(values, dtype=container, count=len(values))
    return to_array(array, dtype, where)


#: the fixed-size typed fields, whose packed encoding is the values' little-endian bytes
_PACKED = {"fp32_contents": (6, "<f4"), "fp64_contents": (7, "<f8")}


def _packed(contents, field: str, container) -> np.ndarray | None:
    """The values of an FP32 / FP64 typed field read as one buffer (protobuf writes them packed: a tag, a
    length, the little-endian values), about 25 times faster than converting them one by one; None for
    other fields."""
    if field not in _PACKED:
        return None
    number, layout = _PACKED[field]
    blob = contents.SerializeToString()  # holds just this field: the caller checked no other is set
    if not blob or blob[0] != (number << 3 | 2):
        return None
    length, position, shift = 0, 1, 0
    while position < len(blob):
        byte = blob[position]
        position += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    if position + length != len(blob):
        return None
    return np.frombuffer(blob, dtype=layout, count=length // np.dtype(layout).itemsize, offset=position).astype(
        container, copy=False)


def _write_packed(tensor_contents, field: str, array: np.ndarray) -> bool:
    """Set an FP32 / FP64 typed field from an array's bytes in one step (the inverse of :func:`_packed`)."""
    if field not in _PACKED:
        return False
    number, layout = _PACKED[field]
    data = array.astype(layout, copy=False).tobytes()
    length, prefix = len(data), bytearray([number << 3 | 2])
    while True:
        prefix.append((length & 0x7F) | (0x80 if length > 0x7F else 0))
        length >>= 7
        if not length:
            break
    tensor_contents.MergeFromString(bytes(prefix) + data)
    return True


def answer_is_raw(request) -> bool:
    """Whether the answer carries its outputs as ``raw_output_contents``: as the request sent its inputs,
    unless the request's ``binary_data_output`` parameter says otherwise (true: raw, false: typed)."""
    choice = request.parameters.get("binary_data_output")
    if choice is not None:
        if choice.WhichOneof("parameter_choice") != "bool_param":
            raise BadRequestError("the binary_data_output parameter must be a bool (true: raw_output_contents, "
                                  "false: typed contents)")
        return choice.bool_param
    return bool(request.raw_input_contents)


def requested_outputs(request, names: list[str]) -> list[str]:
    """The outputs a request asks for (all of the model's when it names none), each checked."""
    if not request.outputs:
        return names
    picked = []
    for item in request.outputs:
        if item.name not in names:
            raise BadRequestError(f"output {show(item.name)} is unknown; the model's outputs are {', '.join(names)}")
        if item.name not in picked:
            picked.append(item.name)
    return picked


def add_outputs(answer, outputs: dict[str, np.ndarray], names: list[str], raw: bool) -> None:
    """Fill a ``ModelInferResponse`` with ``names`` of ``outputs``, as raw bytes or typed contents (raw for
    all when an output's datatype has no typed field, FP16)."""
    arrays = [np.ascontiguousarray(outputs[name]) for name in names]
    datatypes = [_datatype(a.dtype) for a in arrays]
    raw = raw or any(datatype not in CONTENTS for datatype in datatypes)
    for name, array, datatype in zip(names, arrays, datatypes):
        tensor = answer.outputs.add(name=name, datatype=datatype, shape=array.shape)
        if raw:
            answer.raw_output_contents.append(_little_endian(array).tobytes())
        else:
            field, container = CONTENTS[datatype]
            if array.size and not _write_packed(tensor.contents, field, array.reshape(-1)):
                getattr(tensor.contents, field).extend(array.reshape(-1).astype(container, copy=False).tolist())


#: the datatype of the dtypes outputs come in (numpy's own name lookup costs microseconds a call)
_DATATYPE_OF = {dtype: name for name, dtype in _DTYPES.items()}
_NATIVE_IS_LITTLE = sys.byteorder == "little"


def _datatype(dtype: np.dtype) -> str:
    found = _DATATYPE_OF.get(dtype)
    return found if found is not None else v2_datatype(dtype)


def _little_endian(array: np.ndarray) -> np.ndarray:
    order = array.dtype.byteorder
    if order == "<" or order == "|" or (order == "=" and _NATIVE_IS_LITTLE):
        return array
    return array.astype(array.dtype.newbyteorder("<"))
