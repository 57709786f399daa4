"""One answer to "why is this model (version) not served": the repository index, the inference error and
the status all give ``ModelRecord.why_not``, and where the fix is a request it names this model's URL."""

from __future__ import annotations

import shutil
import time

import numpy as np


def _index(client) -> dict[tuple[str, str], dict]:
    rows = client.post("/v2/repository/index", json={}).json
    return {(row["name"], row["version"]): row for row in rows}


def _until_unavailable(client, key: tuple[str, str]) -> dict:
    """The index row of ``key`` once its version finished unloading (unloads end in the background)."""
    deadline = time.monotonic() + 30
    while (row := _index(client)[key])["state"] != "UNAVAILABLE" and time.monotonic() < deadline:
        time.sleep(0.05)
    return row


def _body(x: np.ndarray) -> dict:
    return {"inputs": [{"name": "image", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}


def test_a_model_not_loaded_in_explicit_mode_names_itself(make_app, repo, samples):
    x, _ = samples
    client = make_app(repo, model_control="explicit", load_models=["digits"]).test_client()
    reason = _index(client)[("int8", "1")]["reason"]
    assert "POST /v2/repository/models/int8/load" in reason and "<model>" not in reason
    answer = client.post("/v2/models/int8/infer", json=_body(x[:1]))
    assert answer.status_code == 404
    assert answer.json["error"] == f"model 'int8' has no version loaded: {reason}"  # the same answer, once


def test_an_unloaded_version_names_its_own_load_url(make_app, repo):
    client = make_app(repo, model_control="explicit", load_models=["digits"]).test_client()
    assert client.post("/v2/repository/models/digits/versions/1/load").status_code == 200
    assert client.post("/v2/repository/models/digits/versions/1/unload").status_code == 200
    reason = _until_unavailable(client, ("digits", "1"))["reason"]
    assert "POST /v2/repository/models/digits/versions/1/load" in reason
    answer = client.post("/v1/models/digits/versions/1:predict", json={"instances": [[0.0]]})
    assert answer.status_code == 404 and reason in answer.json["error"]


def test_a_version_the_policy_does_not_serve_says_so(make_app, repo):
    (repo / "digits" / "config.yaml").write_text("version_policy: {latest: 1}\n", encoding="utf-8")
    client = make_app(repo).test_client()
    assert _index(client)[("digits", "1")]["reason"] == "not served by the model's version policy"


def test_a_package_dropped_in_without_a_version_folder_says_where_it_belongs(start_server, tmp_path):
    """`modelpress convert --out repo/tempo` then `modelpress serve repo` left a package where a repository wants
    <model>/<version>/: the answer said "no complete version folder yet" (the folder is complete) and readiness
    "every version failed to load" (none had). Both now name the fix, through a real server."""
    import requests

    from tests.runtime.conftest import PACKAGES

    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copytree(PACKAGES / "float32", repo / "flat")
    server = start_server(repo, "--poll-interval", "0.2")
    answer = requests.get(server.url + "/v2/models/flat", timeout=10)
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert "flat/ holds a model package itself" in error and "flat/1/" in error
    assert "modelpress serve <repository>/flat" in error and str(tmp_path) not in error  # no server path to clients
    ready = requests.get(server.url + "/v2/health/ready", timeout=10)
    assert ready.status_code == 503 and "flat/1/" in ready.json()["error"]
    assert "failed to load" not in ready.json()["error"]
    time.sleep(1.0)  # five more polls
    assert server.stop().count("holds a model package itself") == 1  # logged once, not at every poll


def test_a_package_moved_into_its_version_folder_is_served(start_server, tmp_path, samples):
    import requests

    from tests.runtime.conftest import PACKAGES

    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copytree(PACKAGES / "float32", repo / "flat")
    server = start_server(repo, "--poll-interval", "0.2")
    assert requests.get(server.url + "/v2/models/flat", timeout=10).status_code == 503
    staged = repo / ".flat-1"
    (repo / "flat").rename(staged)
    (repo / "flat").mkdir()
    staged.rename(repo / "flat" / "1")
    x, _ = samples
    deadline = time.monotonic() + 60
    while (answer := requests.post(server.url + "/v2/models/flat/infer", json=_body(x[:1]), timeout=10)).status_code \
            != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert answer.status_code == 200 and len(answer.json()["outputs"][0]["data"]) == 10
