"""The standard gRPC health service (grpc.health.v1) on a real `modelpress serve --grpc-port 0` process,
through a real channel with the package's own stubs: the server as a whole answers as /v2/health/ready does,
a model's name as its readiness, an unknown name is NOT_FOUND, and SIGTERM turns everything NOT_SERVING
before the door closes, ending the Watch streams instead of holding the shutdown."""

from __future__ import annotations

import signal

import pytest
import requests

grpc = pytest.importorskip("grpc")
pytest.importorskip("grpc_health")
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from modelpress.testing.grpc import grpc_target  # noqa: E402
from modelpress.testing.server import ServerProcess  # noqa: E402
from tests.runtime.conftest import SERVERS, build_repository  # noqa: E402

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = build_repository(tmp_path_factory.mktemp("health") / "repo")
    process = ServerProcess(root, "--poll-interval", "0", "--grpc-port", "0")
    yield process
    process.stop()


def _health(server) -> tuple[grpc.Channel, health_pb2_grpc.HealthStub]:
    channel = grpc.insecure_channel(grpc_target(server))
    return channel, health_pb2_grpc.HealthStub(channel)


def _check(stub, service: str = "") -> int:
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=30).status


def _repository(server, action: str, model: str) -> None:
    answer = requests.post(f"{server.url}/v2/repository/models/{model}/{action}", timeout=60)
    assert answer.status_code == 200, answer.text


def test_a_ready_server_and_its_models_are_serving(served):
    channel, stub = _health(served)
    with channel:
        assert requests.get(served.url + "/v2/health/ready", timeout=10).status_code == 200
        assert _check(stub) == SERVING
        assert _check(stub, "inference.GRPCInferenceService") == SERVING
        assert _check(stub, "digits") == SERVING and _check(stub, "int8") == SERVING


def test_an_unknown_service_is_not_found_with_the_names_to_use(served):
    channel, stub = _health(served)
    with channel, pytest.raises(grpc.RpcError) as caught:
        _check(stub, "no-such-model")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "'no-such-model'" in caught.value.details() and "digits" in caught.value.details()


def test_a_model_answers_its_own_readiness_and_watch_follows_it(served):
    """Unloading one model makes it NOT_SERVING (the server stays SERVING: other models serve); a Watch
    stream opened before is told of each change."""
    channel, stub = _health(served)
    with channel:
        stream = stub.Watch(health_pb2.HealthCheckRequest(service="int8"), timeout=120)
        assert next(stream).status == SERVING
        _repository(served, "unload", "int8")
        try:
            assert _check(stub, "int8") == NOT_SERVING
            assert _check(stub) == SERVING and _check(stub, "digits") == SERVING
            assert next(stream).status == NOT_SERVING
        finally:
            _repository(served, "load", "int8")
        assert _check(stub, "int8") == SERVING
        assert next(stream).status == SERVING
        stream.cancel()


@pytest.mark.parametrize("broken", [False, True], ids=["empty repository", "every version failed"])
def test_a_server_with_nothing_to_serve_is_not_serving(start_server, tmp_path, broken):
    repo = tmp_path / "models"
    repo.mkdir()
    if broken:
        (repo / "broken" / "1").mkdir(parents=True)
        (repo / "broken" / "1" / "model.tflite").write_bytes(b"not a flatbuffer")
    server = start_server(repo, "--poll-interval", "0", "--grpc-port", "0")
    channel, stub = _health(server)
    with channel:
        assert requests.get(server.url + "/v2/health/ready", timeout=10).status_code == 503
        assert _check(stub) == NOT_SERVING
        if broken:
            assert _check(stub, "broken") == NOT_SERVING


@pytest.mark.parametrize("http_server", SERVERS)
def test_sigterm_turns_everything_not_serving_then_ends_the_watch_streams(start_server, repo, http_server):
    """The Watch streams hear NOT_SERVING first, then end with OK when the door closes: an open stream does
    not hold the shutdown until the drain timeout (600 s here) runs out."""
    server = start_server(repo, "--poll-interval", "0", "--grpc-port", "0", "--drain-timeout", "600",
                          "--server", http_server)
    channel, stub = _health(server)
    with channel:
        streams = {name: stub.Watch(health_pb2.HealthCheckRequest(service=name), timeout=300)
                   for name in ("", "digits")}
        assert {name: next(stream).status for name, stream in streams.items()} == {"": SERVING, "digits": SERVING}
        server.proc.send_signal(signal.SIGTERM)
        for stream in streams.values():
            assert [answer.status for answer in stream] == [NOT_SERVING]  # then the end, not an error
            assert stream.code() == grpc.StatusCode.OK
    assert server.proc.wait(timeout=120) == 0
    assert "gRPC door drained and closed" in server.stop()
