"""JSON bodies in and out: a nesting cap that holds for either parser, and the fastest parser present.

orjson (a compiled wheel, in the ``runtime`` extra) parses and writes when it imports; the standard
library's ``json`` does otherwise (a device without the wheel), with the same answers and errors.
``PARSER`` says which one runs::

    body = parse_json(raw_bytes, max_depth=32)     # 400 past 32 levels, for either parser
    body = parse_json_arrays(raw_bytes, 32, pick)  # the same, with the lists ``pick`` names already numpy
    text = dumps({"outputs": [...]})               # compact bytes

The nesting cap holds for either parser: the standard one only ever sees a body whose brackets were counted
first (it recurses in Python); orjson refuses past 1,024 levels by itself without recursing in Python, so
under orjson :func:`parse_json_arrays` checks the cap on the parsed value instead, where a long list of
numbers costs one C-speed conversion (which the inference needs anyway) instead of a count over the bytes.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from modelpress.errors import BadRequestError
from modelpress.runtime.codecs.arrays import numeric_vector

try:  # pragma: no cover - which branch runs depends on the installation
    import orjson
except ImportError:  # pragma: no cover
    orjson = None

#: the parser in use: "orjson" or "json" (the standard library's)
PARSER = "orjson" if orjson is not None else "json"
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_STEPS = bytes(1 if c in b"[{" else 255 if c in b"]}" else 0 for c in range(256))  # +1 / -1 as int8
_CHUNK = 1 << 20


def json_depth(raw: bytes) -> int:
    """How deeply arrays / objects nest in a JSON text, counted without parsing it (strings ignored), in
    chunks so that a large body costs little memory beyond its own size::

        json_depth(b'{"a": [[1], "]]"]}')   # 3
    """
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
    """Parse a request body, refusing nesting past ``max_depth`` before the parser sees it::

        parse_json(b'{"inputs": []}', 32)   # {"inputs": []}
    """
    if not raw.strip():
        raise BadRequestError("the request body is empty; send a JSON object")
    # a body with no more brackets than the cap cannot nest deeper: the exact count is only needed past it
    if raw.count(b"[") + raw.count(b"{") > max_depth:
        depth = json_depth(raw)
        if depth > max_depth:
            raise BadRequestError(f"JSON nests {depth} levels deep; at most {max_depth} are allowed")
    if orjson is not None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # the standard parser decides (NaN, integers past 64 bits) and words the error
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise BadRequestError("the request body is not UTF-8 JSON") from None
    except (json.JSONDecodeError, RecursionError) as err:
        raise BadRequestError(f"the request body is not valid JSON: {err}") from None
    except ValueError:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        raise BadRequestError(f"the request body holds an integer of more than {sys.get_int_max_str_digits()} "
                              "digits; send numbers that fit the model's datatype") from None


def parse_json_arrays(raw: bytes, max_depth: int, pick: Callable[[Any], list[tuple[Any, Any]]]) -> Any:
    """:func:`parse_json`, with the flat lists of plain numbers that ``pick(body)`` names as (holder, key)
    pairs replaced by numpy arrays (float64 or int64) in place: the one pass over a large tensor that both
    the cap and the inference need::

        pick = lambda body: [(tensor, "data") for tensor in body["inputs"]]
        parse_json_arrays(b'{"inputs": [{"data": [1.5, 2]}]}', 32, pick)   # data: array([1.5, 2.])
    """
    if orjson is None or not raw.strip():
        return parse_json(raw, max_depth)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return parse_json(raw, max_depth)  # the standard parser decides and words the error
    for holder, key in _picked(body, pick):
        array = numeric_vector(holder[key])
        if array is not None:
            holder[key] = array
    depth = value_depth(body)
    if depth > max_depth:
        raise BadRequestError(f"JSON nests {depth} levels deep; at most {max_depth} are allowed")
    return body


def _picked(body: Any, pick: Callable[[Any], list]) -> list[tuple[Any, Any]]:
    try:
        return [(holder, key) for holder, key in pick(body) if type(holder[key]) is list]
    except (AttributeError, KeyError, IndexError, TypeError):
        return []  # not the expected shape: the protocol's own checks word that


_CONTAINER_TYPES = frozenset((dict, list))
_NESTED = (dict, list, np.ndarray)  # what adds a level: an array stands for the flat list it replaced


def value_depth(value: Any) -> int:
    """How deeply lists / objects nest in a parsed JSON value (a numpy array counts as one flat list),
    without recursion::

        value_depth({"a": [[1], "]]"]})   # 3
    """
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            if _CONTAINER_TYPES.isdisjoint(map(type, item)):  # a list of scalars, checked at C speed
                deepest = max(deepest, level)
                continue
            children = item
        elif isinstance(item, np.ndarray):
            deepest = max(deepest, level)
            continue
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children if isinstance(child, _NESTED))
    return deepest


def dumps(payload: Any) -> bytes:
    """Compact JSON bytes (orjson when present; numpy arrays allowed)::

        dumps({"outputs": np.zeros(3, np.float32)})   # b'{"outputs":[0.0,0.0,0.0]}'
    """
    if orjson is not None:
        return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    return json.dumps(payload, separators=(",", ":"), default=_plain).encode()


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
