"""The model repository: version policies, labels, hot reload under load, corrupt and incomplete packages."""

from __future__ import annotations

import shutil
import threading
import time

import numpy as np
import pytest
import requests

from tests.runtime.conftest import PACKAGES, add_version


def _corrupt(repo, model: str, version: int):
    folder = add_version(repo, model, version, "float32")
    (folder / "model.tflite").write_bytes(b"this is not a flatbuffer" * 10)
    return folder


def _states(client, model):
    return {row["version"]: row for row in client.get("/status").json["models"][model]["versions"]}


def test_hot_reload_under_load_loses_no_request(start_server, repo, samples):
    x, _ = samples
    server = start_server(repo, "--poll-interval", "0.2", "--threads", "8")
    body = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 8, 8, 1], "data": x[0].ravel().tolist()}]}
    failures, versions, stop = [], set(), threading.Event()

    def load():
        session = requests.Session()
        while not stop.is_set():
            answer = session.post(server.url + "/v2/models/digits/infer", json=body, timeout=10)
            if answer.status_code != 200:
                failures.append(answer.text)
            else:
                versions.add(answer.json()["model_version"])

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20  # the old version answers under load first (a fixed sleep lost this race on CI)
    while time.monotonic() < deadline and "2" not in versions and not failures:
        time.sleep(0.05)
    add_version(repo, "digits", 3, "float32")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "3" not in versions:
        time.sleep(0.1)
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == []
    assert versions == {"2", "3"}
    status = requests.get(server.url + "/v1/models/digits", timeout=10).json()["model_version_status"]
    states = {row["version"]: row["state"] for row in status}
    assert states["3"] == "AVAILABLE" and states["2"] == "AVAILABLE"   # latest 2
    assert states["1"] in ("UNLOADING", "END")
    log = server.stop()
    assert "loaded model digits version 3" in log and "unloaded model digits version 1" in log


def test_a_corrupt_model_fails_alone(make_app, repo, samples):
    x, y = samples
    (repo / "broken").mkdir()
    _corrupt(repo, "broken", 1)
    client = make_app(repo).test_client()
    row = _states(client, "broken")[1]
    assert row["state"] == "FAILED" and "not a valid TFLite model" in row["error"]
    v1 = client.get("/v1/models/broken").json["model_version_status"][0]
    assert v1["state"] == "END" and v1["status"]["error_code"] == "UNKNOWN" and v1["status"]["error_message"]
    assert client.get("/v2/models/broken/ready").status_code == 503
    answer = client.post("/v1/models/broken:predict", json={"instances": x[:1].tolist()})
    assert answer.status_code == 503 and "version 1 failed" in answer.json["error"]
    good = client.post("/v1/models/digits:predict", json={"instances": x[:20].tolist()})
    assert np.mean(np.argmax(good.json["predictions"], 1) == y[:20]) >= 0.9


def test_a_failed_new_version_leaves_the_previous_serving(make_app, repo):
    client = make_app(repo).test_client()
    _corrupt(repo, "digits", 3)
    assert client.post("/admin/reload").status_code == 200
    states = _states(client, "digits")
    assert states[3]["state"] == "FAILED" and states[2]["state"] == "AVAILABLE" and states[1]["state"] == "AVAILABLE"
    assert client.get("/v2/models/digits").json["parameters"]["version"] == "2"
    shutil.rmtree(repo / "digits" / "3")
    add_version(repo, "digits", 3, "float32")  # fixed: the folder's contents changed, so it is retried
    client.post("/admin/reload")
    assert client.get("/v2/models/digits").json["parameters"]["version"] == "3"
    assert _states(client, "digits")[3]["error"] is None


