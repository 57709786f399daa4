"""Two HTTP doors answer v2 inference: the fast WSGI path (what clients reach) and the Flask view behind it.
Both call the same pre-read checks, the same inference and the same request record, so for any request
they give the same status, body and access-log line; the checks come in one order: 413, 401, 404."""

from __future__ import annotations

import json
import logging

import pytest
from werkzeug.test import Client

TOKEN = "door-token-42"
GOOD = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def doors(make_app, repo):
    """(fast path, Flask alone) over one app with a token and a 3000-byte body limit."""
    app = make_app(repo, tokens=[TOKEN], max_body_bytes=3000, access_log=True)
    flask_only = app.wsgi_app.app  # the layer FastInference hands every other request to
    return Client(app.wsgi_app), Client(flask_only)


def _body(x, rows: int = 1) -> bytes:
    return json.dumps({"inputs": [{"name": "image", "datatype": "FP32", "shape": [rows, 8, 8, 1],
                                   "data": x[:rows].ravel().tolist()}]}).encode()


def _send(client, path: str, body: bytes, headers: dict):
    answer = client.post(path, data=body, headers={"Content-Type": "application/json", **headers})
    return answer.status_code, answer.get_data(), answer.headers.get("WWW-Authenticate")


@pytest.mark.parametrize("case, status, words", [
    ("everything wrong", 413, "refused before being read"),     # the length is decided first
    ("token and version wrong", 401, "needs a bearer token"),   # then the token
    ("version wrong", 404, "is not a version number"),          # then the route
    ("nothing wrong", 200, '"model_version":"1"'),
])
def test_both_doors_decide_the_same_in_the_same_order(doors, samples, case, status, words):
    x, _ = samples
    big = "everything" in case
    body = _body(x, 20 if big else 1)  # 20 rows are over the 3000-byte limit
    headers = {} if "token" in case or big else GOOD
    version = "1" if case == "nothing wrong" else "1.0"
    fast, flask = (_send(door, f"/v2/models/digits/versions/{version}/infer", body, headers) for door in doors)
    assert fast[0] == status and words in fast[1].decode()
    if status == 200:
        assert json.loads(fast[1])["outputs"] == json.loads(flask[1])["outputs"]
    else:
        assert fast == flask  # status, the whole error body, WWW-Authenticate


def test_the_fast_path_answers_inference_and_flask_everything_else(doors, samples, caplog):
    x, _ = samples
    fast, flask = doors
    with caplog.at_level(logging.INFO, logger="modelpress.access"):
        for door, headers, status in ((fast, GOOD, 200), (flask, GOOD, 200), (flask, {}, 401), (fast, {}, 401)):
            answer = door.post("/v2/models/digits/infer", data=_body(x), headers=headers,
                               environ_base={"REMOTE_ADDR": "10.1.2.3"})
            assert answer.status_code == status
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "modelpress.access"]
    assert len(records) == 4
    for record in records:
        assert record.pop("ts") > 0 and record.pop("ms") > 0
    assert records[0] == records[1] == {
        "remote": "10.1.2.3", "method": "POST", "path": "/v2/models/digits/infer", "status": 200,
        "bytes_in": len(_body(x)), "bytes_out": records[0]["bytes_out"], "protocol": "v2", "model": "digits",
        "version": "2", "trace_id": None}  # the version that answered, though the route named none
    assert records[2] == records[3] and records[2]["status"] == 401 and records[2]["version"] is None


def test_the_checks_hold_on_every_protocol_in_the_same_words(doors, samples):
    x, _ = samples
    _, flask = doors
    v1 = flask.post("/v1/models/digits/versions/01x:predict", json={"instances": x[:1].tolist()}, headers=GOOD)
    v2 = flask.get("/v2/models/digits/versions/01x")
    repository = flask.post("/v2/repository/models/digits/versions/01x/load", headers=GOOD)
    for answer, see in ((v1, "/v1/models/"), (v2, "/v2/models/"), (repository, "/v2/models/")):
        assert answer.status_code == 404
        assert "version '01x' of model 'digits' is not a version number" in answer.json["error"]
        assert see in answer.json["error"]
    assert flask.post("/v2/repository/index", headers={}).status_code == 401
    assert flask.post("/v1/models/digits:predict", data=b"[" * 4000, headers=GOOD).status_code == 413


def test_inference_checks_and_record_work_outside_any_web_request(make_app, repo, samples):
    """What a gRPC servicer calls: no Flask request or app context, errors raised for the door to render."""
    from modelpress.errors import NotFoundError, PayloadTooLargeError, UnauthorizedError
    from modelpress.runtime.checks import check_head
    from modelpress.runtime.inference import run_inference
    from modelpress.runtime.requestlog import record_request

    x, y = samples
    runtime = make_app(repo, tokens=[TOKEN], max_body_bytes=3000).modelpress
    result = run_inference(runtime, "digits", "1", [("image", x[:10])])
    assert result.version == "1" and list(result.outputs) == ["output_0"]
    assert (result.outputs["output_0"].argmax(axis=1) == y[:10]).mean() >= 0.8
    head = {"protocol": "v2", "model": "digits", "protected": True}
    check_head(runtime, version="2", length=10, authorization=f"Bearer {TOKEN}", **head)
    refusals = [({"length": 4000, "authorization": None}, PayloadTooLargeError, 413),      # all wrong: the length
                ({"length": None, "authorization": "Bearer no"}, UnauthorizedError, 401),  # then the token
                ({"length": None, "authorization": f"Bearer {TOKEN}"}, NotFoundError, 404)]
    for refusal, kind, status in refusals:  # the version "x" is wrong in each
        with pytest.raises(kind) as raised:
            check_head(runtime, version="x", **refusal, **head)
        assert raised.value.http_status == status
    record_request(runtime, protocol="v2", method="ModelInfer", path="inference.GRPCInferenceService/ModelInfer",
                   remote="127.0.0.1", model="digits", version="1", status=200, seconds=0.001, bytes_in=1,
                   bytes_out=1)
    text = runtime.metrics.render()[0].decode()
    assert 'modelpress_requests_total{model="digits",protocol="v2",status="200",version="1"} 1.0' in text
