"""What the fuzz suite (test_fuzz.py, benchmarks/fuzz_bench.py) found, one reproduction each: every one of
these answered 500, grew memory, or said too little before its fix. Errors must say what was expected."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from modelpress.runtime import create_app
from modelpress.runtime.codecs import parse_json

IMAGE = {"name": "image", "datatype": "FP32", "shape": [1, 8, 8, 1], "data": [0.0] * 64}


def infer(client, *inputs, path="/v2/models/digits/infer", **body):
    return client.post(path, json={"inputs": list(inputs), **body})


def error(answer, status):
    assert answer.status_code == status, answer.data[:300]
    assert answer.is_json and answer.json["error"], answer.data[:300]
    return answer.json["error"]


@pytest.mark.parametrize("shape", [[2**32, 2**32], [0, 2**63, 10**12]])
def test_a_shape_whose_size_overflows_int64_is_a_400_naming_the_limit(client, shape):
    tensor = dict(IMAGE, shape=shape, datatype="FP64", parameters={"binary_data_size": 0})
    tensor.pop("data")
    message = error(infer(client, tensor), 400)
    assert f"shape {shape} is too large: a tensor may have at most 1099511627776 (2**40) values" in message
    message = error(infer(client, dict(IMAGE, shape=[2**20, 2**20], data=[])), 400)
    assert "0 values do not fill shape [1048576, 1048576] (1099511627776 values)" in message


def test_a_shape_with_more_dimensions_than_numpy_allows_is_a_400(client):
    message = error(infer(client, dict(IMAGE, shape=[1] * 70, data=[0.0])), 400)
    assert "shape has 70 dimensions; at most 32" in message


@pytest.mark.parametrize("shape", [[True, 8, 8, 1], [1.0, 8, 8, 1], "1,8,8,1"])
def test_a_shape_of_anything_but_integers_is_a_400(client, shape):
    assert "shape must be a list of non-negative integers" in error(infer(client, dict(IMAGE, shape=shape)), 400)


def test_a_huge_shape_is_refused_before_anything_is_allocated(client):
    tensor = dict(IMAGE, shape=[10**12], parameters={"binary_data_size": 4 * 10**12})
    tensor.pop("data")
    assert "runs past the 0 bytes after the JSON header" in error(infer(client, tensor), 400)


@pytest.mark.parametrize("where", ["tensor", "request", "output"])
@pytest.mark.parametrize("parameters", [5, [1], "binary"])
def test_parameters_that_are_not_an_object_are_a_400(client, where, parameters):
    if where == "tensor":
        answer = infer(client, dict(IMAGE, parameters=parameters))
    elif where == "request":
        answer = infer(client, IMAGE, parameters=parameters)
    else:
        answer = infer(client, IMAGE, outputs=[{"name": "output_0", "parameters": parameters}])
    assert '"parameters" must be an object, got' in error(answer, 400)


@pytest.mark.parametrize("field,value,expected", [
    ("datatype", ["FP32"], "datatype ['FP32'] is not supported; use one of BOOL, UINT8"),
    ("datatype", {"a": 1}, "datatype {'a': 1} is not supported"),
    ("name", {}, "name must be a non-empty string, got {}"),
    ("name", ["image"], "name must be a non-empty string"),
])
def test_a_name_or_datatype_of_the_wrong_json_type_is_a_400(client, field, value, expected):
    assert expected in error(infer(client, dict(IMAGE, **{field: value})), 400)


def test_an_integer_longer_than_python_converts_is_a_400(client):
    answer = client.post("/v2/models/digits/infer", data=b'{"inputs": [' + b"1" * 5000 + b"]}")
    assert "holds an integer of more than 4300 digits" in error(answer, 400)


@pytest.mark.parametrize("version", ["\u00b2", "\u0663", "9" * 5000, "1.0", "-1"])
@pytest.mark.parametrize("route", ["/v2/models/digits/versions/{}", "/v1/models/digits/versions/{}/metadata",
                                   "/v2/models/digits/versions/{}/ready"])
def test_a_version_that_is_not_a_plain_number_is_a_404(client, route, version):
    message = error(client.get(route.format(version)), 404)
    assert "is not a version number; versions are whole numbers like 1 or 2" in message
    assert len(message) < 300


def test_readiness_of_a_version_the_repository_lacks_is_a_404_not_a_503(client):
    assert "version 99 of model 'digits' is not available; available: 1, 2" in error(
        client.get("/v2/models/digits/versions/99/ready"), 404)
    assert client.get("/v2/models/digits/versions/1/ready").json["ready"] is True


@pytest.mark.parametrize("value", ["5_0", "+5", "\u0663", "-1", "0", "1.5", "abc", "99999"])
def test_inference_header_content_length_must_be_a_plain_length_within_the_body(client, value):
    head = json.dumps({"inputs": [dict(IMAGE, data=None, parameters={"binary_data_size": 256})]}).encode()
    answer = client.post("/v2/models/digits/infer", data=head + b"\0" * 256,
                         headers={"Inference-Header-Content-Length": value, "Content-Type": "application/octet-stream"})
    message = error(answer, 400)
    size = len(head) + 256
    assert (f"Inference-Header-Content-Length {value} is outside the body's {size} bytes: send the JSON header's "
            f"length, a whole number from 1 to {size}" in message if value in ("0", "99999") else
            f"Inference-Header-Content-Length '{value}' is not a byte count: send the JSON header's length, a "
            f"whole number from 1 to the body's {size} bytes" in message)


def test_values_beyond_the_models_float_range_are_a_400_not_infinities(client):
    answer = client.post("/v1/models/digits:predict", json={"instances": [[[[1e39]] * 8] * 8]})
    assert "holds values outside float32 range [-3.403e+38, 3.403e+38]" in error(answer, 400)


def test_a_wrong_method_answers_405_with_allow_naming_the_methods(client):
    answer = client.get("/v2/models/digits/infer")
    assert "GET is not allowed on /v2/models/digits/infer; use OPTIONS, POST" in error(answer, 405)
    assert answer.headers["Allow"] == "OPTIONS, POST"


def test_made_up_models_and_versions_add_no_metric_series(client):
    def lines_after(names: range) -> list[str]:
        for i in names:
            client.get(f"/v2/models/nope{i}")
            client.post(f"/v1/models/digits/versions/{900 + i}:predict", json={"instances": [1]})
        text = client.get("/metrics").get_data(as_text=True)
        return [line.rsplit(" ", 1)[0] for line in text.splitlines()]

    client.get("/metrics")  # the scrape's own series exist from here on
    first = lines_after(range(0, 20))
    assert not [line for line in first if "nope" in line or 'version="9' in line]
    assert lines_after(range(20, 40)) == first  # the same series, only their values move


def test_readiness_while_the_repository_loads_says_why_and_when_to_retry(repo):
    app = create_app({"repository": str(repo), "poll_interval": 0}, start=False)
    answer = app.test_client().get("/v2/health/ready")
    assert "still loading" in error(answer, 503)
    assert answer.headers["Retry-After"] == "1"


def test_counting_json_nesting_costs_little_memory_beyond_the_body():
    raw = b"[" * (8 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(Exception, match=f"JSON nests {len(raw)} levels deep"):
            parse_json(raw, max_depth=32)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * len(raw)


def test_error_messages_quote_only_an_excerpt_of_what_was_sent(client):
    message = error(infer(client, dict(IMAGE, shape=["x"] * 50_000)), 400)
    assert "shape must be a list of non-negative integers, got ['x', 'x'" in message and len(message) < 300