def test_an_incomplete_folder_is_never_served(make_app, repo):
    client = make_app(repo).test_client()
    partial = repo / "digits" / "7"
    partial.mkdir()
    data = (PACKAGES / "float32" / "model.tflite").read_bytes()
    (partial / "model.tflite").write_bytes(data[: len(data) // 2])  # half copied, no manifest yet
    client.post("/admin/reload")
    assert _states(client, "digits")[7]["state"] == "FAILED"  # a bare model file is served once it loads
    assert client.get("/v2/models/digits").json["parameters"]["version"] == "2"


@pytest.mark.parametrize("policy, served", [
    ("latest", [3]), ("{latest: 2}", [3, 2]), ("all", [3, 2, 1]), ("{specific: [1, 3]}", [3, 1]),
])
def test_version_policies(make_app, repo, policy, served):
    add_version(repo, "digits", 3, "float32")
    (repo / "digits" / "config.yaml").write_text(f"version_policy: {policy}\nlabels: {{stable: 1}}\n")
    client = make_app(repo).test_client()
    available = [int(r["version"]) for r in client.get("/v1/models/digits").json["model_version_status"]
                 if r["state"] == "AVAILABLE"]
    assert available == served
    stable = client.get("/v1/models/digits/labels/stable/metadata")
    assert stable.status_code == (200 if 1 in served else 404)


def test_a_bad_model_config_is_reported(make_app, repo):
    (repo / "digits" / "config.yaml").write_text("version_policy: newest\n")
    client = make_app(repo).test_client()
    first = client.get("/status").json["models"]["digits"]["versions"][0]
    assert first["state"] == "CONFIG_ERROR" and "version_policy 'newest'" in first["error"]


def test_a_removed_model_is_unloaded(make_app, repo):
    client = make_app(repo).test_client()
    shutil.rmtree(repo / "int8")
    client.post("/admin/reload")
    assert client.get("/v1/models/int8").status_code == 404
    assert "int8" not in client.get("/status").json["models"]


def test_a_replaced_version_finishes_its_in_flight_requests_first(fake_app, fake_repo):
    from tests.runtime.conftest import write_fake_package

    registry = fake_app(unload_timeout=10).modelpress.registry
    x = np.ones((2, 4), np.float32)
    with registry.acquire("adder") as old:
        assert old.version == 1
        write_fake_package(fake_repo / "adder" / "2")
        registry.scan()                          # latest 1: version 2 takes traffic, version 1 retires
        with registry.acquire("adder") as new:
            assert new.version == 2 and new.inflight == 1
        time.sleep(0.2)
        assert old.state == "UNLOADING"          # still holding our request
        assert np.allclose(old.predict([x])[0], 4.0)
    deadline = time.monotonic() + 5
    while old.state != "END" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert old.state == "END"
    assert registry.status("adder")["adder"][1] == {"version": 1, "state": "END", "error": None, "labels": []}


def test_the_runtime_never_unpickles():
    from tests.runtime.conftest import ROOT

    for path in (ROOT / "modelpress" / "runtime").rglob("*.py"):
        text = path.read_text()
        assert "pickle" not in text and "allow_pickle=True" not in text, path


def test_hot_reloads_do_not_grow_status_or_metrics(make_app, tmp_path, samples):
    """A device reloading for months must not keep every retired version (backend, manifest, metric series)."""
    repo = tmp_path / "repo"
    (repo / "digits").mkdir(parents=True)
    add_version(repo, "digits", 1)
    app = make_app(repo, warmup=False)
    client = app.test_client()
    x = samples[0][:1]
    body = {"inputs": [{"name": "image", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]}
    for version in range(2, 13):
        add_version(repo, "digits", version)
        app.modelpress.registry.scan()
        assert client.post("/v2/models/digits/infer", json=body).json["model_version"] == str(version)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
            s["state"] != "END" for s in client.get("/v1/models/digits").json["model_version_status"][1:]):
        time.sleep(0.01)
    assert len(client.get("/v1/models/digits").json["model_version_status"]) <= 6
    metrics = client.get("/metrics").text
    assert 'version="2"' not in metrics
    assert 'modelpress_compute_duration_seconds_count{model="digits",version="12"}' in metrics


def test_a_version_served_again_after_its_series_were_forgotten_is_counted_again():
    """Metrics keep each labelled series once looked up; forgetting a retired version drops them, so that
    the same version number served again (a package replaced in place) shows in /metrics from 0 again."""
    from modelpress.runtime.metrics import Metrics

    metrics = Metrics()
    for _ in range(3):
        metrics.request("digits", "1", "grpc", "OK", 0.001)
        metrics.compute("digits", "1", 0.0005)
        metrics.batch("digits", "1", 1, [0.0])
    metrics.forget("digits", "1")
    assert 'version="1"' not in metrics.render()[0].decode()
    metrics.request("digits", "1", "grpc", "OK", 0.001)
    metrics.compute("digits", "1", 0.0005)
    metrics.batch("digits", "1", 2, [0.0])
    text = metrics.render()[0].decode()
    assert 'modelpress_requests_total{model="digits",protocol="grpc",status="OK",version="1"} 1.0' in text
    assert 'modelpress_compute_duration_seconds_count{model="digits",version="1"} 1.0' in text
    assert 'modelpress_batch_size_sum{model="digits",version="1"} 2.0' in text
