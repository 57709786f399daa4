"""The gRPC door's own promises: the committed descriptor is current and speaks the same wire format as
tritonclient's; settings and ports fail clearly; messages over the body cap are refused; SIGTERM drains the
calls in flight on both HTTP servers."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from modelpress.errors import UsageError
from modelpress.runtime.config import RuntimeConfig
from modelpress.testing.grpc import grpc_target
from modelpress.testing.server import ROOT, ServerProcess
from tests.runtime.conftest import SERVERS

grpc = pytest.importorskip("grpc")


def test_committed_descriptor_matches_the_proto():
    pytest.importorskip("grpc_tools")
    from google.protobuf import descriptor_pb2

    from modelpress.runtime.grpc import descriptor, generate

    fresh = descriptor_pb2.FileDescriptorProto.FromString(generate.compile_proto())
    committed = descriptor_pb2.FileDescriptorProto.FromString(descriptor.SERIALIZED)
    assert committed == fresh, "inference.proto changed: run python -m modelpress.runtime.grpc.generate"
    assert generate.module_text(descriptor.SERIALIZED) == generate.TARGET.read_text(), "descriptor.py was edited"


def _fields(message) -> dict:
    return {f.name: (f.number, f.type, f.label) for f in message.fields}


def test_every_message_speaks_tritonclients_wire_format():
    """Same service path, and for each field modelpress defines the same number, type and cardinality as the
    stock client's own generated messages (the two live in separate descriptor pools, in one process)."""
    service_pb2 = pytest.importorskip("tritonclient.grpc.service_pb2")
    from modelpress.runtime.grpc import messages

    theirs = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    ours = messages._POOL.FindServiceByName(messages.SERVICE)
    assert ours.full_name == theirs.full_name == "inference.GRPCInferenceService"
    checked = 0

    def compare(mine, other):
        nonlocal checked
        for name, spec in _fields(mine).items():
            assert _fields(other)[name] == spec, f"{mine.full_name}.{name}"
            checked += 1
        for nested in mine.nested_types:
            if not nested.GetOptions().map_entry:
                compare(nested, other.nested_types_by_name[nested.name])

    for method in ours.methods:
        other = theirs.methods_by_name[method.name]
        compare(method.input_type, other.input_type)
        compare(method.output_type, other.output_type)
    compare(messages.InferTensorContents.DESCRIPTOR, service_pb2.InferTensorContents.DESCRIPTOR)
    assert checked > 60


@pytest.mark.parametrize("settings, match", [
    ({"grpc_port": 70000}, "grpc_port must be 0..65535"),
    ({"grpc_port": 8500, "port": 8500}, "is the HTTP port too"),
    ({"grpc_port": 0, "workers": 2}, "give a port number"),
])
def test_bad_grpc_settings_say_what_to_do(settings, match):
    with pytest.raises(UsageError, match=match):
        RuntimeConfig.from_dict(settings)


def test_grpc_port_from_the_environment(monkeypatch):
    monkeypatch.setenv("MODELPRESS_GRPC_PORT", "8081")
    assert RuntimeConfig.load(None).grpc_port == 8081
    assert RuntimeConfig().grpc_port is None  # off unless asked for


def test_a_taken_grpc_port_is_one_clear_error(repo):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "modelpress.cli.main", "serve", str(repo), "--port", "0",
                               "--grpc-port", str(port)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "pick another --grpc-port" in done.stderr
    assert "Traceback" not in done.stderr


def _request(rows: int, model: str = "digits"):
    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelInferRequest(model_name=model, raw_input_contents=[np.zeros((rows, 8, 8, 1),
                                                                                           "<f4").tobytes()])
    request.inputs.add(name="image", datatype="FP32", shape=[rows, 8, 8, 1])
    return request


def test_a_message_over_the_body_cap_is_resource_exhausted(start_server, repo):
    from tritonclient.grpc import service_pb2_grpc

    server = start_server(repo, "--poll-interval", "0", "--grpc-port", "0", "--max-body-bytes", "20000")
    with grpc.insecure_channel(grpc_target(server)) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        assert list(stub.ModelInfer(_request(10)).outputs[0].shape) == [10, 10]  # 2,560 bytes of values
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(_request(100))  # 25,600 bytes
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "20000" in caught.value.details()


@pytest.mark.parametrize("http_server", SERVERS)
def test_sigterm_drains_grpc_calls_in_flight(start_server, repo, http_server):
    """Calls keep coming from four clients when SIGTERM arrives: each one is answered or refused with
    UNAVAILABLE (never cut off), some finish after the signal, and the process exits cleanly."""
    from tritonclient.grpc import service_pb2_grpc

    server: ServerProcess = start_server(repo, "--poll-interval", "0", "--grpc-port", "0", "--threads", "4",
                                         "--server", http_server, "--max-body-bytes", str(64 * 2**20))
    channel = grpc.insecure_channel(grpc_target(server), options=[("grpc.max_send_message_length", -1)])
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    request = _request(20000)  # 5 MB of values: a call the server needs a while to read, run and answer
    outcomes: list[tuple[str, float]] = []
    started = threading.Barrier(5)

    def client() -> None:
        started.wait()
        while True:
            try:
                stub.ModelInfer(request, timeout=120)
                outcomes.append(("OK", time.time()))
            except grpc.RpcError as err:
                outcomes.append((err.code().name, time.time()))
                return

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    started.wait()
    while sum(1 for code, _ in outcomes if code == "OK") < 8:
        time.sleep(0.01)
    signalled = time.time()
    server.proc.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(timeout=120)
    channel.close()
    assert server.proc.wait(timeout=60) == 0
    log = server.stop()
    codes = {code for code, _ in outcomes}
    assert codes <= {"OK", "UNAVAILABLE"}, (codes, log[-2000:])
    assert any(code == "OK" and at > signalled for code, at in outcomes), log[-2000:]
    assert "gRPC door drained and closed" in log


