"""Server readiness means "there is something to serve": an empty repository, or one whose every version failed,
is not ready (with the reason), so that KServe and Kubernetes send no traffic to a pod that can answer nothing."""

from __future__ import annotations

import time

import requests

from tests.runtime.conftest import add_version


def _ready(url: str) -> requests.Response:
    return requests.get(url + "/v2/health/ready", timeout=10)


def test_an_empty_repository_is_not_ready_until_a_model_is_published(start_server, tmp_path):
    repo = tmp_path / "models"
    repo.mkdir()
    server = start_server(repo, "--poll-interval", "0.2")
    answer = _ready(server.url)
    assert answer.status_code == 503 and "holds no model" in answer.json()["error"]
    assert "--allow-empty" in answer.json()["error"]
    assert requests.get(server.url + "/v2/health/live", timeout=10).status_code == 200  # alive, just not ready
    add_version(repo, "digits", 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _ready(server.url).status_code != 200:
        time.sleep(0.1)
    assert _ready(server.url).status_code == 200


def test_allow_empty_is_ready_with_no_model(start_server, tmp_path):
    repo = tmp_path / "models"
    repo.mkdir()
    server = start_server(repo, "--allow-empty")
    assert _ready(server.url).status_code == 200


def test_every_version_failing_is_not_ready(make_app, tmp_path):
    repo = tmp_path / "models"
    (repo / "broken" / "1").mkdir(parents=True)
    (repo / "broken" / "1" / "model.tflite").write_bytes(b"not a flatbuffer")
    answer = make_app(repo).test_client().get("/v2/health/ready")
    assert answer.status_code == 503 and "failed to load" in answer.json["error"]


def test_explicit_model_control_with_nothing_loaded_is_ready(make_app, repo):
    """Models load on request there (Triton's explicit mode is ready with none loaded)."""
    assert make_app(repo, model_control="explicit").test_client().get("/v2/health/ready").status_code == 200


def test_a_repository_whose_models_were_all_unloaded_says_so(make_app, repo):
    """Readiness names the cause: models a client unloaded through the repository API did not fail to load."""
    client = make_app(repo).test_client()
    names = [row["name"] for row in client.post("/v2/repository/index").json]
    for name in sorted(set(names))[:-1]:
        assert client.post(f"/v2/repository/models/{name}/unload").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200          # one model still serves
    assert client.post(f"/v2/repository/models/{sorted(set(names))[-1]}/unload").status_code == 200
    answer = client.get("/v2/health/ready")
    assert answer.status_code == 503
    assert "unloaded through the repository API" in answer.json["error"]
    assert "failed to load" not in answer.json["error"]
