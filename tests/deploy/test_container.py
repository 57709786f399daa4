"""The runtime image, built from the Dockerfile with podman and run against a /mnt/models folder as KServe
mounts it: it answers over v2, runs as non-root, passes its own health check, loses no request on SIGTERM
under load, and its build time, size and largest layers are reported. Slow (minutes): `make test-container`
runs it; skipped with the reason where no container engine works."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from modelpress.testing import container

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "runtime" / "fixtures"
TAG = "localhost/modelpress-runtime:test"


@pytest.fixture(scope="module")
def image():
    problem = container.engine_problem()
    if problem:
        pytest.skip(problem)
    seconds = container.build_image(TAG)
    size = container.image_size(TAG)
    layers = container.layer_sizes(TAG)
    print(f"\nimage {TAG}: built in {seconds:.0f} s, {size / 1e6:.0f} MB")
    for created_by, nbytes in sorted(layers, key=lambda row: -row[1])[:3]:
        print(f"  layer {nbytes / 1e6:7.1f} MB  {created_by[:90]}")
    return {"tag": TAG, "build_seconds": seconds, "bytes": size, "layers": layers}


@pytest.fixture
def models(tmp_path) -> Path:
    """One package at the root of /mnt/models, readable by any user, as KServe's storage initializer leaves it."""
    return _readable(shutil.copytree(FIXTURES / "packages" / "float32", tmp_path / "mnt-models"))


def _readable(folder: Path) -> Path:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


def _wait_ready(url: str, timeout: float = 120, model: str = "digits", **kwargs) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/v2/models/{model}/ready", timeout=5, **kwargs).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the container was not ready within {timeout} s")


