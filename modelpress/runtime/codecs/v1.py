"""TF Serving REST v1 bodies: ``instances`` rows or ``inputs`` columns in, ``predictions`` / ``outputs`` out::

    values, form = v1_inputs({"instances": [[1.0, 2.0]]}, specs)   # ({"x": [[1.0, 2.0]]}, "row")
    x = v1_array(values["x"], np.float32, [-1, 2], "input 'x'")
    v1_encode({"y": y}, form)                                       # {"predictions": [...]}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelpress.errors import BadRequestError
from modelpress.runtime.codecs.arrays import b64_instance, to_array


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
