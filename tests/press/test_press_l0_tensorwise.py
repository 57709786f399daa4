"""press's L0 family where the device runs int4: the gated candidates end on one int4 grid per kernel and ship as
tensorwise int4 (one scale and zero point a kernel, not one per output channel), with the model's own answers."""

from __future__ import annotations

import numpy as np
import pytest

import modelpress

pytestmark = pytest.mark.integration


def test_gated_candidates_ship_as_tensorwise_int4(mlp_path, data_dir, tmp_path):
    pytest.importorskip("litert_quantizer")
    import tflite

    from modelpress.compressor.narrowing import narrow_model
    from modelpress.search.cache import TrialCache
    from modelpress.tflite_interpreter import TFLiteModel

    result = modelpress.press(mlp_path, ["raspberry-pi-4"], data_dir / "data.npz", out=tmp_path / "out",
                              max_drop=3.0, epochs=2, families=["quantize", "l0"], cache=tmp_path / "cache",
                              progress=False)
    gated = [t for t in result.search.trials if t.settings.family == "l0"]
    assert gated and all(t.settings.quantization == "int4" for t in gated)
    grids = [t.settings.steps[-1] for t in gated]
    assert all((g["type"], g["bits"], g.get("granularity")) == ("qat", 4, "tensor") for g in grids), grids
    trial = min((t for t in gated if t.error is None), key=lambda t: t.gzip_bytes)
    cache = TrialCache(tmp_path / "cache")
    model, _ = cache.load_model(trial.model_key)
    for layer in ("fc1", "fc2", "fc3"):
        kernel = np.asarray(model.get_layer(layer).kernel)
        codes = kernel / (np.abs(kernel).max() / 7)
        np.testing.assert_allclose(codes, np.round(codes), atol=1e-3)  # one grid for the whole kernel
    blob = cache.artifact(trial.artifact_key)
    graph = tflite.Model.GetRootAsModel(blob, 0).Subgraphs(0)
    scales = [graph.Tensors(t).Quantization().ScaleLength() for t in range(graph.TensorsLength())
              if graph.Tensors(t).Type() == tflite.TensorType.INT4]
    assert scales == [1, 1, 1]  # tensorwise: a scale a kernel
    x = np.load(data_dir / "verify.npy").astype(np.float32)
    narrow = narrow_model(model).model
    keras_out = np.asarray(narrow(x, training=False))
    shipped = TFLiteModel(blob).predict([x])[0]
    assert float(np.abs(keras_out - shipped).max()) < 1e-4  # stored exactly: the answers of the model it came from
