"""One answer to "why is this model (version) not served": the repository index, the inference error and
the status all give ``ModelRecord.why_not``, and where the fix is a request it names this model's URL."""

from __future__ import annotations

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
