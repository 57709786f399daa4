"""Dynamic batching: concurrent requests merged into one invoke, answers split back correctly, and a
bounded queue that answers 503 with Retry-After."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import requests

from tests.runtime.conftest import FakeBackend


def _adder_body(rows: np.ndarray) -> dict:
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": list(rows.shape), "data": rows.ravel().tolist()}]}


def test_concurrent_requests_share_one_invoke(fake_app):
    app = fake_app(batching=True, max_batch_size=16, max_queue_delay_ms=50, pool_size=1, threads=16)
    FakeBackend.delay, FakeBackend.calls = 0.02, []  # forget the warm-up call
    rng = np.random.default_rng(0)
    bodies = [rng.normal(size=(1 + i % 3, 4)).astype(np.float32) for i in range(16)]

    def call(rows):
        return app.test_client().post("/v2/models/adder/infer", json=_adder_body(rows))

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(call, bodies))
    for rows, answer in zip(bodies, answers):
        assert answer.status_code == 200
        out = answer.json["outputs"][0]
        assert out["shape"] == [len(rows), 1]
        assert np.allclose(out["data"], rows.sum(axis=1), atol=1e-5)
    assert max(FakeBackend.calls) > 1
    assert sum(FakeBackend.calls) == sum(len(b) for b in bodies)
    assert max(FakeBackend.calls) <= 16


def test_full_queue_answers_503_with_retry_after(fake_app):
    app = fake_app(batching=True, max_batch_size=1, max_queue_delay_ms=0, max_queue_size=1, pool_size=1)
    FakeBackend.delay = 0.3
    rows = np.ones((1, 4), np.float32)
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: app.test_client().post("/v2/models/adder/infer", json=_adder_body(rows)),
                                range(6)))
    codes = sorted(a.status_code for a in answers)
    assert 200 in codes and 503 in codes
    busy = next(a for a in answers if a.status_code == 503)
    assert busy.headers["Retry-After"] == "1" and "max_queue_size 1" in busy.json["error"]


def test_fixed_batch_models_are_not_batched(make_app, repo):
    app = make_app(repo, batching=True)
    status = app.test_client().get("/status").json["models"]
    assert status["edgetpu"]["versions"][0]["batching"] is False
    assert status["digits"]["versions"][0]["batching"] is True


def test_real_model_batches_under_concurrency_over_http(start_server, repo, samples):
    x, _ = samples
    server = start_server(repo, "--batching", "--max-queue-delay-ms", "20", "--threads", "16",
                          "--poll-interval", "0")
    url = server.url + "/v1/models/digits/versions/1:predict"
    alone = [requests.post(url, json={"instances": x[i:i + 1].tolist()}, timeout=10).json()["predictions"]
             for i in range(32)]
    with ThreadPoolExecutor(16) as pool:
        merged = list(pool.map(lambda i: requests.post(url, json={"instances": x[i:i + 1].tolist()},
                                                       timeout=10).json()["predictions"], range(32)))
    assert np.allclose(alone, merged, atol=1e-6)
    metrics = requests.get(server.url + "/metrics", timeout=10).text
    count = float(re.search(r'modelpress_batch_size_count\{model="digits",version="1"\} (\S+)', metrics).group(1))
    total = float(re.search(r'modelpress_batch_size_sum\{model="digits",version="1"\} (\S+)', metrics).group(1))
    assert total == 64 and count < 64  # 64 requests of one row each, in fewer invokes
