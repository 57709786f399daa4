"""Recovery after sparsification and tensorwise int4 storage, on the digits MLP.

``recover``: fine-tuning with every zero held at zero (the mask and so the size cannot change), distilled from the
source, from a small decaying rate, the best epoch on the selection split kept. ``qat`` with ``granularity: tensor``:
weights trained onto one int4 grid per kernel, which LiteRT's quantizer then stores tensorwise (one scale and zero
point per kernel instead of per output channel): a smaller file with the Keras model's own answers."""

from __future__ import annotations

import numpy as np
import pytest

from modelpress.compressor.fake_quant import int8_round_trip

from .conftest import kernels

PRUNE = {"name": "prune-80", "finetune": {"epochs": 2, "batch_size": 32, "learning_rate": 1e-3},
         "steps": [{"type": "prune", "sparsity": 0.8, "schedule": "constant"}]}


def _accuracy(model, data) -> float:
    return float(np.mean(np.asarray(model(data["x_val"], training=False)).argmax(1) == data["y_val"]))


@pytest.fixture(scope="module")
def pruned(mlp_keras3, data):
    from modelpress.compressor.data import load_data
    from modelpress.compressor.pipeline import run_recipe
    from modelpress.compressor.recipe import load_recipe

    model, _, _ = run_recipe(mlp_keras3, "keras3", load_recipe(PRUNE), load_data(data))
    return model


def _run(model, data, steps, teacher):
    from modelpress.compressor.data import load_data, selection_split
    from modelpress.compressor.pipeline import run_recipe
    from modelpress.compressor.recipe import load_recipe

    recipe = load_recipe({"name": "after", "finetune": {"epochs": 2, "batch_size": 32, "learning_rate": 1e-3},
                          "steps": steps})
    return run_recipe(model, "keras3", recipe, selection_split(load_data(data)), teacher=teacher)


def test_recovery_holds_every_zero_and_does_not_lose_accuracy(pruned, mlp_keras3, data):
    before = kernels(pruned)
    model, records, _ = _run(pruned, data, [{"type": "recover", "epochs": 3, "rate": 0.1, "alpha": 0.5}], mlp_keras3)
    after = kernels(model)
    for name, kernel in after.items():
        np.testing.assert_array_equal(kernel == 0, before[name] == 0, err_msg=name)  # the same mask, exactly
        assert not np.array_equal(kernel, before[name]), name  # ... and the surviving weights did train
    assert "zeros held" in records[0]["summary"] and "distilled" in records[0]["summary"]
    assert records[0]["val_epoch"][0] == 0 and records[0]["best_epoch"] is not None
    # the best epoch on the selection split, the start included: the held-out test split loses nothing beyond noise
    assert _accuracy(model, data) >= _accuracy(pruned, data) - 0.01


def test_recover_parameters_are_checked():
    from modelpress.compressor.recipe import Step
    from modelpress.errors import RecipeError

    assert Step("recover").params == {"rate": 0.1, "alpha": 0.5}
    with pytest.raises(RecipeError, match="rate 2.0 must be in"):
        Step("recover", {"rate": 2.0})
    with pytest.raises(RecipeError, match="granularity 'tensor' needs bits 4"):
        Step("qat", {"granularity": "tensor"})


@pytest.fixture(scope="module")
def grids(pruned, mlp_keras3, data):
    pytest.importorskip("litert_quantizer")
    return {g: _run(pruned, data, [{"type": "qat", "bits": 4, "epochs": 1, "granularity": g}], mlp_keras3)[0]
            for g in ("channel", "tensor")}


def test_the_tensor_grid_puts_each_kernel_on_fifteen_shared_values(grids):
    from modelpress.converters.quantizer import tensor_grid_fits
    from modelpress.converters.tflite import to_tflite_bytes

    for name, kernel in kernels(grids["tensor"]).items():
        assert (kernel == 0).mean() >= 0.79, name
        np.testing.assert_allclose(kernel, int8_round_trip(kernel, 4, per_tensor=True), atol=1e-6)
        assert len(np.unique(kernel)) <= 15
    assert tensor_grid_fits(to_tflite_bytes(grids["tensor"], "none"))
    assert not tensor_grid_fits(to_tflite_bytes(grids["channel"], "none"))  # a scale per channel: not one grid


def _scales(blob: bytes) -> list[int]:
    import tflite

    graph = tflite.Model.GetRootAsModel(blob, 0).Subgraphs(0)
    return [graph.Tensors(t).Quantization().ScaleLength() for t in range(graph.TensorsLength())
            if graph.Tensors(t).Type() == tflite.TensorType.INT4]


def test_tensorwise_int4_is_smaller_with_the_answers_of_the_model_it_came_from(grids, data):
    from modelpress.converters.tflite import to_tflite_bytes
    from modelpress.files import gzip_bytes
    from modelpress.tflite_interpreter import TFLiteModel

    blobs = {g: to_tflite_bytes(m, "int4", quantizer="litert", hardware="cpu") for g, m in grids.items()}
    assert _scales(blobs["tensor"]) == [1, 1, 1]  # one scale a kernel ...
    assert sorted(_scales(blobs["channel"])) == [10, 32, 64]  # ... where channelwise stores one per output channel
    # measured: 3,279 against 3,823 gzip bytes
    # measured: 3,200 against 3,710 gzip bytes
    assert gzip_bytes(blobs["tensor"]) < gzip_bytes(blobs["channel"]) - 300
    keras_out = np.asarray(grids["tensor"](data["x_val"], training=False))
    int4_out = TFLiteModel(blobs["tensor"]).predict([data["x_val"]])[0]
    assert float(np.abs(keras_out - int4_out).max()) < 1e-4  # the weights stored exactly: no rounding added
    assert _accuracy(grids["tensor"], data) >= _accuracy(grids["channel"], data) - 0.03