@pytest.mark.parametrize("datatype", ["FP32", "FP64", "INT8", "UINT16", "INT64", "BOOL"])
@pytest.mark.parametrize("count", [1, 31, 32, 4096])
def test_typed_contents_round_trip_exactly(datatype, count):
    """Typed contents in and out, for lengths whose packed size crosses a varint byte (FP32 / FP64 are read and
    written as one buffer, the others value by value)."""
    from modelpress.runtime.codecs.arrays import V2_DATATYPES
    from modelpress.runtime.grpc import messages
    from modelpress.runtime.grpc.tensors import CONTENTS, add_outputs, grpc_inputs

    dtype = np.dtype(V2_DATATYPES[datatype])
    values = np.random.default_rng(count).integers(0, 2 if dtype.kind == "b" else 100, count).astype(dtype)
    if dtype.kind == "f":
        values = values / 7
    field = CONTENTS[datatype][0]
    request = messages.ModelInferRequest(model_name="m")
    getattr(request.inputs.add(name="x", datatype=datatype, shape=[count]).contents, field).extend(values.tolist())
    (name, array), = grpc_inputs(messages.ModelInferRequest.FromString(request.SerializeToString()))
    assert name == "x" and array.dtype == dtype and np.array_equal(array, values)
    answer = messages.ModelInferResponse()
    add_outputs(answer, {"y": array}, ["y"], raw=False)
    out = messages.ModelInferResponse.FromString(answer.SerializeToString()).outputs[0]
    assert out.datatype == datatype and list(out.shape) == [count]
    assert np.array_equal(np.array(getattr(out.contents, field)).astype(dtype), values)


def test_raw_and_typed_inputs_are_told_apart_as_sent():
    """Raw requests skip looking for typed values only when no contents were sent: typed values beside raw
    ones are still refused, an empty contents message beside raw bytes is not a mix."""
    from modelpress.errors import BadRequestError
    from modelpress.runtime.grpc import messages
    from modelpress.runtime.grpc.tensors import grpc_inputs

    x = np.arange(6, dtype=np.float32).reshape(2, 3)

    def parsed(request):
        return grpc_inputs(messages.ModelInferRequest.FromString(request.SerializeToString()))

    request = messages.ModelInferRequest(model_name="m", raw_input_contents=[x.astype("<f4").tobytes()])
    tensor = request.inputs.add(name="x", datatype="FP32", shape=[2, 3])
    tensor.contents.SetInParent()  # present on the wire, with no values
    (name, array), = parsed(request)
    assert name == "x" and array.dtype == np.float32 and np.array_equal(array, x)
    tensor.contents.int64_contents.append(1)
    with pytest.raises(BadRequestError, match="has contents.int64_contents while the request uses raw_input_contents"):
        parsed(request)


@pytest.mark.parametrize("dtype", [">f4", "<f4", ">i8", "u1", "?", "<f2"])
def test_raw_outputs_are_little_endian_whatever_the_array_order(dtype):
    """Raw output bytes are little-endian (the protocol's order) for arrays in either byte order, and the
    datatype is named from the dtype (FP16, which has no typed field, goes raw even when typed is asked)."""
    from modelpress.runtime.codecs.arrays import v2_datatype
    from modelpress.runtime.grpc import messages
    from modelpress.runtime.grpc.tensors import add_outputs

    values = (np.arange(12) % 2).astype(dtype).reshape(3, 4)
    answer = messages.ModelInferResponse()
    add_outputs(answer, {"y": values}, ["y"], raw=np.dtype(dtype).kind != "b" or dtype == "<f2")
    out = messages.ModelInferResponse.FromString(answer.SerializeToString())
    assert out.outputs[0].datatype == v2_datatype(values.dtype) and list(out.outputs[0].shape) == [3, 4]
    if out.raw_output_contents:
        got = np.frombuffer(out.raw_output_contents[0], np.dtype(dtype).newbyteorder("<")).reshape(3, 4)
    else:
        got = np.array(out.outputs[0].contents.bool_contents).reshape(3, 4)
    assert np.array_equal(got, values)


def test_the_in_process_handler_answers_as_the_door_does(app, samples):
    """The ModelInfer handler without a transport (what plane_cpu_bench times) gives the HTTP door's answer
    for real digits, and a refused call says why."""
    from modelpress.testing.grpc import infer_body, infer_outputs, model_infer_in_process
    x = samples[0][:1]
    call = model_infer_in_process(app.modelpress)
    version, outputs = infer_outputs(call(infer_body("digits", "image", x, raw=True)))
    http = app.test_client().post("/v2/models/digits/infer", json={"inputs": [
        {"name": "image", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}).get_json()
    assert version == http["model_version"]
    np.testing.assert_allclose(next(iter(outputs.values())).ravel(), http["outputs"][0]["data"], rtol=1e-6)
    with pytest.raises(RuntimeError, match="INVALID_ARGUMENT.*expects shape"):
        call(infer_body("digits", "image", x[:, :4], raw=True))
