"""A version folder holding only a .tflite made elsewhere (openWakeWord's models, converted by another
project) is served with a manifest read from the model, without TensorFlow, over real HTTP."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import requests

from modelpress.testing.models import package_dir
from modelpress.testing.server import served
from modelpress.tflite_interpreter import TFLiteModel

WAKE = package_dir("pyopen_wakeword")
pytestmark = pytest.mark.skipif(WAKE is None, reason="pip install --no-deps pyopen-wakeword==1.1.0 (make venv)")


def _v2(url, model, name, x):
    body = {"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    return requests.post(f"{url}/v2/models/{model}/infer", json=body, timeout=30)


def test_a_bare_tflite_made_elsewhere_is_served(tmp_path):
    repo = tmp_path / "repo"
    for name in ("hey_jarvis", "embedding_model", "melspectrogram"):
        (repo / name / "1").mkdir(parents=True)
        shutil.copy(WAKE / "models" / f"{name}.tflite", repo / name / "1" / "model.tflite")
    (repo / "hey_jarvis" / "config.yaml").write_text("tensor_names: {x.1: embeddings, '53': score}\n")
    rng = np.random.default_rng(0)
    with served(repo, "--poll-interval", "0") as server:
        status = requests.get(f"{server.url}/status", timeout=10).json()["models"]
        assert {name: rows["versions"][0]["manifest"] for name, rows in status.items()} == {
            "hey_jarvis": "inferred", "embedding_model": "inferred", "melspectrogram": "inferred"}
        meta = requests.get(f"{server.url}/v2/models/hey_jarvis", timeout=10).json()
        assert meta["inputs"] == [{"name": "embeddings", "datatype": "FP32", "shape": [1, 16, 96]}]
        assert [o["name"] for o in meta["outputs"]] == ["score"]
        x = rng.random((2, 16, 96), dtype=np.float32)  # two rows through a batch-1 model: run one by one
        answer = _v2(server.url, "hey_jarvis", "embeddings", x)
        assert answer.status_code == 200, answer.text
        want = TFLiteModel(WAKE / "models" / "hey_jarvis.tflite").predict([x])[0]
        np.testing.assert_allclose(np.reshape(answer.json()["outputs"][0]["data"], (2, 1)), want, atol=1e-6)
        # a dynamic input ([None, None] audio samples) runs at the length the client sends
        audio = rng.normal(0, 3000, (1, 1280)).astype(np.float32)
        answer = _v2(server.url, "melspectrogram", "input", audio)
        assert answer.status_code == 200, answer.text
        want = TFLiteModel(WAKE / "models" / "melspectrogram.tflite").predict([audio])[0]
        assert answer.json()["outputs"][0]["shape"] == list(want.shape)
        wrong = _v2(server.url, "embedding_model", "input_1", rng.random((1, 75, 32, 1), dtype=np.float32))
        assert wrong.status_code == 400 and "expects shape [None, 76, 32, 1]" in wrong.json()["error"]
