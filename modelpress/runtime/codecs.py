"""Payloads to numpy and back, in one place: JSON bodies (with a nesting cap), Open Inference v2
tensors (JSON data and the binary tensor data extension) and TF Serving v1 rows / columns::

    body = parse_json(raw_bytes, max_depth=32)
    x = v2_tensor({"name": "image", "datatype": "FP32", "shape": [1, 8, 8, 1], "data": [...]})
    head, tail = v2_encode_outputs({"output_0": y}, binary=True)   # JSON head + raw bytes
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import numpy as np

from modelpress.errors import BadRequestError

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
_OPEN = np.frombuffer(b"[{", dtype=np.uint8)


def v2_datatype(dtype: str | np.dtype) -> str:
    """The Open Inference datatype name of a numpy dtype (``float32`` -> ``FP32``)."""
    return _NUMPY_TO_V2.get(np.dtype(dtype).name, "BYTES")


def tf_datatype(dtype: str | np.dtype) -> str:
    """The TensorFlow ``DT_*`` name of a numpy dtype, as TF Serving's metadata shows it."""
    return _NUMPY_TO_TF.get(np.dtype(dtype).name, "DT_INVALID")


def json_depth(raw: bytes) -> int:
    """How deeply arrays / objects nest in a JSON text, counted without parsing it (strings ignored)."""
    if raw.count(b"[") + raw.count(b"{") == 0:
        return 0
    skeleton = _STRING.sub(b'""', raw).translate(None, delete=bytes(set(range(256)) - set(b"[]{}")))
    if not skeleton:
        return 0
    chars = np.frombuffer(skeleton, dtype=np.uint8)
    steps = np.where(np.isin(chars, _OPEN), 1, -1)
    return int(np.cumsum(steps).max())


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
    return array.astype(dtype, copy=False)


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
    try:
        size = int(header_length)
    except ValueError:
        raise BadRequestError(f"Inference-Header-Content-Length must be an integer, got {header_length!r}") from None
    if not 0 < size <= len(raw):
        raise BadRequestError(f"Inference-Header-Content-Length {size} is outside the body's {len(raw)} bytes")
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
        where = f"input {name!r}"
        if datatype not in V2_DATATYPES:
            raise BadRequestError(f"{where}: datatype {datatype!r} is not supported; use one of "
                                  f"{', '.join(V2_DATATYPES)}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise BadRequestError(f"{where}: shape must be a list of non-negative integers, got {shape!r}")
        dtype = np.dtype(V2_DATATYPES[datatype])
        count = int(np.prod(shape)) if shape else 1
        params = tensor.get("parameters") or {}
        if "binary_data_size" in params:
            size = params["binary_data_size"]
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise BadRequestError(f"{where}: binary_data_size {size!r} runs past the {len(binary)} bytes "
                                      "after the JSON header")
            if size != count * dtype.itemsize:
                raise BadRequestError(f"{where}: {size} bytes of binary data do not fill shape {shape} of "
                                      f"{datatype} ({count * dtype.itemsize} bytes)")
            array = np.frombuffer(binary, dtype=dtype.newbyteorder("<"), count=count, offset=offset)
            offset += size
        elif "data" in tensor:
            array = to_array(tensor["data"], dtype, where)
            if array.size != count:
                raise BadRequestError(f"{where}: {array.size} values do not fill shape {shape} ({count} values)")
        else:
            raise BadRequestError(f'{where} has neither "data" nor parameters.binary_data_size')
        tensors.append((str(name), array.reshape(shape).astype(dtype, copy=False)))
    if offset != len(binary):
        raise BadRequestError(f"{len(binary) - offset} bytes of binary data after the JSON header belong to no input")
    return tensors


def v2_output_choice(body: dict, names: list[str]) -> dict[str, bool]:
    """Which outputs to return, each mapped to whether it goes as binary data."""
    default_binary = bool((body.get("parameters") or {}).get("binary_data_output", False))
    requested = body.get("outputs")
    if not requested:
        return {name: default_binary for name in names}
    if not isinstance(requested, list):
        raise BadRequestError('"outputs" must be a list of {"name": ...} objects')
    choice = {}
    for item in requested:
        if not isinstance(item, dict) or item.get("name") not in names:
            got = item.get("name") if isinstance(item, dict) else item
            raise BadRequestError(f"output {got!r} is unknown; the model's outputs are {', '.join(names)}")
        choice[item["name"]] = bool((item.get("parameters") or {}).get("binary_data", default_binary))
    return choice


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
