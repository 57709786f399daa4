"""Compact weight storage: a pruned model's weights trained on the int4 grid (``qat`` with ``bits: 4``) and stored
as int4 by LiteRT's quantizer make a smaller file than int8 codes, with the same answers."""

from __future__ import annotations

import numpy as np
import pytest

from modelpress.compressor.fake_quant import int8_round_trip

from .conftest import kernels

GRID_RECIPE = {"name": "sparse-int4", "finetune": {"epochs": 4, "batch_size": 32, "learning_rate": 1e-3},
               "steps": [{"type": "prune", "sparsity": 0.8, "schedule": "constant"},
                         {"type": "qat", "bits": 4, "epochs": 3}]}


def test_round_trip_at_four_bits_has_fifteen_levels_per_channel():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(64, 8)).astype(np.float32) * np.arange(1, 9, dtype=np.float32)
    out = int8_round_trip(kernel, bits=4)
    for channel in range(8):
        step = np.abs(kernel[:, channel]).max() / 7  # LiteRT's symmetric int4 scale: max |w| / 7
        codes = out[:, channel] / step
        np.testing.assert_allclose(codes, np.round(codes), atol=1e-4)
        assert np.abs(codes).max() == pytest.approx(7) and len(np.unique(np.round(codes))) <= 15


@pytest.fixture(scope="module")
def grid_model(mlp_keras3, data):
    pytest.importorskip("litert_quantizer")
    from modelpress.compressor.data import load_data
    from modelpress.compressor.pipeline import run_recipe
    from modelpress.compressor.recipe import load_recipe

    model, records, _ = run_recipe(mlp_keras3, "keras3", load_recipe(GRID_RECIPE), load_data(data))
    return model, records


def test_the_int4_grid_step_keeps_the_zeros_and_puts_every_weight_on_the_grid(grid_model):
    model, records = grid_model
    assert "int4 grid" in records[1]["summary"]
    for name, kernel in kernels(model).items():
        assert (kernel == 0).mean() >= 0.79, name  # the pruned zeros stay zeros
        np.testing.assert_allclose(kernel, int8_round_trip(kernel, bits=4), atol=1e-6)


def test_int4_storage_is_smaller_than_int8_codes_with_the_same_answers(grid_model, data, digits):
    from modelpress.converters.quantizer import blockwise_fits
    from modelpress.converters.tflite import to_tflite_bytes
    from modelpress.files import gzip_bytes
    from modelpress.tflite_graph import read_graph
    from modelpress.tflite_interpreter import TFLiteModel

    model, _ = grid_model
    float32 = to_tflite_bytes(model, "none")
    assert not blockwise_fits(float32)  # 80% zeros: per-block scales would mostly describe empty blocks
    int8 = to_tflite_bytes(model, "int8", calibration=digits.x_train[:300], quantizer="litert", hardware="cpu")
    int4 = to_tflite_bytes(model, "int4", quantizer="litert", hardware="cpu")
    assert read_graph(int4).quantization == "int4" and "float16" not in read_graph(int4).weight_types
    # on this 6k-weight model the float biases and per-channel scales are a large share of either file: measured
    # 3,723 against 4,314 gzip bytes, 8,440 against 13,168 bytes
    assert gzip_bytes(int4) < 0.95 * gzip_bytes(int8) and len(int4) < 0.7 * len(int8)
    keras_out = np.asarray(model(data["x_val"], training=False))
    int4_out = TFLiteModel(int4).predict([data["x_val"]])[0]
    # the weights are the Keras model's own (no rounding left): the same answers up to float arithmetic
    assert float(np.mean(keras_out.argmax(1) == int4_out.argmax(1))) >= 0.995
    assert float(np.abs(keras_out - int4_out).max()) < 1e-3


def test_int4_takes_fully_connected_layers_whose_width_blocks_cannot_divide(tmp_path):
    """784 inputs (LeNet-300-100) do not split into blocks of 32: those layers keep channelwise int4 weights
    (LiteRT's quantizer refused the whole model before)."""
    keras = pytest.importorskip("keras")
    pytest.importorskip("litert_quantizer")
    from modelpress.converters.quantizer import blockwise_fits
    from modelpress.converters.tflite import to_tflite_bytes
    from modelpress.tflite_interpreter import TFLiteModel

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((40,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    for layer in model.layers:  # weights already on the int4 grid: the conversion adds no rounding of its own
        kernel, bias = layer.get_weights()
        layer.set_weights([int8_round_trip(kernel, bits=4), bias])
    assert not blockwise_fits(to_tflite_bytes(model, "none"))
    int4 = to_tflite_bytes(model, "int4", quantizer="litert", hardware="cpu")
    x = np.random.default_rng(0).normal(size=(64, 40)).astype(np.float32)
    want, got = np.asarray(model(x)), TFLiteModel(int4).predict([x])[0]
    np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max())
