"""The shapes a model will run at: its own input shapes, with dynamic dimensions fixed by the user
(``--input-shape NAME=1x40x256x1``) or by the calibration data, and a clear error when neither does::

    parse_input_shapes(["spectrogram=1x40x256x1"])         # {"spectrogram": [1, 40, 256, 1]}
    run_shapes(source.input_specs(), {"spectrogram": [1, 40, 256, 1]}, calibration)
    # {"spectrogram": [None, 40, 256, 1]}   (the batch stays open)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from modelpress.errors import DataError, UsageError
from modelpress.manifest import shape_text
from modelpress.model_io import IOSpec

ANY = "*"  # the name a bare --input-shape 1x40x256x1 goes by: the model's only input
_SHAPE = re.compile(r"^\s*([^=\s][^=]*?)\s*=\s*([0-9]+(?:\s*[xX,]\s*[0-9]+)*)\s*$")


def parse_input_shapes(values: Iterable[str] | Mapping[str, Iterable[int]] | None) -> dict[str, list[int]]:
    """``["NAME=1x40x256x1", ...]`` (CLI) or ``{"NAME": [1, 40, 256, 1]}`` (Python) as {name: shape}."""
    if not values:
        return {}
    if isinstance(values, Mapping):
        shapes = {}
        for name, shape in values.items():
            dims = list(shape)
            if not dims or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
                raise UsageError(f"input_shapes[{name!r}] must be a list of positive integers, e.g. [1, 40, 256, 1], "
                                 f"got {shape!r}")
            shapes[str(name)] = dims
        return shapes
    shapes = {}
    for text in values:
        if "=" not in text and re.fullmatch(r"\s*[0-9]+(\s*[xX,]\s*[0-9]+)*\s*", text):
            text = f"{ANY}={text}"  # a bare shape: the model's only input
        match = _SHAPE.match(text)
        if not match:
            raise UsageError(f"--input-shape {text!r} must be NAME=DIMS with DIMS like 1x40x256x1 (batch first)")
        dims = [int(d) for d in re.split(r"\s*[xX,]\s*", match.group(2))]
        if 0 in dims:
            raise UsageError(f"--input-shape {text!r}: every dimension must be at least 1")
        shapes[match.group(1)] = dims
    return shapes


def named_shapes(specs: list[IOSpec], given: Mapping[str, list[int]]) -> dict[str, list[int]]:
    """``given`` with a bare shape given to the only input, every name checked against the model."""
    names = [s.name for s in specs]
    if ANY in given:
        if len(names) != 1:
            raise UsageError(f"the model has {len(names)} inputs ({', '.join(map(repr, names))}); name the one each "
                             "--input-shape is for, as NAME=DIMS")
        given = {names[0]: given[ANY], **{k: v for k, v in given.items() if k != ANY}}
    unknown = sorted(set(given) - set(names))
    if unknown:
        single = f" (or give just the shape: --input-shape {'x'.join(['1'] + ['N'] * 3)})" if len(names) == 1 else ""
        raise UsageError(f"--input-shape names {', '.join(map(repr, unknown))}, which the model does not have; "
                         f"its inputs are {', '.join(map(repr, names))}{single}")
    return dict(given)


def run_shapes(specs: list[IOSpec], given: Mapping[str, list[int]], data_shapes: Mapping[str, list[int]] | None = None
               ) -> dict[str, list[int | None]]:
    """Each input's shape with every non-batch dimension known (the batch stays None).

    ``given`` ({name: full shape}) wins; otherwise the data's shape fixes a dynamic dimension. Raises
    UsageError for an unknown name or a shape that contradicts the model, DataError for a dimension that
    nothing fixes.
    """
    given = named_shapes(specs, given)
    shapes: dict[str, list[int | None]] = {}
    for spec in specs:
        want = given.get(spec.name)
        if want is not None:
            if len(want) != len(spec.shape):
                raise UsageError(f"--input-shape {spec.name}={'x'.join(map(str, want))} has {len(want)} dimensions; "
                                 f"input {spec.name!r} has {len(spec.shape)}: {shape_text(spec.shape)}")
            clash = [a for a, (m, w) in enumerate(zip(spec.shape, want)) if a > 0 and m is not None and m != w]
            if clash:
                raise UsageError(f"--input-shape {spec.name}={'x'.join(map(str, want))} contradicts the model's "
                                 f"{shape_text(spec.shape)} at axis {', '.join(map(str, clash))}")
            shapes[spec.name] = [None, *want[1:]]
            continue
        from_data = (data_shapes or {}).get(spec.name)
        dims: list[int | None] = [None, *spec.shape[1:]]
        if from_data is not None and len(from_data) == len(spec.shape):
            dims = [None, *[d if d is not None else int(from_data[a + 1]) for a, d in enumerate(spec.shape[1:])]]
        missing = [a for a, d in enumerate(dims) if a > 0 and d is None]
        if missing:
            example = "x".join("1" if a == 0 else ("N" if d is None else str(d)) for a, d in enumerate(dims))
            raise DataError(f"input {spec.name!r} has dynamic dimension(s) at axis {', '.join(map(str, missing))} "
                            f"(shape {shape_text(spec.shape)}) and nothing fixes them; pass the shape the device "
                            f"will run, e.g. --input-shape {spec.name}={example} (input_shapes= in Python), or "
                            "calibration data of that shape")
        shapes[spec.name] = dims
    return shapes
