"""Payloads to numpy and back, in one place: JSON bodies (with a nesting cap), Open Inference v2
tensors (JSON data and the binary tensor data extension) and TF Serving v1 rows / columns::

    body = parse_json(raw_bytes, max_depth=32)
    x = v2_tensor({"name": "image", "datatype": "FP32", "shape": [1, 8, 8, 1], "data": [...]})
    head, tail = v2_encode_outputs({"output_0": y}, binary=True)   # JSON head + raw bytes
"""

from __future__ import annotations

import base64
import json
import math
import re
import sys
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
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_STEPS = bytes(1 if c in b"[{" else 255 if c in b"]}" else 0 for c in range(256))  # +1 / -1 as int8
_CHUNK = 1 << 20
MAX_RANK = 32  # dimensions a v2 tensor may have (numpy itself stops at 64)
MAX_VALUES = 2**40  # values a v2 shape may describe, zero dimensions aside (numpy needs the bytes to fit int64)
_DIGITS = re.compile(r"[0-9]{1,15}")


def _show(value: Any) -> str:
    return excerpt(repr(value))


def v2_datatype(dtype: str | np.dtype) -> str:
    """The Open Inference datatype name of a numpy dtype (``float32`` -> ``FP32``)."""
    return _NUMPY_TO_V2.get(np.dtype(dtype).name, "BYTES")


def tf_datatype(dtype: str | np.dtype) -> str:
    """The TensorFlow ``DT_*`` name of a numpy dtype, as TF Serving's metadata shows it."""
    return _NUMPY_TO_TF.get(np.dtype(dtype).name, "DT_INVALID")


def json_depth(raw: bytes) -> int:
    """How deeply arrays / objects nest in a JSON text, counted without parsing it (strings ignored), in
    chunks so that a large body costs little memory beyond its own size."""
    if raw.count(b"[") + raw.count(b"{") == 0:
        return 0
    skeleton = _STRING.sub(b'""', raw)
    deepest = level = 0
    for start in range(0, len(skeleton), _CHUNK):
        steps = np.frombuffer(skeleton[start:start + _CHUNK].translate(_STEPS), dtype=np.int8)
        running = np.cumsum(steps, dtype=np.int32)
        deepest = max(deepest, level + int(running.max()))
        level += int(running[-1])
    return deepest


def parse_json(raw: bytes, max_depth: int) -> Any:
    """Parse a request body, refusing deep nesting before the parser sees it."""
    if not raw.strip():
        raise BadRequestError("the request body is empty; send a JSON object")
    depth = json_depth(raw)
    if depth > max_depth:
        raise BadRequestError(f"JSON nests {depth} levels deep; at most {max_depth} are allowed")
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise BadRequestError("the request body is not UTF-8 JSON") from None
    except (json.JSONDecodeError, RecursionError) as err:
        raise BadRequestError(f"the request body is not valid JSON: {err}") from None
    except ValueError:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        raise BadRequestError(f"the request body holds an integer of more than {sys.get_int_max_str_digits()} "
                              "digits; send numbers that fit the model's datatype") from None


def to_array(data: Any, dtype: np.dtype, what: str) -> np.ndarray:
    """Nested lists (or ``{"b64": ...}`` raw buffers) to an array of ``dtype``, with a clear 400 on failure."""
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
        if np.any(np.abs(array[np.isfinite(array)]) > largest):
            raise BadRequestError(f"{what} holds values outside {np.dtype(dtype).name} range "
                                  f"[{-largest:.4g}, {largest:.4g}]")
    return array.astype(dtype, copy=False)


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


# --- Open Inference Protocol v2 -------------------------------------------------------------------

