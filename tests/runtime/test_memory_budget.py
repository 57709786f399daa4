"""The memory budget against a real `modelpress serve` process: models load on their first request, the
least recently used idle one is unloaded when the next would not fit, a request that waits too long gets
a 503 with Retry-After, and the memory of an unloaded model really goes back to the system."""

from __future__ import annotations

import shutil
import time

import numpy as np
import psutil
import pytest
import requests

from modelpress.manifest import read_manifest
from modelpress.runtime.memory import package_estimate
from modelpress.testing.server import serving_pid
from modelpress.tflite_interpreter import TFLiteModel
from tests.runtime.conftest import PACKAGES, SERVERS

httpclient = pytest.importorskip("tritonclient.http")


def _two_models(root):
    for name in ("alpha", "beta"):
        shutil.copytree(PACKAGES / "float32", root / name / "1")
    return root


def _metric(server, name: str, **labels) -> float:
    text = requests.get(server.url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()))


def _wait_state(client, name: str, state: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if {r["state"] for r in client.get_model_repository_index() if r["name"] == name} == {state}:
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} did not become {state} within {limit:.0f} s")


def test_a_budget_that_fits_one_of_two_models_serves_both_by_turns(start_server, tmp_path, samples):
    x, _ = samples
    repo = _two_models(tmp_path / "repo")
    folder = repo / "alpha" / "1"
    estimate = package_estimate(folder, read_manifest(folder), pool_size=2)  # --threads 2: 2 interpreters
    server = start_server(repo, "--poll-interval", "0", "--threads", "2", "--max-memory", str(int(estimate * 1.5)))
    client = httpclient.InferenceServerClient(url=server.hostport)
    rows = client.get_model_repository_index()
    assert {r["state"] for r in rows} == {"UNAVAILABLE"}  # nothing loads before it is asked for
    assert all("loads on its first request" in r["reason"] for r in rows)

    (want,) = TFLiteModel(PACKAGES / "float32" / "model.tflite").predict([x[:4]])
    for i in range(10):
        model = ("alpha", "beta")[i % 2]
        inp = httpclient.InferInput("image", [4, 8, 8, 1], "FP32")
        inp.set_data_from_numpy(x[:4])
        np.testing.assert_allclose(client.infer(model, [inp]).as_numpy("output_0"), want, rtol=1e-5, atol=1e-6)

    ready = [r["name"] for r in client.get_model_repository_index() if r["state"] == "READY"]
    assert ready == ["beta"]  # the budget holds one of them: the last one asked for
    evicted = next(r for r in client.get_model_repository_index() if r["name"] == "alpha")
    assert "to make room for beta" in evicted["reason"]
    assert _metric(server, "modelpress_model_evictions_total") == 9  # every switch after the first
    assert _metric(server, "modelpress_model_loads_total") == 10
    assert _metric(server, "modelpress_on_demand_waits_total", outcome="loaded") == 10
    beta = next(r for r in client.get_model_repository_index() if r["name"] == "beta")
    assert _metric(server, "modelpress_memory_used_bytes", model="beta") == beta["memory_bytes"] >= estimate
    assert _metric(server, "modelpress_memory_used_bytes", model="alpha") == 0
    assert _metric(server, "modelpress_memory_budget_bytes") == int(estimate * 1.5)
    client.close()


def test_a_request_that_waits_past_load_wait_gets_503_with_retry_after(start_server, tmp_path, samples):
    x, _ = samples
    repo = _two_models(tmp_path / "repo")
    (repo / "alpha" / "config.yaml").write_text("pool_size: 64\n")  # 64 interpreters: a load of some ms
    server = start_server(repo, "--poll-interval", "0", "--max-memory", "1GiB", "--load-wait", "0")
    body = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 8, 8, 1], "data": x[0].ravel().tolist()}]}
    first = requests.post(server.url + "/v2/models/alpha/infer", json=body, timeout=30)
    assert first.status_code == 503 and int(first.headers["Retry-After"]) >= 1
    assert "loaded on demand" in first.json()["error"] and "on-demand model load" in first.headers["Server-Timing"]
    deadline = time.monotonic() + 30
    while (answer := requests.post(server.url + "/v2/models/alpha/infer", json=body, timeout=30)).status_code == 503:
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.05)
    assert answer.status_code == 200
    assert _metric(server, "modelpress_on_demand_waits_total", model="alpha", outcome="timeout") >= 1


def test_a_model_larger_than_the_whole_budget_is_refused_clearly(start_server, tmp_path, samples):
    x, _ = samples
    repo = _two_models(tmp_path / "repo")
    server = start_server(repo, "--poll-interval", "0", "--max-memory", "1000")
    body = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 8, 8, 1], "data": x[0].ravel().tolist()}]}
    answer = requests.post(server.url + "/v2/models/alpha/infer", json=body, timeout=30)
    assert answer.status_code == 503 and "more than the whole memory budget" in answer.json()["error"]
    assert "--max-memory" in answer.json()["error"]


@pytest.mark.parametrize("http_server", SERVERS)
def test_memory_is_returned_to_the_system_after_an_unload(start_server, tmp_path, http_server):
    repo = _two_models(tmp_path / "repo")
    (repo / "beta" / "config.yaml").write_text("pool_size: 96\n")  # 96 interpreters: a load worth measuring
    server = start_server(repo, "--poll-interval", "0", "--model-control", "explicit", "--server", http_server)
    client = httpclient.InferenceServerClient(url=server.hostport)
    process = psutil.Process(serving_pid(server.proc.pid))
    client.load_model("alpha")  # the interpreter library and first-load costs are paid once, before measuring
    client.unload_model("alpha")
    _wait_state(client, "alpha", "UNAVAILABLE")

    before = process.memory_info().rss
    client.load_model("beta")
    loaded = process.memory_info().rss
    client.unload_model("beta")
    _wait_state(client, "beta", "UNAVAILABLE")
    after = process.memory_info().rss
    grown = loaded - before
    assert grown > 8 * 2**20, f"the load grew RSS by {grown / 2**20:.1f} MiB only: nothing to measure"
    assert after <= before * 1.10, f"RSS {before / 2**20:.1f} MiB before load, {after / 2**20:.1f} after unload"
    assert after - before <= 0.25 * grown, f"{(after - before) / 2**20:.1f} of {grown / 2**20:.1f} MiB kept"
    client.close()


def test_new_versions_under_a_budget_reach_resident_and_evicted_models(make_app, tmp_path, samples):
    from tests.runtime.conftest import add_version

    x, _ = samples
    repo = _two_models(tmp_path / "repo")
    folder = repo / "alpha" / "1"
    estimate = package_estimate(folder, read_manifest(folder), pool_size=1)
    app = make_app(repo, pool_size=1, max_memory=str(int(estimate * 1.5)))
    client = app.test_client()
    body = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 8, 8, 1], "data": x[0].ravel().tolist()}]}
    assert client.post("/v2/models/alpha/infer", json=body).json["model_version"] == "1"

    add_version(repo, "alpha", 2, "int8")   # alpha is loaded: the scan swaps its version within the budget
    add_version(repo, "beta", 2, "int8")    # beta is not: its next request loads the new version
    app.modelpress.registry.scan()
    ready = {(r["name"], r["version"]) for r in client.post("/v2/repository/index").json if r["state"] == "READY"}
    assert ready == {("alpha", "2")}
    assert client.post("/v2/models/beta/infer", json=body).json["model_version"] == "2"
    ready = {(r["name"], r["version"]) for r in client.post("/v2/repository/index").json if r["state"] == "READY"}
    assert ready == {("beta", "2")}  # alpha made room
