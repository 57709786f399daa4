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


@given(st.recursive(st.none() | st.integers() | st.text(alphabet="[]{}\"\\ab"),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                 max_size=3), max_leaves=20))
def test_json_depth_matches_the_parsed_structure(value):
    def depth(v):
        if isinstance(v, list):
            return 1 + max((depth(i) for i in v), default=0)
        if isinstance(v, dict):
            return 1 + max((depth(i) for i in v.values()), default=0)
        return 0

    assert json_depth(json.dumps(value).encode()) == depth(value)


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
