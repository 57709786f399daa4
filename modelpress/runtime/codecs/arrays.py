"""JSON values to numpy and back, with a clear 400 for anything that is not a rectangle of numbers of the
asked type; datatype names of both protocols::

    to_array([[0.5, 1.0]], np.float32, "input 'x'")       # float32 array [1, 2]
    b64_instance({"b64": "AACAPw=="}, np.float32, [1], "x") # [1.0]
    v2_datatype(np.float32), tf_datatype("int8")            # "FP32", "DT_INT8"
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from modelpress.errors import BadRequestError, excerpt

V2_DATATYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}
_NUMPY_TO_V2 = {np.dtype(v).name: k for k, v in V2_DATATYPES.items()}
_NUMPY_TO_TF = {"float32": "DT_FLOAT", "float64": "DT_DOUBLE", "float16": "DT_HALF", "int8": "DT_INT8",
                "uint8": "DT_UINT8", "int16": "DT_INT16", "uint16": "DT_UINT16", "int32": "DT_INT32",
                "uint32": "DT_UINT32", "int64": "DT_INT64", "uint64": "DT_UINT64", "bool": "DT_BOOL"}


def show(value: Any) -> str:
    """An excerpt of a client value for an error message: ``show("x" * 900)``."""
    return excerpt(repr(value))


def v2_datatype(dtype: str | np.dtype) -> str:
    """The Open Inference datatype name of a numpy dtype (``float32`` -> ``FP32``)."""
    return _NUMPY_TO_V2.get(np.dtype(dtype).name, "BYTES")


def tf_datatype(dtype: str | np.dtype) -> str:
    """The TensorFlow ``DT_*`` name of a numpy dtype, as TF Serving's metadata shows it."""
    return _NUMPY_TO_TF.get(np.dtype(dtype).name, "DT_INVALID")


def to_array(data: Any, dtype: np.dtype, what: str) -> np.ndarray:
    """Nested lists (or ``{"b64": ...}`` raw buffers) to an array of ``dtype``, with a clear 400 on failure."""
    array = numeric_vector(data) if type(data) is list else data if type(data) is np.ndarray else None
    if array is None:
        try:
            array = np.asarray(data)
        except ValueError:
            raise BadRequestError(f"{what} is a ragged list: every row must have the same shape") from None
    if array.dtype == object or array.dtype.kind in "SU":
        raise BadRequestError(f"{what} must hold numbers ({np.dtype(dtype).name}), got {_kind(data)}")
    if array.dtype.kind == "b" and np.dtype(dtype).kind != "b":
        raise BadRequestError(f"{what} must hold numbers ({np.dtype(dtype).name}), got booleans")
    if np.dtype(dtype).kind in "iu" and array.dtype.kind == "f":
        raise BadRequestError(f"{what} must hold integers ({np.dtype(dtype).name}), got fractional numbers")
    if np.dtype(dtype).kind in "iu" and array.size:
        info = np.iinfo(dtype)
        if array.min() < info.min or array.max() > info.max:
            raise BadRequestError(f"{what} holds values outside {np.dtype(dtype).name} "
                                  f"range [{info.min}, {info.max}]")
    if np.dtype(dtype).kind == "f" and array.size and _may_overflow(array.dtype, np.dtype(dtype)):
        largest = float(np.finfo(dtype).max)
        # one pass in the common case (every value in range); the exact test only when something is past it
        if float(np.max(np.abs(array))) > largest and np.any(np.abs(array[np.isfinite(array)]) > largest):
            raise BadRequestError(f"{what} holds values outside {np.dtype(dtype).name} range "
                                  f"[{-largest:.4g}, {largest:.4g}]")
    return array.astype(dtype, copy=False)


def numeric_vector(values: list) -> np.ndarray | None:
    """A flat list of plain numbers as one float64 / int64 array at C speed, or None for anything else
    (nested, strings, None, integers past 64 bits, a boolean first) so the caller's checks can word it::

        numeric_vector([1, 2.5])      # array([1. , 2.5])
        numeric_vector([[1], [2]])    # None
    """
    if not values or type(values[0]) not in _NUMBERS:
        return None
    try:
        array = np.array(values)
    except (ValueError, OverflowError):  # ragged or nested
        return None
    return array if array.ndim == 1 and array.dtype.kind in "fiu" else None


_NUMBERS = (float, int)


def _may_overflow(source: np.dtype, target: np.dtype) -> bool:
    """Whether casting ``source`` numbers to the float ``target`` can turn finite values into infinities."""
    if source.kind == "f":
        return source.itemsize > target.itemsize
    return source.kind in "iu" and target.itemsize == 2


def _kind(data: Any) -> str:
    while isinstance(data, list) and data:
        data = data[0]
    return type(data).__name__


def b64_instance(value: dict, dtype: np.dtype, shape: list[int], what: str) -> np.ndarray:
    """A TF Serving ``{"b64": ...}`` value for a numeric input: the raw little-endian buffer of one
    instance (``shape`` without the batch dimension) in the input's dtype."""
    if set(value) != {"b64"} or not isinstance(value["b64"], str):
        raise BadRequestError(f'{what}: an object value must be exactly {{"b64": "<base64 text>"}}')
    try:
        buffer = base64.b64decode(value["b64"], validate=True)
    except ValueError:
        raise BadRequestError(f"{what}: the b64 value is not valid base64") from None
    dtype = np.dtype(dtype).newbyteorder("<")
    count = int(np.prod([d for d in shape])) if all(d > 0 for d in shape) else -1
    if len(buffer) % dtype.itemsize or (count >= 0 and len(buffer) != count * dtype.itemsize):
        want = f"{count * dtype.itemsize} bytes ({count} x {dtype.name})" if count >= 0 else f"{dtype.name} items"
        raise BadRequestError(f"{what}: the b64 value decodes to {len(buffer)} bytes; expected {want}")
    array = np.frombuffer(buffer, dtype=dtype)
    return array.reshape(shape) if count >= 0 else array
