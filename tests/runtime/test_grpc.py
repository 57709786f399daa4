"""Open Inference Protocol over gRPC against a real `modelpress serve --grpc-port 0` process, with the stock
tritonclient.grpc client (raw tensors) and its generated stubs (typed contents, malformed messages)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import requests

grpc = pytest.importorskip("grpc")
grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from modelpress.testing.grpc import grpc_target  # noqa: E402
from modelpress.testing.server import ServerProcess  # noqa: E402
from tests.runtime.conftest import build_repository  # noqa: E402

TOKEN = "grpc-s3cret"


@pytest.fixture(scope="module")
def door(tmp_path_factory):
    """One server with the gRPC door on, tokens on (the HTTP and gRPC doors share them)."""
    root = build_repository(tmp_path_factory.mktemp("grpc") / "repo")
    process = ServerProcess(root, "--poll-interval", "0", "--grpc-port", "0", env={"MODELPRESS_TOKENS": TOKEN})
    process.target = grpc_target(process)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def triton(door):
    client = grpcclient.InferenceServerClient(url=door.target)
    yield client
    client.close()


@pytest.fixture(scope="module")
def stub(door):
    channel = grpc.insecure_channel(door.target)
    yield service_pb2_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


AUTH = {"authorization": f"Bearer {TOKEN}"}
METADATA = (("authorization", f"Bearer {TOKEN}"),)


def _fails(code: grpc.StatusCode, match: str, call, *args, **kwargs) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    assert caught.value.code() == code, caught.value.details()
    assert match in caught.value.details()


def test_health_and_metadata_need_no_token(triton):
    assert triton.is_server_live() and triton.is_server_ready()
    meta = triton.get_server_metadata()
    assert meta.name == "modelpress" and "model_repository" in meta.extensions
    meta = triton.get_model_metadata("digits")
    assert meta.name == "digits" and list(meta.versions) == ["1", "2"] and meta.platform == "tflite"
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("image", "FP32", [-1, 8, 8, 1])]
    assert list(meta.outputs[0].shape) == [-1, 10]
    assert triton.is_model_ready("digits") and triton.is_model_ready("digits", model_version="1")
    for call, args in ((triton.is_model_ready, ("digits", "9")), (triton.get_model_metadata, ("missing",))):
        with pytest.raises(InferenceServerException) as caught:
            call(*args)
        assert caught.value.status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException, match="not a version number"):
        triton.get_model_metadata("digits", model_version="two")


def test_infer_real_digits_with_tritonclient(triton, samples):
    x, y = samples
    inp = grpcclient.InferInput("image", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = triton.infer("digits", [inp], outputs=[grpcclient.InferRequestedOutput("output_0")], request_id="r-1",
                          headers=AUTH)
    probs = result.as_numpy("output_0")
    assert probs.shape == (100, 10) and probs.dtype == np.float32
    assert np.mean(np.argmax(probs, axis=1) == y) >= 0.9
    answer = result.get_response()
    assert answer.id == "r-1" and answer.model_version == "2" and len(answer.raw_output_contents) == 1
    older = triton.infer("digits", [inp], model_version="1", headers=AUTH)
    assert older.get_response().model_version == "1"


def test_grpc_and_http_answer_the_same(triton, door, samples):
    x, _ = samples
    inp = grpcclient.InferInput("image", [5, 8, 8, 1], "FP32")
    inp.set_data_from_numpy(x[:5])
    over_grpc = triton.infer("digits", [inp], headers=AUTH).as_numpy("output_0")
    body = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [5, 8, 8, 1], "data": x[:5].ravel().tolist()}]}
    answer = requests.post(door.url + "/v2/models/digits/infer", json=body, headers=AUTH, timeout=30).json()
    assert np.allclose(over_grpc.ravel(), answer["outputs"][0]["data"], atol=1e-6)


def _typed_request(x: np.ndarray, model: str = "digits", **kwargs) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name=model, **kwargs)
    tensor = request.inputs.add(name="image", datatype="FP32", shape=list(x.shape))
    tensor.contents.fp32_contents.extend(x.ravel().tolist())
    return request


def test_typed_contents_in_typed_contents_out(stub, triton, samples):
    x, y = samples
    answer = stub.ModelInfer(_typed_request(x[:10], id="t-1"), metadata=METADATA)
    assert not answer.raw_output_contents and answer.id == "t-1"
    out = answer.outputs[0]
    assert out.name == "output_0" and out.datatype == "FP32" and list(out.shape) == [10, 10]
    probs = np.array(out.contents.fp32_contents, np.float32).reshape(10, 10)
    assert np.array_equal(np.argmax(probs, axis=1), y[:10])
    raw_in = grpcclient.InferInput("image", [10, 8, 8, 1], "FP32")
    raw_in.set_data_from_numpy(x[:10])
    assert np.allclose(triton.infer("digits", [raw_in], headers=AUTH).as_numpy("output_0"), probs, atol=1e-6)
    # the answer's form can be asked for: binary_data_output true gives raw bytes for typed inputs
    request = _typed_request(x[:2])
    request.parameters["binary_data_output"].bool_param = True
    raw_answer = stub.ModelInfer(request, metadata=METADATA)
    assert np.allclose(np.frombuffer(raw_answer.raw_output_contents[0], "<f4").reshape(2, 10), probs[:2], atol=1e-6)


def test_quantized_model_real_values_or_its_own_integers(stub, triton, samples):
    x, y = samples
    real = grpcclient.InferInput("image", [1, 8, 8, 1], "FP32")
    real.set_data_from_numpy(x[:1])
    probs = triton.infer("edgetpu", [real], headers=AUTH).as_numpy("output_0")
    assert probs.dtype == np.float32 and np.argmax(probs) == y[0]
    codes_in = np.round(x[:1] * 255).astype(np.uint8)  # the input scale is 1/255, zero point 0
    raw = grpcclient.InferInput("image", [1, 8, 8, 1], "UINT8")
    raw.set_data_from_numpy(codes_in)
    codes = triton.infer("edgetpu", [raw], headers=AUTH).as_numpy("output_0")
    assert codes.dtype == np.uint8 and np.argmax(codes) == y[0]
    assert np.allclose(codes * 0.00390625, probs, atol=0.01)
    typed = service_pb2.ModelInferRequest(model_name="edgetpu")  # UINT8 as typed values: uint_contents
    typed.inputs.add(name="image", datatype="UINT8", shape=[1, 8, 8, 1]).contents.uint_contents.extend(
        codes_in.ravel().tolist())
    answer = stub.ModelInfer(typed, metadata=METADATA)
    assert answer.outputs[0].datatype == "UINT8"
    assert list(answer.outputs[0].contents.uint_contents) == codes.ravel().tolist()


def test_bad_requests_are_invalid_argument_with_the_http_messages(stub, triton, samples):
    x, _ = samples
    wrong_type = grpcclient.InferInput("image", [1, 8, 8, 1], "INT32")
    wrong_type.set_data_from_numpy(np.zeros((1, 8, 8, 1), np.int32))
    wrong_shape = grpcclient.InferInput("image", [1, 64], "FP32")
    wrong_shape.set_data_from_numpy(x[:1].reshape(1, 64))
    wrong_name = grpcclient.InferInput("pixels", [1, 8, 8, 1], "FP32")
    wrong_name.set_data_from_numpy(x[:1])
    empty = grpcclient.InferInput("image", [0, 8, 8, 1], "FP32")
    empty.set_data_from_numpy(x[:0])
    for inputs, match in (([wrong_type], "expects FP32, got INT32"),
                          ([wrong_shape], "expects shape [None, 8, 8, 1], got [1, 64]"),
                          ([wrong_name], "unknown input(s) pixels; missing input(s) image"),
                          ([empty], "no rows")):
        with pytest.raises(InferenceServerException, match=re.escape(match)) as caught:
            triton.infer("digits", inputs, headers=AUTH)
        assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    short = _typed_request(x[:2])
    del short.inputs[0].contents.fp32_contents[-1]
    _fails(grpc.StatusCode.INVALID_ARGUMENT, "127 values do not fill shape [2, 8, 8, 1] (128 values)",
           stub.ModelInfer, short, metadata=METADATA)
    mixed = _typed_request(x[:1])
    mixed.raw_input_contents.append(x[:1].tobytes())
    _fails(grpc.StatusCode.INVALID_ARGUMENT, "send every input one way", stub.ModelInfer, mixed, metadata=METADATA)
    wrong_field = service_pb2.ModelInferRequest(model_name="digits")
    wrong_field.inputs.add(name="image", datatype="FP32", shape=[1, 8, 8, 1]).contents.int_contents.extend([1] * 64)
    _fails(grpc.StatusCode.INVALID_ARGUMENT, "takes its values in contents.fp32_contents, got contents.int_contents",
           stub.ModelInfer, wrong_field, metadata=METADATA)
    raw_short = service_pb2.ModelInferRequest(model_name="digits", raw_input_contents=[b"\0" * 10])
    raw_short.inputs.add(name="image", datatype="FP32", shape=[1, 8, 8, 1])
    _fails(grpc.StatusCode.INVALID_ARGUMENT, "10 bytes of raw_input_contents do not fill shape [1, 8, 8, 1] of FP32",
           stub.ModelInfer, raw_short, metadata=METADATA)
    unknown_output = _typed_request(x[:1])
    unknown_output.outputs.add(name="logits")
    _fails(grpc.StatusCode.INVALID_ARGUMENT, "output 'logits' is unknown; the model's outputs are output_0",
           stub.ModelInfer, unknown_output, metadata=METADATA)
    _fails(grpc.StatusCode.NOT_FOUND, "is not in the repository", stub.ModelInfer, _typed_request(x[:1], "nope"),
           metadata=METADATA)
    _fails(grpc.StatusCode.NOT_FOUND, "not a version number", stub.ModelInfer,
           _typed_request(x[:1], model_version="latest"), metadata=METADATA)


def test_a_malformed_message_is_invalid_argument_not_internal(door):
    with grpc.insecure_channel(door.target) as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")  # bytes in, bytes out
        _fails(grpc.StatusCode.INVALID_ARGUMENT, "is not a valid ModelInferRequest message", call,
               b"\xff\xff\xff\xff garbage", metadata=METADATA)


def test_token_is_checked_from_the_authorization_metadata(stub, samples):
    x, _ = samples
    _fails(grpc.StatusCode.UNAUTHENTICATED, "needs a bearer token", stub.ModelInfer, _typed_request(x[:1]))
    _fails(grpc.StatusCode.UNAUTHENTICATED, "needs a bearer token", stub.ModelInfer, _typed_request(x[:1]),
           metadata=(("authorization", "Bearer wrong"),))
    _fails(grpc.StatusCode.UNAUTHENTICATED, "needs a bearer token", stub.RepositoryIndex,
           service_pb2.RepositoryIndexRequest())
    assert stub.ServerReady(service_pb2.ServerReadyRequest()).ready  # health needs none


def test_repository_index_unload_and_load(triton, door):
    index = triton.get_model_repository_index(headers=AUTH)
    rows = {(m.name, m.version): m.state for m in index.models}
    assert rows[("digits", "2")] == "READY" and rows[("int8", "1")] == "READY"
    triton.unload_model("int8", headers=AUTH)
    assert not triton.is_model_ready("int8")
    x = np.zeros((1, 8, 8, 1), np.float32)
    inp = grpcclient.InferInput("image", [1, 8, 8, 1], "FP32")
    inp.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException) as caught:
        triton.infer("int8", [inp], headers=AUTH)
    assert caught.value.status() in ("StatusCode.UNAVAILABLE", "StatusCode.NOT_FOUND")
    triton.load_model("int8", headers=AUTH)
    assert triton.is_model_ready("int8")
    assert triton.infer("int8", [inp], headers=AUTH).as_numpy("output_0").shape == (1, 10)
    with pytest.raises(InferenceServerException, match="parameter.* config are not supported") as caught:
        triton.load_model("int8", config='{"backend": "onnx"}', headers=AUTH)
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"


def test_grpc_calls_are_counted_in_the_metrics(triton, stub, door, samples):
    x, _ = samples
    inp = grpcclient.InferInput("image", [1, 8, 8, 1], "FP32")
    inp.set_data_from_numpy(x[:1])
    triton.infer("digits", [inp], headers=AUTH)
    bad = _typed_request(x[:1])
    bad.inputs[0].datatype = "FP8"
    _fails(grpc.StatusCode.INVALID_ARGUMENT, "datatype 'FP8' is not supported", stub.ModelInfer, bad, metadata=METADATA)
    text = requests.get(door.url + "/metrics", timeout=30).text
    assert 'modelpress_requests_total{model="digits",protocol="grpc",status="OK",version="2"}' in text
    assert re.search(r'modelpress_requests_total\{model="digits",protocol="grpc",status="INVALID_ARGUMENT",'
                     r'version="[-2]"\} [1-9]', text)


def test_mangled_messages_get_a_clear_code_never_an_internal_error(door, triton, samples):
    """300 seeded mutations of a valid request (bytes flipped, cut, repeated): each answer is OK or a
    client error with a message, never INTERNAL / UNKNOWN, and the server still serves afterwards."""
    x, _ = samples
    valid = _typed_request(x[:2]).SerializeToString()
    raw = service_pb2.ModelInferRequest(model_name="edgetpu", raw_input_contents=[x[:1].astype("<f4").tobytes()])
    raw.inputs.add(name="image", datatype="FP32", shape=[1, 8, 8, 1])
    rng = np.random.default_rng(21)
    codes = set()
    with grpc.insecure_channel(door.target) as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        for case in range(300):
            data = bytearray(valid if case % 2 else raw.SerializeToString())
            kind = case % 3
            if kind == 0:
                for at in rng.integers(0, len(data), size=int(rng.integers(1, 6))):
                    data[at] = int(rng.integers(0, 256))
            elif kind == 1:
                data = data[:int(rng.integers(0, len(data)))]
            else:
                at = int(rng.integers(0, len(data)))
                data = data[:at] + data[at:at + 40] * int(rng.integers(2, 5)) + data[at:]
            try:
                call(bytes(data), metadata=METADATA, timeout=30)
                codes.add("OK")
            except grpc.RpcError as err:
                codes.add(err.code().name)
                assert err.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), err.details()
                assert err.details(), err.code()
    assert codes <= {"OK", "INVALID_ARGUMENT", "NOT_FOUND"}, codes
    assert "INVALID_ARGUMENT" in codes
    assert triton.is_server_live() and triton.is_model_ready("digits")
