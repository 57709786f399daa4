"""Backends: the TFLite interpreter pool, delegates from the profile, and the SavedModel path (full env)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from modelpress.manifest import read_manifest
from modelpress.runtime.backends import TFLiteBackend, backend_for
from tests.runtime.conftest import PACKAGES


def test_interpreter_pool_serves_concurrent_callers(samples):
    x, y = samples
    backend = TFLiteBackend(PACKAGES / "float32", read_manifest(PACKAGES / "float32"), pool_size=3, threads=1)
    backend.load()
    alone = backend.predict([x[:10]])[0]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda i: backend.predict([x[i:i + 1]])[0], range(10)))
    assert np.allclose(np.concatenate(results), alone, atol=1e-6)
    assert np.mean(np.argmax(alone, 1) == y[:10]) >= 0.9
    assert backend._pool.qsize() == 3
    backend.unload()


def test_quantized_backend_real_or_raw(samples):
    x, _ = samples
    backend = TFLiteBackend(PACKAGES / "edgetpu", read_manifest(PACKAGES / "edgetpu"), delegate=None)
    backend.load()
    real = backend.predict([x[:2]])[0]
    raw = backend.predict([np.round(x[:2] * 255).astype(np.uint8)], raw=True)[0]
    assert real.dtype == np.float32 and raw.dtype == np.uint8
    assert np.allclose(raw * backend.outputs[0].scale, real, atol=0.01)
    assert backend.fixed_batch == 1 and not backend.supports_batching


def test_an_absent_delegate_is_one_clear_log_line(make_app, repo, caplog):
    with caplog.at_level(logging.WARNING):
        app = make_app(repo, profile="coral-edgetpu")
    lines = [r.getMessage() for r in caplog.records if "delegate" in r.getMessage()]
    assert any("edgetpu delegate, which is not available here" in line for line in lines)
    assert app.test_client().get("/v2/models/digits/ready").status_code == 200


def test_backend_for_an_unknown_format():
    from modelpress.errors import ArtifactError
    from modelpress.manifest import Manifest

    manifest = Manifest(name="m", model_format="tflite", model_file="m", inputs=[], outputs=[])
    manifest.model_format = "onnx"
    with pytest.raises(ArtifactError, match="no backend serves model format 'onnx'"):
        backend_for(manifest)


@pytest.mark.integration
def test_savedmodel_package_is_served_through_tensorflow(tmp_path, make_app, samples):
    pytest.importorskip("tensorflow")
    import modelpress
    from modelpress.demo.example import digits_data, train_example_model

    x, y = samples
    data = digits_data(seed=0)
    model = train_example_model(data, flavor="keras3", epochs=3, width=4)
    repo = tmp_path / "repo"
    modelpress.convert(model, "server-gpu", repo / "gpu" / "1", model_format="saved_model", verify_data=x,
                       name="gpu")
    client = make_app(repo).test_client()
    meta = client.get("/v2/models/gpu").json
    assert meta["platform"] == "tensorflow_savedmodel"
    answer = client.post("/v1/models/gpu:predict", json={"instances": x[:50].tolist()})
    assert answer.status_code == 200, answer.json
    expected = model.predict(x[:50], verbose=0)
    assert np.allclose(answer.json["predictions"], expected, atol=1e-4)
