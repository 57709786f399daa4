"""Open Inference Protocol v2 against a real `modelpress serve` process, with the stock tritonclient."""

from __future__ import annotations

import numpy as np
import pytest

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402


@pytest.fixture(scope="module")
def triton(server):
    client = httpclient.InferenceServerClient(url=server.hostport, concurrency=4)
    yield client
    client.close()


def test_server_health_and_metadata(triton):
    assert triton.is_server_live()
    assert triton.is_server_ready()
    meta = triton.get_server_metadata()
    assert meta["name"] == "modelpress" and "binary_tensor_data" in meta["extensions"]


def test_model_metadata_and_readiness(triton):
    meta = triton.get_model_metadata("digits")
    assert meta["name"] == "digits" and meta["versions"] == ["1", "2"]
    assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 8, 8, 1]}]
    assert meta["outputs"][0]["shape"] == [-1, 10]
    assert triton.get_model_metadata("digits", model_version="1")["parameters"]["version"] == "1"
    assert triton.is_model_ready("digits")
    assert triton.is_model_ready("digits", model_version="1")
    assert not triton.is_model_ready("digits", model_version="9")
    with pytest.raises(InferenceServerException, match="not in the repository"):
        triton.get_model_metadata("missing")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_real_digits(triton, samples, binary):
    x, y = samples
    inp = httpclient.InferInput("image", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = httpclient.InferRequestedOutput("output_0", binary_data=binary)
    result = triton.infer("digits", [inp], outputs=[out], request_id="r-1")
    probs = result.as_numpy("output_0")
    assert probs.shape == (100, 10) and probs.dtype == np.float32
    assert np.mean(np.argmax(probs, axis=1) == y) >= 0.9
    assert result.get_response()["id"] == "r-1"
    assert result.get_response()["model_version"] == "2"


def test_binary_and_json_answers_agree_and_default_is_binary(triton, samples):
    x, _ = samples
    inp = httpclient.InferInput("image", [3, 8, 8, 1], "FP32")
    inp.set_data_from_numpy(x[:3], binary_data=True)
    default = triton.infer("digits", [inp], model_version="1")  # no outputs named: binary_data_output
    assert "data" not in default.get_response()["outputs"][0]
    inp.set_data_from_numpy(x[:3], binary_data=False)
    as_json = triton.infer("digits", [inp], model_version="1",
                           outputs=[httpclient.InferRequestedOutput("output_0", binary_data=False)])
    assert np.allclose(default.as_numpy("output_0"), as_json.as_numpy("output_0"))


def test_quantized_model_real_values_or_its_own_integers(triton, samples):
    x, y = samples
    real = httpclient.InferInput("image", [1, 8, 8, 1], "FP32")
    real.set_data_from_numpy(x[:1])
    probs = triton.infer("edgetpu", [real]).as_numpy("output_0")
    assert probs.dtype == np.float32 and np.argmax(probs) == y[0]
    raw = httpclient.InferInput("image", [1, 8, 8, 1], "UINT8")
    raw.set_data_from_numpy(np.round(x[:1] * 255).astype(np.uint8))  # the input scale is 1/255, zero point 0
    codes = triton.infer("edgetpu", [raw]).as_numpy("output_0")
    assert codes.dtype == np.uint8 and np.argmax(codes) == y[0]
    assert np.allclose(codes * 0.00390625, probs, atol=0.01)


def test_bad_infer_requests_name_what_was_expected(triton, samples):
    x, _ = samples
    wrong_type = httpclient.InferInput("image", [1, 8, 8, 1], "INT32")
    wrong_type.set_data_from_numpy(np.zeros((1, 8, 8, 1), np.int32))
    with pytest.raises(InferenceServerException, match="expects FP32, got INT32"):
        triton.infer("digits", [wrong_type])
    wrong_shape = httpclient.InferInput("image", [1, 64], "FP32")
    wrong_shape.set_data_from_numpy(x[:1].reshape(1, 64))
    with pytest.raises(InferenceServerException, match=r"expects shape \[None, 8, 8, 1\], got \[1, 64\]"):
        triton.infer("digits", [wrong_shape])
    wrong_name = httpclient.InferInput("pixels", [1, 8, 8, 1], "FP32")
    wrong_name.set_data_from_numpy(x[:1])
    with pytest.raises(InferenceServerException, match="unknown input.* pixels; missing input.* image"):
        triton.infer("digits", [wrong_name])
    empty = httpclient.InferInput("image", [0, 8, 8, 1], "FP32")
    empty.set_data_from_numpy(x[:0])
    with pytest.raises(InferenceServerException, match="no rows"):
        triton.infer("edgetpu", [empty])