def _v2_body(x: np.ndarray) -> dict:
    return {"inputs": [{"name": "image", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}


def test_image_has_no_wheel_layer(image):
    """The venv is copied from the build stage whole: no wheel folder or pip cache sits in any layer."""
    assert not any("/wheels" in created_by for created_by, _ in image["layers"])
    assert image["bytes"] > 0


def test_container_serves_v2_as_non_root_healthy_and_drains_on_sigterm(image, models):
    x, y = np.load(FIXTURES / "x_test.npy"), np.load(FIXTURES / "y_test.npy")
    checks = {}
    with container.running(image["tag"], models, env={"MODELPRESS_MODEL_NAME": "digits"}) as box:
        _wait_ready(box.url)
        # 1. answers over Open Inference v2, right on real held-out digits
        answer = requests.post(box.url + "/v2/models/digits/infer", json=_v2_body(x), timeout=60)
        assert answer.status_code == 200, answer.text
        scores = np.asarray(answer.json()["outputs"][0]["data"]).reshape(len(x), -1)
        accuracy = float((scores.argmax(axis=1) == y).mean())
        assert accuracy >= 0.9
        checks["v2 answers"] = f"200, {accuracy:.0%} of {len(x)} real digits right"
        # 2. runs as non-root
        uid = box.exec("id", "-u")
        assert uid == "1000", uid
        checks["non-root"] = f"uid {uid}"
        # 3. its HEALTHCHECK passes
        health = box.healthcheck()
        assert health.returncode == 0, health.stdout + health.stderr
        checks["health check"] = (health.stdout.strip() or "healthy")
        # 4. the gRPC door the image starts (MODELPRESS_GRPC_PORT=8081): health SERVING, ModelInfer right
        checks["gRPC door"] = _grpc_checks(box.grpc, x, y)
        # 5. SIGTERM under load: every request the server received is answered
        rows = np.tile(x, (40, 1, 1, 1))  # 4,000 rows a request: each takes the server a while
        big = json.dumps(_v2_body(rows)).encode()
        results: list = []
        started = threading.Barrier(5)

        def send() -> None:
            session = requests.Session()
            session.get(box.url + "/v2/health/live", timeout=30)  # an open connection, as a client pool holds
            started.wait()
            try:
                reply = session.post(box.url + "/v2/models/digits/infer", data=big,
                                     headers={"Content-Type": "application/json"}, timeout=120)
                results.append(reply.status_code)
            except requests.RequestException as err:
                results.append(repr(err))

        threads = [threading.Thread(target=send) for _ in range(4)]
        for thread in threads:
            thread.start()
        started.wait()
        time.sleep(0.5)  # the bodies are on their way
        exit_code = box.stop()
        for thread in threads:
            thread.join(120)
        logs = box.logs()
        assert results == [200] * 4, f"{results}\n{logs[-2000:]}"
        assert exit_code == 0, logs[-2000:]
        checks["SIGTERM under load"] = f"{results.count(200)}/4 in-flight requests answered, exit code {exit_code}"
    print("\ncontainer checks:")
    for name, outcome in checks.items():
        print(f"  {name:<20} {outcome}")


def test_container_serves_https_and_only_signed_models(image, tmp_path):
    """The trust example's settings in the image: HTTPS from a mounted certificate, the health check over
    HTTPS, and a repository where only the package signed by the mounted key becomes ready."""
    pytest.importorskip("model_signing")
    from modelpress.signing import sign_package
    from modelpress.testing.pki import CertificateAuthority, signing_key

    ca = CertificateAuthority("container test CA")
    tls = tmp_path / "tls"
    tls.mkdir()
    ca.issue(tls / "tls", "modelpress", usage="server")
    trust = tmp_path / "trust"
    trust.mkdir()
    private, _ = signing_key(trust / "signing-key")
    private.rename(tmp_path / "signing-key.pem")  # the private key stays with the publisher
    repo = tmp_path / "repo"
    for model in ("signed", "unsigned"):
        shutil.copytree(FIXTURES / "packages" / "float32", repo / model / "1")
    sign_package(repo / "signed" / "1", tmp_path / "signing-key.pem")
    env = {"MODELPRESS_TLS_CERT": "/etc/modelpress/tls/tls.crt", "MODELPRESS_TLS_KEY": "/etc/modelpress/tls/tls.key",
           "MODELPRESS_TRUST_KEYS": "/etc/modelpress/trust/signing-key.pub"}
    mounts = {_readable(tls): "/etc/modelpress/tls", _readable(trust): "/etc/modelpress/trust"}
    with container.running(image["tag"], _readable(repo), env=env, mounts=mounts, scheme="https") as box:
        verify = str(ca.write(tmp_path / "ca.crt"))
        _wait_ready(box.url, model="signed", verify=verify)
        x = np.load(FIXTURES / "x_test.npy")[:4]
        answer = requests.post(box.url + "/v2/models/signed/infer", json=_v2_body(x), verify=verify, timeout=60)
        assert answer.status_code == 200, answer.text
        refused = requests.get(box.url + "/v2/models/unsigned/ready", verify=verify, timeout=10)
        assert refused.status_code == 503 and "model.sig: signature present" in refused.json()["error"], refused.text
        health = box.healthcheck()
        assert health.returncode == 0, health.stdout + health.stderr + box.logs()[-2000:]
    print("\ncontainer with TLS and a trust key: HTTPS v2 answers, health check passes over HTTPS, the unsigned "
          f"model is not ready ({refused.json()['error'][:80]}...)")


def _grpc_checks(target: str, x: np.ndarray, y: np.ndarray) -> str:
    """The published gRPC port: the standard health service says SERVING and ModelInfer answers right."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from modelpress.testing.grpc import GrpcCase, GrpcSender, infer_body, infer_outputs

    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=60)
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=30)
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    send = GrpcSender(target, timeout=60)
    try:
        answer = send(GrpcCase("container", "ModelInfer", infer_body("digits", "image", x, raw=True)))
    finally:
        send.close()
    assert answer.code == "OK", answer
    _, outputs = infer_outputs(answer.body)
    scores = next(iter(outputs.values())).reshape(len(x), -1)
    accuracy = float((scores.argmax(axis=1) == y).mean())
    assert accuracy >= 0.9
    return f"health SERVING, ModelInfer {accuracy:.0%} of {len(x)} real digits right"
