"""Both doors write their access-log lines with one function: a real `modelpress serve --grpc-port 0` process
answers HTTP and gRPC calls, and every JSON line has the same keys, each door's own status, the model and
version that answered, and the trace id the caller sent in its W3C traceparent (none for a malformed one)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import requests

grpc = pytest.importorskip("grpc")
pytest.importorskip("tritonclient.grpc")
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402

from modelpress.testing.grpc import grpc_target  # noqa: E402

TRACES = {name: f"{index:032x}" for index, name in enumerate(("http", "grpc", "grpc-missing", "flask"), 1)}


def _traceparent(name: str) -> str:
    return f"00-{TRACES[name]}-00f067aa0ba902b7-01"


def _access_lines(server, count: int, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(line.split("modelpress.access: ", 1)[1]) for line in list(server.lines)
                 if "modelpress.access: " in line]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_grpc_and_http_calls_log_the_same_fields(start_server, repo, samples):
    server = start_server(repo, "--poll-interval", "0", "--grpc-port", "0")
    x = samples[0][:2]
    answer = requests.post(f"{server.url}/v2/models/digits/infer", timeout=60, headers={
        "traceparent": _traceparent("http")}, json={"inputs": [
            {"name": "image", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]})
    assert answer.status_code == 200, answer.text
    assert requests.get(f"{server.url}/v2/models/digits/ready", timeout=10,
                        headers={"traceparent": _traceparent("flask")}).status_code == 200
    with grpc.insecure_channel(grpc_target(server)) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name="digits", raw_input_contents=[
            np.ascontiguousarray(x, "<f4").tobytes()])
        request.inputs.add(name="image", datatype="FP32", shape=list(x.shape))
        assert stub.ModelInfer(request, metadata=(("traceparent", _traceparent("grpc")),), timeout=60).outputs
        request.model_name = "no-such-model"
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(request, metadata=(("traceparent", _traceparent("grpc-missing")),), timeout=60)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    for malformed in ("00-not-a-trace", f"00-{'0' * 32}-00f067aa0ba902b7-01"):  # no trace id, not an error
        assert requests.get(f"{server.url}/v2/health/live", headers={"traceparent": malformed},
                            timeout=10).status_code == 200

    logged = _access_lines(server, 6)
    assert [line["trace_id"] for line in logged if line["path"] == "/v2/health/live"] == [None, None]
    by_trace = {line["trace_id"]: line for line in logged}
    lines = {name: by_trace.get(trace) for name, trace in TRACES.items()}
    assert all(lines.values()), (lines, server.lines[-20:])
    keys = set(lines["http"])
    assert {"ts", "remote", "method", "path", "status", "ms", "bytes_in", "bytes_out", "protocol", "model",
            "version", "trace_id"} <= keys
    assert all(set(line) == keys for line in lines.values()), lines
    http, flask, called, missing = lines["http"], lines["flask"], lines["grpc"], lines["grpc-missing"]
    assert (http["protocol"], http["status"], http["model"], http["version"]) == ("v2", 200, "digits", "2")
    assert (flask["protocol"], flask["status"], flask["path"]) == ("v2", 200, "/v2/models/digits/ready")
    assert (called["protocol"], called["status"], called["model"], called["version"]) == ("grpc", "OK", "digits", "2")
    assert called["path"] == "/inference.GRPCInferenceService/ModelInfer" and called["bytes_in"] > 512
    assert "127.0.0.1" in called["remote"] and "127.0.0.1" in missing["remote"]  # the peer, read when logged
    assert (missing["status"], missing["model"], missing["version"]) == ("NOT_FOUND", "no-such-model", None)
    assert all(line["ms"] >= 0 for line in lines.values())