def split_binary_body(raw: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """Cut a binary-extension body into its JSON head and the concatenated tensor bytes."""
    if header_length is None:
        return raw, b""
    text = header_length.strip()
    size = int(text) if _DIGITS.fullmatch(text) else None
    if size is None:
        raise BadRequestError(f"Inference-Header-Content-Length {_show(header_length)} is not a byte count: send "
                              f"the JSON header's length, a whole number from 1 to the body's {len(raw)} bytes")
    if not 0 < size <= len(raw):
        raise BadRequestError(f"Inference-Header-Content-Length {size} is outside the body's {len(raw)} bytes: "
                              f"send the JSON header's length, a whole number from 1 to {len(raw)}")
    return raw[:size], raw[size:]


def v2_inputs(body: Any, binary: bytes) -> list[tuple[str, np.ndarray]]:
    """The ``inputs`` of a v2 inference request as (name, array) pairs, reading binary data in order."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise BadRequestError('the request needs "inputs": a list of tensors {"name", "datatype", "shape", "data"}')
    offset, tensors = 0, []
    for index, tensor in enumerate(body["inputs"]):
        where = f"inputs[{index}]"
        if not isinstance(tensor, dict):
            raise BadRequestError(f"{where} must be an object with name, datatype, shape and data")
        missing = [k for k in ("name", "datatype", "shape") if k not in tensor]
        if missing:
            raise BadRequestError(f"{where} lacks {', '.join(missing)}")
        name, datatype, shape = tensor["name"], tensor["datatype"], tensor["shape"]
        if not isinstance(name, str) or not name:
            raise BadRequestError(f"{where}: name must be a non-empty string, got {_show(name)}")
        where = f"input {_show(name)}"
        if not isinstance(datatype, str) or datatype not in V2_DATATYPES:
            raise BadRequestError(f"{where}: datatype {_show(datatype)} is not supported; use one of "
                                  f"{', '.join(V2_DATATYPES)}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise BadRequestError(f"{where}: shape must be a list of non-negative integers, got {_show(shape)}")
        if len(shape) > MAX_RANK:
            raise BadRequestError(f"{where}: shape has {len(shape)} dimensions; at most {MAX_RANK} are supported")
        dtype = np.dtype(V2_DATATYPES[datatype])
        count = math.prod(shape)
        if math.prod(d or 1 for d in shape) > MAX_VALUES:
            raise BadRequestError(f"{where}: shape {_show(shape)} is too large: a tensor may have at most "
                                  f"{MAX_VALUES} (2**40) values, counting zero dimensions as 1")
        params = _parameters(tensor, where)
        if "binary_data_size" in params:
            size = params["binary_data_size"]
            if type(size) is not int or size < 0 or offset + size > len(binary):
                raise BadRequestError(f"{where}: binary_data_size {_show(size)} runs past the {len(binary)} bytes "
                                      "after the JSON header")
            if size != count * dtype.itemsize:
                raise BadRequestError(f"{where}: {size} bytes of binary data do not fill shape {_show(shape)} of "
                                      f"{datatype} ({count * dtype.itemsize} bytes)")
            array = np.frombuffer(binary, dtype=dtype.newbyteorder("<"), count=count, offset=offset)
            offset += size
        elif "data" in tensor:
            array = to_array(tensor["data"], dtype, where)
            if array.size != count:
                raise BadRequestError(f"{where}: {array.size} values do not fill shape {_show(shape)} "
                                      f"({count} values)")
        else:
            raise BadRequestError(f'{where} has neither "data" nor parameters.binary_data_size')
        tensors.append((name, array.reshape(shape).astype(dtype, copy=False)))
    if offset != len(binary):
        raise BadRequestError(f"{len(binary) - offset} bytes of binary data after the JSON header belong to no input")
    return tensors


def v2_output_choice(body: dict, names: list[str]) -> dict[str, bool]:
    """Which outputs to return, each mapped to whether it goes as binary data."""
    default_binary = bool(_parameters(body, "the request").get("binary_data_output", False))
    requested = body.get("outputs")
    if not requested:
        return {name: default_binary for name in names}
    if not isinstance(requested, list):
        raise BadRequestError('"outputs" must be a list of {"name": ...} objects')
    choice = {}
    for item in requested:
        got = item.get("name") if isinstance(item, dict) else item
        if not isinstance(got, str) or got not in names:
            raise BadRequestError(f"output {_show(got)} is unknown; the model's outputs are {', '.join(names)}")
        choice[got] = bool(_parameters(item, f"output {got!r}").get("binary_data", default_binary))
    return choice


def _parameters(owner: dict, what: str) -> dict:
    params = owner.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise BadRequestError(f'{what}: "parameters" must be an object, got {_show(params)}')
    return params


def v2_encode_outputs(outputs: dict[str, np.ndarray], choice: dict[str, bool]) -> tuple[list[dict], bytes]:
    """Output tensors as v2 JSON objects, with the bytes of the binary ones concatenated in order."""
    encoded, chunks = [], []
    for name, binary in choice.items():
        array = np.ascontiguousarray(outputs[name])
        item: dict[str, Any] = {"name": name, "datatype": v2_datatype(array.dtype), "shape": list(array.shape)}
        if binary:
            data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            item["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
        else:
            item["data"] = array.reshape(-1).tolist()
        encoded.append(item)
    return encoded, b"".join(chunks)


# --- TF Serving REST v1 ---------------------------------------------------------------------------

def v1_inputs(body: Any, specs: list) -> tuple[dict[str, Any], str]:
    """The named inputs of a ``:predict`` body (``instances`` rows or ``inputs`` columns), still as JSON
    values, and which form was used ("row" or "columnar")."""
    if not isinstance(body, dict):
        raise BadRequestError('the request must be a JSON object with "instances" or "inputs"')
    if ("instances" in body) == ("inputs" in body):
        raise BadRequestError('send exactly one of "instances" (row form) or "inputs" (columnar form)')
    names = [s.name for s in specs]
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise BadRequestError('"instances" must be a non-empty list, one item per example')
        if all(isinstance(r, dict) and "b64" not in r for r in rows):
            values = {}
            for name in names:
                if any(name not in r for r in rows):
                    raise BadRequestError(f"every instance needs input {name!r}; the model's inputs are "
                                          f"{', '.join(names)}")
                values[name] = [r[name] for r in rows]
            extra = sorted({k for r in rows for k in r} - set(names))
            if extra:
                raise BadRequestError(f"unknown input(s) {', '.join(extra)}; the model's inputs are {', '.join(names)}")
            return values, "row"
        if len(names) != 1:
            raise BadRequestError(f"the model has inputs {', '.join(names)}: send each instance as an object "
                                  "naming them")
        return {names[0]: rows}, "row"
    columns = body["inputs"]
    if isinstance(columns, dict) and not (set(columns) == {"b64"}):
        unknown = sorted(set(columns) - set(names))
        missing = [n for n in names if n not in columns]
        if unknown or missing:
            raise BadRequestError(f"inputs must name exactly {', '.join(names)}; got {', '.join(sorted(columns))}")
        return dict(columns), "columnar"
    if len(names) != 1:
        raise BadRequestError(f'the model has inputs {", ".join(names)}: send "inputs" as an object naming them')
    return {names[0]: columns}, "columnar"


def v1_array(value: Any, dtype: np.dtype, shape: list[int], what: str) -> np.ndarray:
    """One v1 input (a list of instances) as an array; ``{"b64": ...}`` items are raw instance buffers."""
    if isinstance(value, dict):
        return b64_instance(value, dtype, shape[1:], what)[None]
    if isinstance(value, list) and value and any(isinstance(v, dict) for v in value):
        if not all(isinstance(v, dict) for v in value):
            raise BadRequestError(f"{what}: mix of b64 objects and plain values")
        return np.stack([b64_instance(v, dtype, shape[1:], what) for v in value])
    return to_array(value, dtype, what)


def v1_encode(outputs: dict[str, np.ndarray], form: str) -> dict[str, Any]:
    """A ``:predict`` answer in the form the request used, as TF Serving writes it."""
    if form == "row":
        if len(outputs) == 1:
            return {"predictions": next(iter(outputs.values())).tolist()}
        rows = len(next(iter(outputs.values())))
        lists = {name: value.tolist() for name, value in outputs.items()}
        return {"predictions": [{name: lists[name][i] for name in lists} for i in range(rows)]}
    if len(outputs) == 1:
        return {"outputs": next(iter(outputs.values())).tolist()}
    return {"outputs": {name: value.tolist() for name, value in outputs.items()}}
