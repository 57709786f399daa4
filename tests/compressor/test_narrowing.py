"""Narrowing: the units and filters pruning or gates leave dead are removed, with the same answers and a smaller
file (real trained models on scikit-learn's digits, converted to TFLite and run)."""

from __future__ import annotations

import numpy as np
import pytest

from modelpress.compressor.narrowing import narrow_model

from .conftest import train_mlp

pytestmark = pytest.mark.integration


def _kill(model, layer: str, units: np.ndarray, *, reader: str | None = None) -> None:
    """Zero ``units`` of ``layer``: their kernel columns (filters), or with ``reader`` their rows in that layer."""
    if reader is None:
        kernel, *rest = model.get_layer(layer).get_weights()
        kernel[..., units] = 0.0
        model.get_layer(layer).set_weights([kernel, *rest])
        return
    kernel, *rest = model.get_layer(reader).get_weights()
    kernel[units, :] = 0.0
    model.get_layer(reader).set_weights([kernel, *rest])


def _tflite(model, quantization="none", calibration=None):
    from modelpress.converters.tflite import to_tflite_bytes
    from modelpress.model_io import load_model

    return to_tflite_bytes(load_model(model), quantization, calibration=calibration)


def _run(blob: bytes, x: np.ndarray) -> np.ndarray:
    from modelpress.tflite_interpreter import TFLiteModel

    return TFLiteModel(blob, threads=1).predict([x])[0]


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
def test_dead_units_go_with_the_same_answers_and_a_smaller_file(digits, flavor):
    from modelpress.files import gzip_bytes

    model = train_mlp(digits, flavor, epochs=8)
    rng = np.random.default_rng(0)
    silent = rng.choice(64, 24, replace=False)                      # fc1 columns zero: constant relu(bias)
    _kill(model, "fc1", silent)
    unread = rng.choice(np.setdiff1d(np.arange(64), silent), 6, replace=False)
    _kill(model, "fc1", unread, reader="fc2")                       # fc1 units nothing reads
    _kill(model, "fc2", np.arange(10))                              # fc2 columns zero
    bias = model.get_layer("fc1").get_weights()[1]
    assert np.count_nonzero(np.maximum(bias[silent], 0)) > 0       # some constants really are folded

    x = digits.x_test.astype(np.float32)
    result = narrow_model(model, sample=x[:64])
    assert result.kept == {"fc1": 64 - 30, "fc2": 32 - 10} and result.removed == 40 and result.folded > 0
    assert [w.shape for w in result.model.get_weights()] == [(64, 34), (34,), (34, 22), (22,), (22, 10), (10,)]
    np.testing.assert_allclose(np.asarray(result.model(x)), np.asarray(model(x)), atol=1e-5)

    wide, narrow = _tflite(model), _tflite(result.model)
    np.testing.assert_allclose(_run(narrow, x), _run(wide, x), atol=1e-5)
    assert gzip_bytes(narrow) < 0.8 * gzip_bytes(wide)


def test_nothing_dead_leaves_the_model_itself(mlp_keras3):
    result = narrow_model(mlp_keras3)
    assert result.model is mlp_keras3 and result.removed == 0 and result.kept == {}


def _cnn(digits, padding2: str):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)),
                              keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
                              keras.layers.MaxPooling2D(2),
                              keras.layers.Conv2D(12, 3, padding=padding2, activation="relu", name="conv2"),
                              keras.layers.Flatten(), keras.layers.Dense(16, activation="relu", name="fc"),
                              keras.layers.Dense(10, activation="softmax", name="probs")], name="digits_cnn")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(digits.x_train, digits.y_train, epochs=3, batch_size=32, verbose=0)
    for name in ("conv1", "conv2"):  # positive biases: a dead filter's constant output is not zero
        kernel, bias = model.get_layer(name).get_weights()
        model.get_layer(name).set_weights([kernel, np.abs(bias) + 0.05])
    return model


def test_dead_filters_fold_through_pooling_and_flatten(digits):
    model = _cnn(digits, "valid")
    _kill(model, "conv1", np.array([1, 4, 6]))
    _kill(model, "conv2", np.array([0, 2, 3, 9]))
    x = digits.x_test.astype(np.float32)
    result = narrow_model(model, sample=x[:64])
    assert result.kept == {"conv1": 5, "conv2": 8} and result.folded == 7
    assert result.model.get_layer("fc").get_weights()[0].shape == (2 * 2 * 8, 16)
    np.testing.assert_allclose(np.asarray(result.model(x)), np.asarray(model(x)), atol=1e-5)
    calibration = x[:100]
    wide, narrow = _tflite(model, "int8", calibration), _tflite(result.model, "int8", calibration)
    assert np.mean(_run(narrow, x).argmax(1) == _run(wide, x).argmax(1)) >= 0.99


def test_a_padded_convolution_keeps_a_constant_it_cannot_carry(digits):
    model = _cnn(digits, "same")  # zero padding around conv1's constant channels: folding would not be exact
    _kill(model, "conv1", np.array([1, 4]))
    _kill(model, "conv2", np.array([5]))
    x = digits.x_test.astype(np.float32)
    result = narrow_model(model, sample=x[:64])
    assert result.kept == {"conv2": 11}  # conv1 left whole, conv2's dead filter folded into fc's bias
    np.testing.assert_allclose(np.asarray(result.model(x)), np.asarray(model(x)), atol=1e-5)


def test_a_model_that_is_not_a_chain_is_left_as_it_is():
    import keras

    inp = keras.Input((4,))
    a, b = keras.layers.Dense(3, name="a")(inp), keras.layers.Dense(3, name="b")(inp)
    model = keras.Model(inp, keras.layers.Dense(2, name="out")(keras.layers.Add()([a, b])))
    model.get_layer("a").set_weights([np.zeros((4, 3)), np.ones(3)])
    assert narrow_model(model).model is model
