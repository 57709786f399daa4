"""OpenTelemetry tracing (the tracing extra), with the SDK's in-memory exporter: a request over HTTP v2 or
gRPC continues the caller's W3C traceparent and leaves spans for decode, queue / batch, invoke and encode,
each naming the model and version; off, no span at all."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pytest

pytest.importorskip("opentelemetry.sdk")
from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from modelpress.runtime import tracing  # noqa: E402
from modelpress.runtime.grpc import messages  # noqa: E402
from modelpress.runtime.grpc.server import GrpcDoor  # noqa: E402

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@pytest.fixture(scope="module")
def exporter():
    spans = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    return spans


@pytest.fixture
def traced(exporter):
    tracing.configure(True)  # uses the provider the process has (the in-memory one)
    exporter.clear()
    yield exporter
    tracing.configure(False)


def _request_tree(exporter, root_name: str) -> tuple:
    spans = exporter.get_finished_spans()
    roots = [s for s in spans if s.name == root_name]
    assert len(roots) == 1, [s.name for s in spans]
    root = roots[0]
    children = {s.name: s for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id}
    return root, children


def _check(root, children, stages: set[str], version: str = "2") -> None:
    assert format(root.context.trace_id, "032x") == TRACE_ID  # the caller's trace, continued
    assert format(root.parent.span_id, "016x") == PARENT_ID
    assert root.attributes["modelpress.model"] == "digits" and root.attributes["modelpress.version"] == version
    assert stages <= set(children), sorted(children)
    for name in stages:
        assert children[name].attributes["modelpress.model"] == "digits"
        if name != "decode":  # decoding comes before the lookup that finds the newest version
            assert children[name].attributes["modelpress.version"] == version


def _v2_body(x: np.ndarray) -> dict:
    return {"inputs": [{"name": "image", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]}


def test_http_v2_spans_continue_the_callers_trace(traced, make_app, repo, samples):
    x, _ = samples
    client = make_app(repo).test_client()
    answer = client.post("/v2/models/digits/infer", json=_v2_body(x[:2]), headers={"traceparent": TRACEPARENT})
    assert answer.status_code == 200
    root, children = _request_tree(traced, "POST /v2/models/{model}/infer")
    _check(root, children, {"decode", "queue", "invoke", "encode"})
    assert root.kind == trace.SpanKind.SERVER


def test_batched_requests_have_a_batch_span(traced, make_app, repo, samples):
    x, _ = samples
    client = make_app(repo, batching=True, max_queue_delay_ms=1).test_client()
    assert client.post("/v2/models/digits/infer", json=_v2_body(x[:1]),
                       headers={"traceparent": TRACEPARENT}).status_code == 200
    root, children = _request_tree(traced, "POST /v2/models/{model}/infer")
    _check(root, children, {"decode", "batch", "encode"})


def test_grpc_spans_continue_the_callers_trace_from_metadata(traced, make_app, repo, samples):
    x, _ = samples
    app = make_app(repo)
    door = GrpcDoor.start(app.modelpress, "127.0.0.1", 0, threads=2)
    try:
        request = messages.ModelInferRequest(model_name="digits", model_version="1")
        request.inputs.add(name="image", datatype="FP32", shape=[1, 8, 8, 1]).contents.fp32_contents.extend(
            x[:1].ravel().tolist())
        with grpc.insecure_channel(f"127.0.0.1:{door.port}") as channel:
            call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                       request_serializer=messages.ModelInferRequest.SerializeToString,
                                       response_deserializer=messages.ModelInferResponse.FromString)
            assert call(request, metadata=(("traceparent", TRACEPARENT),)).model_version == "1"
            bad = messages.ModelInferRequest(model_name="digits")
            with pytest.raises(grpc.RpcError):
                call(bad, metadata=(("traceparent", TRACEPARENT),))
    finally:
        door.stop(grace=1)
    spans = [s for s in traced.get_finished_spans() if s.name == "ModelInfer"]
    ok, failed = sorted(spans, key=lambda s: s.status.is_ok, reverse=True)
    children = {s.name: s for s in traced.get_finished_spans() if s.parent and s.parent.span_id == ok.context.span_id}
    _check(ok, children, {"decode", "queue", "invoke", "encode"}, version="1")
    assert failed.status.status_code == trace.StatusCode.ERROR and "needs inputs" in failed.status.description


def test_the_access_log_names_the_trace_the_span_started(traced, make_app, repo, samples, caplog):
    """A caller that sends no traceparent gets a new trace: its id is in the access-log line of each door."""
    import json
    import logging

    x, _ = samples
    app = make_app(repo, access_log=True)
    door = GrpcDoor.start(app.modelpress, "127.0.0.1", 0, threads=2)
    try:
        with caplog.at_level(logging.INFO, logger="modelpress.access"):
            assert app.test_client().post("/v2/models/digits/infer", json=_v2_body(x[:1])).status_code == 200
            request = messages.ModelInferRequest(model_name="digits")
            request.inputs.add(name="image", datatype="FP32", shape=[1, 8, 8, 1]).contents.fp32_contents.extend(
                x[:1].ravel().tolist())
            with grpc.insecure_channel(f"127.0.0.1:{door.port}") as channel:
                channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                    request_serializer=messages.ModelInferRequest.SerializeToString,
                                    response_deserializer=messages.ModelInferResponse.FromString)(request)
    finally:
        door.stop(grace=1)
    logged = {line["protocol"]: line["trace_id"] for line in
              (json.loads(r.getMessage()) for r in caplog.records if r.name == "modelpress.access")}
    spans = {span.name: format(span.context.trace_id, "032x") for span in traced.get_finished_spans()
             if span.parent is None}
    assert logged == {"v2": spans["POST /v2/models/{model}/infer"], "grpc": spans["ModelInfer"]}
    assert len(set(logged.values())) == 2


def test_no_span_when_tracing_is_off(exporter, make_app, repo, samples):
    x, _ = samples
    tracing.configure(False)
    exporter.clear()
    client = make_app(repo).test_client()
    assert client.post("/v2/models/digits/infer", json=_v2_body(x[:1]),
                       headers={"traceparent": TRACEPARENT}).status_code == 200
    assert exporter.get_finished_spans() == ()


def test_serve_exports_spans_as_the_otel_settings_say(repo, samples):
    """A real `modelpress serve --tracing` with OTEL_TRACES_EXPORTER=console: the spans reach the exporter
    the standard settings name, in the serving worker, with the caller's trace id."""
    import requests

    from modelpress.testing.server import served

    x, _ = samples
    env = {"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "edge-digits", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    with served(repo, "--poll-interval", "0", "--tracing", env=env) as server:
        answer = requests.post(server.url + "/v2/models/digits/infer", json=_v2_body(x[:1]),
                               headers={"traceparent": TRACEPARENT}, timeout=30)
        assert answer.status_code == 200
        deadline = time.monotonic() + 30
        while '"name": "invoke"' not in "".join(server.lines) and time.monotonic() < deadline:
            time.sleep(0.05)  # the batch processor exports every 100 ms
        log = server.stop()
    assert f'"trace_id": "0x{TRACE_ID}"' in log and '"name": "invoke"' in log, log[-3000:]
    assert '"service.name": "edge-digits"' in log
