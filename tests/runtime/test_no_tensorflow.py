"""The device environment (.venv-runtime) has no TensorFlow, and the runtime never needs it for TFLite."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tests.runtime.conftest import ROOT


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None,
                    reason="collected in the full environment, where TensorFlow is installed")
def test_tensorflow_is_not_installed_here():
    with pytest.raises(ImportError):
        import tensorflow  # noqa: F401


def test_serving_a_tflite_model_never_imports_tensorflow(repo, samples):
    x, y = samples
    script = f"""
import sys, json
import numpy as np
import modelpress, modelpress.runtime
app = modelpress.create_app({{"repository": {str(repo)!r}, "poll_interval": 0}})
client = app.test_client()
x = np.load({str(ROOT / "tests/runtime/fixtures/x_test.npy")!r})[:20]
answer = client.post("/v1/models/digits:predict", json={{"instances": x.tolist()}})
app.modelpress.close()
print(json.dumps({{"status": answer.status_code, "pred": np.argmax(answer.json["predictions"], 1).tolist(),
                  "tf": "tensorflow" in sys.modules}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    result = __import__("json").loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == 200
    assert result["tf"] is False
    assert sum(int(p == t) for p, t in zip(result["pred"], y[:20])) >= 18
