"""Every route over real HTTP (a `modelpress serve` process) and through Flask's test client; auth, limits,
metrics, the status page and the OpenAPI document."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import requests

from modelpress.runtime import create_app
from tests.runtime.conftest import SERVERS

FILL = {"{model}": "digits", "{version}": "1", "{label}": "stable"}


def _fill(path: str) -> str:
    for key, value in FILL.items():
        path = path.replace(key, value)
    return path


def _body(path: str, x: np.ndarray):
    if ":predict" in path:
        return {"instances": x[:2].tolist()}
    if path.endswith("/infer"):
        return {"inputs": [{"name": "image", "datatype": "FP32", "shape": [2, 8, 8, 1],
                            "data": x[:2].ravel().tolist()}]}
    return None


def _routes(document):
    return [(method, _fill(path)) for path, item in document["paths"].items() for method in item]


def test_every_route_answers_over_real_http(server, samples):
    x, _ = samples
    document = requests.get(server.url + "/openapi.json", timeout=10).json()
    routes = _routes(document)
    assert len(routes) == 23  # 5 operational, 9 TF Serving v1, 9 Open Inference v2
    for method, path in routes:
        answer = requests.request(method, server.url + path, json=_body(path, x), timeout=10)
        assert answer.status_code == 200, (method, path, answer.text)
        if path.endswith((":predict", "/infer")):
            assert np.asarray(answer.json().get("predictions", answer.json().get("outputs"))).size > 0


def test_every_route_answers_through_the_test_client(app, client, samples):
    x, _ = samples
    document = client.get("/openapi.json").json
    rules = {r.rule for r in app.url_map.iter_rules() if r.endpoint != "static"}
    assert len(document["paths"]) == len(rules)
    for method, path in _routes(document):
        answer = client.open(path, method=method.upper(), json=_body(path, x))
        assert answer.status_code == 200, (method, path, answer.data[:300])


def test_openapi_marks_protected_routes(client):
    paths = client.get("/openapi.json").json["paths"]
    assert paths["/v2/models/{model}/infer"]["post"]["security"] == [{"bearer": []}]
    assert paths["/v1/models/{model}:predict"]["post"]["requestBody"]["required"] is True
    assert "security" not in paths["/v2/health/live"]["get"]


def test_status_page_and_json(server, samples):
    x, _ = samples
    requests.post(server.url + "/v1/models/int8:predict", json={"instances": x[:1].tolist()}, timeout=10)
    page = requests.get(server.url + "/", timeout=10)
    assert page.headers["Content-Type"].startswith("text/html")
    for word in ("digits", "edgetpu", "int8", "AVAILABLE", "stable", "p50"):
        assert word in page.text
    status = requests.get(server.url + "/status", timeout=10).json()
    assert status["ready"] and status["models"]["int8"]["latency"]["count"] >= 1


def test_metrics_count_requests_by_model_version_protocol_status(server, samples):
    x, _ = samples
    for _ in range(3):
        requests.post(server.url + "/v1/models/digits/versions/1:predict", json={"instances": x[:1].tolist()},
                      timeout=10)
    requests.post(server.url + "/v2/models/digits/infer", json={"inputs": []}, timeout=10)
    text = requests.get(server.url + "/metrics", timeout=10).text
    line = next(ln for ln in text.splitlines() if ln.startswith("modelpress_requests_total{")
                and 'model="digits"' in ln and 'version="1"' in ln and 'protocol="v1"' in ln and 'status="200"' in ln)
    assert float(line.rsplit(" ", 1)[1]) >= 3
    assert 'protocol="v2",status="400"' in text
    for name in ("modelpress_request_duration_seconds_bucket", "modelpress_compute_duration_seconds_count",
                 "modelpress_queue_duration_seconds_count", "modelpress_batch_size_bucket"):
        assert name in text
    assert 'modelpress_model_state{model="digits",state="AVAILABLE",version="2"} 1.0' in text


def test_binary_extension_by_hand_over_real_http(server, samples):
    x, _ = samples
    data = x[:4].astype("<f4").tobytes()
    head = json.dumps({"inputs": [{"name": "image", "datatype": "FP32", "shape": [4, 8, 8, 1],
                                   "parameters": {"binary_data_size": len(data)}}],
                       "parameters": {"binary_data_output": True}}).encode()
    answer = requests.post(server.url + "/v2/models/digits/infer", data=head + data, timeout=10,
                           headers={"Inference-Header-Content-Length": str(len(head))})
    assert answer.status_code == 200
    size = int(answer.headers["Inference-Header-Content-Length"])
    meta = json.loads(answer.content[:size])
    out = meta["outputs"][0]
    probs = np.frombuffer(answer.content[size:], dtype="<f4").reshape(out["shape"])
    assert out["parameters"]["binary_data_size"] == probs.nbytes and probs.shape == (4, 10)
    bad = requests.post(server.url + "/v2/models/digits/infer", data=head + data[:-4], timeout=10,
                        headers={"Inference-Header-Content-Length": str(len(head))})
    assert bad.status_code == 400 and "binary_data_size" in bad.json()["error"]


@pytest.mark.parametrize("http_server", SERVERS)
def test_oversized_and_malformed_bodies_over_real_http(start_server, repo, http_server):
    server = start_server(repo, "--max-body-bytes", "2000", "--poll-interval", "0", "--server", http_server)
    big = requests.post(server.url + "/v1/models/digits:predict", data=b"[" * 5000, timeout=10,
                        headers={"Content-Type": "application/json"})
    assert big.status_code == 413 and "2000" in big.json()["error"]

    def chunks():
        for _ in range(10):
            yield b" " * 1000

    chunked = requests.post(server.url + "/v2/models/digits/infer", data=chunks(), timeout=10)
    assert chunked.status_code in (400, 413)
    for raw in (b"\xff\xfe", b"{", b'{"inputs": "x"}', b"[" * 40 + b"]" * 40):
        answer = requests.post(server.url + "/v2/models/digits/infer", data=raw, timeout=10)
        assert answer.status_code == 400 and answer.json()["error"]
    header = requests.post(server.url + "/v2/models/digits/infer", data=b"{}", timeout=10,
                           headers={"Inference-Header-Content-Length": "99"})
    assert header.status_code == 400 and "outside the body" in header.json()["error"]
    log = server.stop()
    assert "Traceback" not in log


def test_auth_over_real_http(start_server, repo, tmp_path, samples):
    x, _ = samples
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("# service tokens\nalpha-123\nbeta-456\n")
    server = start_server(repo, "--token-file", str(tokens), "--poll-interval", "0")
    url = server.url + "/v1/models/digits:predict"
    body = {"instances": x[:1].tolist()}
    missing = requests.post(url, json=body, timeout=10)
    assert missing.status_code == 401 and "Bearer" in missing.json()["error"]
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.post(url, json=body, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
    assert requests.post(url, json=body, headers={"Authorization": "Bearer beta-456"}, timeout=10).status_code == 200
    admin = requests.post(server.url + "/admin/reload", timeout=10)
    assert admin.status_code == 401
    assert requests.get(server.url + "/v1/models/digits", timeout=10).status_code == 200  # status stays open
    assert requests.get(server.url + "/v2/health/ready", timeout=10).status_code == 200


def test_auth_off_and_from_the_environment(repo, monkeypatch, samples):
    x, _ = samples
    open_app = create_app({"repository": str(repo), "poll_interval": 0})
    try:
        assert open_app.test_client().post("/admin/reload").status_code == 200
    finally:
        open_app.modelpress.close()
    monkeypatch.setenv("MODELPRESS_TOKENS", "t1,t2")
    locked = create_app({"repository": str(repo), "poll_interval": 0})
    try:
        client = locked.test_client()
        body = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 8, 8, 1], "data": x[0].ravel().tolist()}]}
        assert client.post("/v2/models/digits/infer", json=body).status_code == 401
        allowed = client.post("/v2/models/digits/infer", json=body, headers={"Authorization": "Bearer t2"})
        assert allowed.status_code == 200
    finally:
        locked.modelpress.close()


def test_server_binds_loopback_by_default_and_logs_where(server):
    assert server.url.startswith("http://127.0.0.1:")
    assert any("serving" in line and server.url in line for line in server.lines)


def test_access_log_is_one_json_line_per_request(client, caplog, samples):
    import logging

    x, _ = samples
    with caplog.at_level(logging.INFO, logger="modelpress.access"):
        client.post("/v1/models/digits/versions/1:predict", json={"instances": x[:1].tolist()})
        client.get("/v1/models/nope")
    entries = [json.loads(r.getMessage()) for r in caplog.records if r.name == "modelpress.access"]
    assert [(e["path"], e["status"]) for e in entries] == [("/v1/models/digits/versions/1:predict", 200),
                                                           ("/v1/models/nope", 404)]
    assert entries[0]["model"] == "digits" and entries[0]["version"] == "1" and entries[0]["protocol"] == "v1"
    assert entries[0]["ms"] > 0 and entries[0]["bytes_in"] > 0


@pytest.mark.parametrize("http_server", SERVERS)
def test_several_workers_share_the_port(start_server, repo, samples, http_server):
    x, y = samples
    server = start_server(repo, "--workers", "2", "--poll-interval", "0", "--server", http_server)
    session = requests.Session()
    answers = [session.post(server.url + "/v1/models/digits:predict", json={"instances": x[i:i + 1].tolist()},
                            timeout=10) for i in range(10)]
    assert all(a.status_code == 200 for a in answers)
    assert np.mean([np.argmax(a.json()["predictions"][0]) == y[i] for i, a in enumerate(answers)]) >= 0.9
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "".join(server.lines).count("loaded model digits version 2 ") < 2:
        time.sleep(0.1)
    assert "".join(server.lines).count("loaded model digits version 2 ") == 2  # one load per worker process
