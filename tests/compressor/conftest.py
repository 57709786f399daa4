"""Tiny real models for the compressor's tests: trained once per session on scikit-learn's digits."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def data(digits) -> dict[str, np.ndarray]:
    return {"x_train": digits.x_train, "y_train": digits.y_train, "x_val": digits.x_test, "y_val": digits.y_test}


def build_mlp(flavor: str, hidden: int = 64):
    """Flatten -> Dense(hidden) -> Dense(hidden/2) -> Dense(10): the same architecture in either flavour."""
    from modelpress.compressor.flavors import keras_module

    keras = keras_module(flavor)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(hidden, activation="relu", name="fc1"),
        keras.layers.Dense(hidden // 2, activation="relu", name="fc2"),
        keras.layers.Dense(10, activation="softmax", name="probs"),
    ], name="digits_mlp")
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def train_mlp(digits, flavor: str, epochs: int = 15, seed: int = 0):
    from modelpress.compressor.flavors import keras_module

    keras_module(flavor).utils.set_random_seed(seed)
    model = build_mlp(flavor)
    model.fit(digits.x_train, digits.y_train, epochs=epochs, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="session")
def mlp_keras3(digits):
    pytest.importorskip("tensorflow")
    return train_mlp(digits, "keras3")


@pytest.fixture(scope="session")
def mlp_tf_keras(digits):
    pytest.importorskip("tf_keras")
    return train_mlp(digits, "tf_keras")


@pytest.fixture(scope="session")
def cnn_keras3(keras3_model):
    from modelpress.model_io import load_model

    return load_model(keras3_model).model


def kernels(model) -> dict[str, np.ndarray]:
    from modelpress.compressor.flavors import kernel_layers, kernel_variable, variable_value

    return {layer.name: variable_value(kernel_variable(layer)) for layer in kernel_layers(model)}


def val_accuracy(model, data) -> float:
    from modelpress.compressor.report import accuracy

    return accuracy(data["y_val"], np.asarray(model(data["x_val"], training=False)))
