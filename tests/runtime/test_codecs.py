"""Codecs: JSON nesting counted without parsing, and v2 tensors round-tripping through JSON and binary."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from modelpress.errors import BadRequestError
from modelpress.runtime.codecs import V2_DATATYPES, json_depth, parse_json, v2_encode_outputs, v2_inputs
from modelpress.runtime.codecs.json import value_depth
from modelpress.runtime.codecs.v2 import v2_body


def _depth(v):
    if isinstance(v, list):
        return 1 + max((_depth(i) for i in v), default=0)
    if isinstance(v, dict):
        return 1 + max((_depth(i) for i in v.values()), default=0)
    return 0


@given(st.recursive(st.none() | st.integers() | st.floats(allow_nan=False) | st.text(alphabet="[]{}\"\\ab"),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                 max_size=3), max_leaves=20))
def test_json_depth_matches_the_parsed_structure(value):
    """The byte count (before the standard parser) and the walk over a parsed value (after orjson) agree."""
    assert json_depth(json.dumps(value).encode()) == _depth(value) == value_depth(value)


def test_v2_body_turns_flat_data_into_arrays_and_keeps_the_nesting_cap():
    body = v2_body(b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [3], "data": [0.5, 1, -2e3]}]}', 32)
    data = body["inputs"][0]["data"]
    assert isinstance(data, np.ndarray) and data.dtype == np.float64 and data.tolist() == [0.5, 1.0, -2000.0]
    # anything but a flat list of plain numbers stays as parsed, for the protocol's own checks to word
    for kept in ([[1.0], [2.0]], ["1.5", 2.0], [True, 1.0], [None], []):
        raw = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": kept}]}).encode()
        assert v2_body(raw, 32)["inputs"][0]["data"] == kept
    deep = b'{"inputs": [{"data": [1.0, 2.0]}], "parameters": ' + b"[" * 38 + b"]" * 38 + b"}"
    with pytest.raises(BadRequestError, match="JSON nests 39 levels deep; at most 32"):
        v2_body(deep, 32)
    with pytest.raises(BadRequestError, match="JSON nests 4 levels deep; at most 3"):  # data, as an array, is one
        v2_body(b'{"inputs": [{"data": [1.0, 2.0]}]}', 3)


@pytest.mark.parametrize(("data", "datatype", "error"), [
    (["1.5", 2.0], "FP32", "must hold numbers"),
    ([True, False], "FP32", "got booleans"),
    ([1.5, 2.0], "INT32", "got fractional numbers"),
    ([1e39, 2.0], "FP32", "outside float32 range"),
    ([300, 2], "INT8", r"outside int8 range \[-128, 127\]"),
    ([[1.0], [2.0, 3.0]], "FP32", "ragged"),
])
def test_v2_data_errors_are_the_same_after_the_fast_parse(data, datatype, error):
    raw = json.dumps({"inputs": [{"name": "x", "datatype": datatype, "shape": [2], "data": data}]}).encode()
    with pytest.raises(BadRequestError, match=error):
        v2_inputs(v2_body(raw, 32), b"")


def test_deep_nesting_is_refused_before_parsing():
    with pytest.raises(BadRequestError, match="5000 levels deep"):
        parse_json(b"[" * 5000 + b"]" * 5000, max_depth=32)


dtypes = st.sampled_from(["FP32", "FP64", "INT8", "UINT8", "INT32", "INT64", "FP16", "BOOL"])


@settings(max_examples=60, deadline=None)
@given(dtypes.flatmap(lambda name: st.tuples(st.just(name), hnp.arrays(
    np.dtype(V2_DATATYPES[name]), hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
    elements={"allow_nan": False} if name.startswith("FP") else None))), st.booleans())
def test_v2_tensors_round_trip(case, binary):
    name, array = case
    encoded, data = v2_encode_outputs({"t": array}, {"t": binary})
    request = {"inputs": [dict(encoded[0], name="t")]}
    head = json.dumps(request).encode()
    [(got_name, got)] = v2_inputs(json.loads(head), data)
    assert got_name == "t" and got.dtype == array.dtype and got.shape == array.shape
    assert np.array_equal(got, array)


@pytest.fixture(params=["orjson", "json"])
def parser(request, monkeypatch):
    """Each JSON parser the runtime may run with: orjson when its wheel is there, else the standard library."""
    from modelpress.runtime.codecs import json as codec

    if request.param == "json":
        monkeypatch.setattr(codec, "orjson", None)
    elif codec.orjson is None:
        pytest.skip("orjson is not installed here")
    return codec


def test_both_parsers_give_the_same_v2_tensors(parser):
    from modelpress.runtime.codecs import v2 as v2_codec

    raw = b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [0.1, 2, 3.25]}]}'
    [(name, array)] = v2_codec.v2_inputs(v2_codec.v2_body(raw, 32), b"")
    assert name == "x" and array.dtype == np.float32 and array.tolist() == [[np.float32(0.1), 2.0, 3.25]]
    with pytest.raises(BadRequestError, match="JSON nests 40 levels deep"):
        v2_codec.v2_body(b"[" * 40 + b"]" * 40, 32)
    with pytest.raises(BadRequestError, match="nests 5000 levels deep"):  # past orjson's own 1,024-level limit
        v2_codec.v2_body(b"[" * 5000 + b"]" * 5000, 32)


def test_both_parsers_give_the_same_answers_and_errors(parser):
    assert parser.parse_json(b'{"a": [1, 2.5, NaN]}', 32)["a"][:2] == [1, 2.5]
    with pytest.raises(BadRequestError, match="JSON nests 40 levels deep"):
        parser.parse_json(b"[" * 40 + b"]" * 40, 32)
    with pytest.raises(BadRequestError, match="nests 5000 levels deep"):
        parser.parse_json(b"[" * 5000 + b"]" * 5000, 32)
    with pytest.raises(BadRequestError, match="holds an integer of more than 4300 digits"):
        parser.parse_json(b'{"inputs": [' + b"1" * 5000 + b"]}", 32)
    with pytest.raises(BadRequestError, match="not UTF-8 JSON|not valid JSON"):
        parser.parse_json(b'{"a": "\xff"}', 32)
    with pytest.raises(BadRequestError, match="not valid JSON"):
        parser.parse_json(b'{"a": ', 32)
    assert json.loads(parser.dumps({"y": np.arange(3, dtype=np.float32), "n": np.int64(2)})) == {"y": [0, 1, 2], "n": 2}
