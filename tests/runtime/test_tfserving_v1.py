"""TF Serving REST v1 through the Flask test client, on the real fixture models."""

from __future__ import annotations

import base64

import numpy as np
import pytest


def accuracy(predictions, labels) -> float:
    return float(np.mean(np.argmax(np.asarray(predictions), axis=1) == labels))


def test_model_status_lists_every_served_version(client):
    answer = client.get("/v1/models/digits")
    assert answer.status_code == 200
    rows = answer.json["model_version_status"]
    assert [r["version"] for r in rows] == ["2", "1"]
    assert all(r["state"] == "AVAILABLE" and r["status"]["error_code"] == "OK" for r in rows)


def test_version_and_label_status(client):
    assert client.get("/v1/models/digits/versions/1").json["model_version_status"][0]["version"] == "1"
    assert client.get("/v1/models/digits/labels/canary").json["model_version_status"][0]["version"] == "2"
    missing = client.get("/v1/models/digits/versions/7")
    assert missing.status_code == 404 and "version 7" in missing.json["error"]
    label = client.get("/v1/models/digits/labels/beta")
    assert label.status_code == 404
    assert "stable=1" in label.json["error"] and "canary=2" in label.json["error"]


@pytest.mark.parametrize("path", ["/v1/models/edgetpu/metadata", "/v1/models/edgetpu/versions/1/metadata"])
def test_metadata_shows_the_signature(client, path):
    meta = client.get(path).json
    assert meta["model_spec"] == {"name": "edgetpu", "signature_name": "", "version": "1"}
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["inputs"]["image"]["dtype"] == "DT_UINT8"
    assert [d["size"] for d in sig["inputs"]["image"]["tensor_shape"]["dim"]] == ["1", "8", "8", "1"]
    assert sig["outputs"]["output_0"]["tensor_shape"]["dim"][1]["size"] == "10"


def test_label_metadata_resolves_the_label(client):
    assert client.get("/v1/models/digits/labels/stable/metadata").json["model_spec"]["version"] == "1"


@pytest.mark.parametrize("model", ["digits", "int8"])
def test_row_form_predicts_real_digits(client, samples, model):
    x, y = samples
    answer = client.post(f"/v1/models/{model}:predict", json={"instances": x.tolist()})
    assert answer.status_code == 200, answer.json
    predictions = answer.json["predictions"]
    assert np.asarray(predictions).shape == (100, 10)
    assert accuracy(predictions, y) >= 0.9
    assert np.allclose(np.sum(predictions, axis=1), 1.0, atol=0.02)


def test_columnar_form_and_versions_and_labels_agree(client, samples):
    x, _ = samples
    rows = client.post("/v1/models/digits/versions/1:predict", json={"instances": x[:5].tolist()}).json
    cols = client.post("/v1/models/digits/labels/stable:predict", json={"inputs": x[:5].tolist()}).json
    named = client.post("/v1/models/digits:predict", json={"inputs": {"image": x[:5].tolist()}}).json
    assert np.allclose(rows["predictions"], cols["outputs"], atol=1e-6)
    assert np.allclose(rows["predictions"], named["outputs"], atol=1e-6)
    objects = client.post("/v1/models/digits:predict", json={"instances": [{"image": r} for r in x[:5].tolist()]})
    assert np.allclose(objects.json["predictions"], rows["predictions"], atol=1e-6)


def test_quantized_model_takes_and_returns_real_values(client, samples):
    x, y = samples
    answers = [client.post("/v1/models/edgetpu:predict", json={"instances": x[i:i + 1].tolist()}).json
               for i in range(30)]
    probs = np.concatenate([a["predictions"] for a in answers])
    assert probs.dtype == np.float64 and probs.max() <= 1.0
    assert accuracy(probs, y[:30]) >= 0.9
    many = client.post("/v1/models/edgetpu:predict", json={"instances": x[:4].tolist()})
    assert many.status_code == 200 and np.allclose(many.json["predictions"], probs[:4])


def test_b64_values_are_raw_instance_buffers(client, samples):
    x, _ = samples
    encoded = [{"b64": base64.b64encode(row.astype("<f4").tobytes()).decode()} for row in x[:3]]
    b64 = client.post("/v1/models/digits:predict", json={"instances": encoded}).json["predictions"]
    plain = client.post("/v1/models/digits:predict", json={"instances": x[:3].tolist()}).json["predictions"]
    assert np.allclose(b64, plain)
    short = client.post("/v1/models/digits:predict", json={"instances": [{"b64": "AAAA"}]})
    assert short.status_code == 400 and "256 bytes" in short.json["error"]


@pytest.mark.parametrize("body, status, words", [
    ({"instances": [[1, 2, 3]]}, 400, "expects shape [None, 8, 8, 1], got [1, 3]"),
    ({"instances": [["a"] * 8]}, 400, "must hold numbers"),
    ({"instances": []}, 400, "non-empty list"),
    ({"instances": [[0]], "inputs": [[0]]}, 400, "exactly one of"),
    ({"inputs": {"pixels": [[0]]}}, 400, "inputs must name exactly image"),
    ({"signature_name": "classify", "instances": [[0]]}, 400, "only signature is 'serving_default'"),
    ([1, 2], 400, "JSON object"),
])
def test_bad_requests_get_one_line_errors(client, body, status, words):
    answer = client.post("/v1/models/digits:predict", json=body)
    assert answer.status_code == status
    assert words in answer.json["error"] and "\n" not in answer.json["error"]


def test_malformed_and_deeply_nested_json(client):
    broken = client.post("/v1/models/digits:predict", data=b'{"instances": [1, 2', content_type="application/json")
    assert broken.status_code == 400 and "not valid JSON" in broken.json["error"]
    deep = b'{"instances": ' + b"[" * 100 + b"]" * 100 + b"}"
    nested = client.post("/v1/models/digits:predict", data=deep, content_type="application/json")
    assert nested.status_code == 400 and "101 levels deep; at most 32" in nested.json["error"]
    empty = client.post("/v1/models/digits:predict", data=b"")
    assert empty.status_code == 400 and "empty" in empty.json["error"]


def test_unknown_models_and_names_that_try_to_escape(client):
    unknown = client.get("/v1/models/nope")
    assert unknown.status_code == 404 and "digits" in unknown.json["error"]
    for name in ("..", ".hidden", "a%2F..%2F..%2Fetc"):
        answer = client.get(f"/v1/models/{name}/metadata")
        assert answer.status_code == 404 and "error" in answer.json
    not_a_route = client.get("/v1/models/digits/versions/1/../../../../etc/passwd")
    assert not_a_route.status_code == 404
