"""Open Inference Protocol v2 tensors: JSON data and the binary tensor data extension, in and out::

    head, tail = split_binary_body(raw, request_header)      # JSON head + concatenated tensor bytes
    tensors = v2_inputs(v2_body(head, 32), tail)             # [("image", array), ...]
    encoded, binary = v2_encode_outputs({"output_0": y}, {"output_0": False})
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from modelpress.errors import BadRequestError
from modelpress.runtime.codecs.arrays import V2_DATATYPES, show, to_array, v2_datatype
from modelpress.runtime.codecs.json import parse_json_arrays

MAX_RANK = 32  # dimensions a v2 tensor may have (numpy itself stops at 64)
MAX_VALUES = 2**40  # values a v2 shape may describe, zero dimensions aside (numpy needs the bytes to fit int64)
_DIGITS = re.compile(r"[0-9]{1,15}")


def split_binary_body(raw: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """Cut a binary-extension body into its JSON head and the concatenated tensor bytes."""
    if header_length is None:
        return raw, b""
    text = header_length.strip()
    size = int(text) if _DIGITS.fullmatch(text) else None
    if size is None:
        raise BadRequestError(f"Inference-Header-Content-Length {show(header_length)} is not a byte count: send "
                              f"the JSON header's length, a whole number from 1 to the body's {len(raw)} bytes")
    if not 0 < size <= len(raw):
        raise BadRequestError(f"Inference-Header-Content-Length {size} is outside the body's {len(raw)} bytes: "
                              f"send the JSON header's length, a whole number from 1 to {len(raw)}")
    return raw[:size], raw[size:]


def v2_body(head: bytes, max_depth: int) -> Any:
    """The JSON head of an inference request, parsed, the nesting cap checked, and each input's flat
    ``data`` list already a numpy array (one C-speed pass instead of a byte count, a list and a copy)."""
    return parse_json_arrays(head, max_depth, _data_lists)


def _data_lists(body: Any) -> list[tuple[dict, str]]:
    return [(tensor, "data") for tensor in body["inputs"] if isinstance(tensor, dict) and "data" in tensor]


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
            raise BadRequestError(f"{where}: name must be a non-empty string, got {show(name)}")
        where = f"input {show(name)}"
        if not isinstance(datatype, str) or datatype not in V2_DATATYPES:
            raise BadRequestError(f"{where}: datatype {show(datatype)} is not supported; use one of "
                                  f"{', '.join(V2_DATATYPES)}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise BadRequestError(f"{where}: shape must be a list of non-negative integers, got {show(shape)}")
        if len(shape) > MAX_RANK:
            raise BadRequestError(f"{where}: shape has {len(shape)} dimensions; at most {MAX_RANK} are supported")
        dtype = np.dtype(V2_DATATYPES[datatype])
        count = math.prod(shape)
        if math.prod(d or 1 for d in shape) > MAX_VALUES:
            raise BadRequestError(f"{where}: shape {show(shape)} is too large: a tensor may have at most "
                                  f"{MAX_VALUES} (2**40) values, counting zero dimensions as 1")
        params = _parameters(tensor, where)
        if "binary_data_size" in params:
            size = params["binary_data_size"]
            if type(size) is not int or size < 0 or offset + size > len(binary):
                raise BadRequestError(f"{where}: binary_data_size {show(size)} runs past the {len(binary)} bytes "
                                      "after the JSON header")
            if size != count * dtype.itemsize:
                raise BadRequestError(f"{where}: {size} bytes of binary data do not fill shape {show(shape)} of "
                                      f"{datatype} ({count * dtype.itemsize} bytes)")
            array = np.frombuffer(binary, dtype=dtype.newbyteorder("<"), count=count, offset=offset)
            offset += size
        elif "data" in tensor:
            array = to_array(tensor["data"], dtype, where)
            if array.size != count:
                raise BadRequestError(f"{where}: {array.size} values do not fill shape {show(shape)} "
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
            raise BadRequestError(f"output {show(got)} is unknown; the model's outputs are {', '.join(names)}")
        choice[got] = bool(_parameters(item, f"output {got!r}").get("binary_data", default_binary))
    return choice


def _parameters(owner: dict, what: str) -> dict:
    params = owner.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise BadRequestError(f'{what}: "parameters" must be an object, got {show(params)}')
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
