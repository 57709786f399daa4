"""A tiny real model for press: an MLP trained once per session on scikit-learn's digits."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mlp_path(tmp_path_factory, digits) -> Path:
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(64, activation="relu", name="fc1"),
                              keras.layers.Dense(32, activation="relu", name="fc2"),
                              keras.layers.Dense(10, activation="softmax", name="fc3")], name="digits_mlp")
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(digits.x_train, digits.y_train, epochs=20, batch_size=32, verbose=0)
    path = tmp_path_factory.mktemp("press_model") / "digits_mlp.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def pressed(tmp_path_factory, mlp_path, data_dir):
    """One search (int8 and global pruning for cortex-m), shared by the tests that read its output."""
    import modelpress

    folder = tmp_path_factory.mktemp("pressed")
    result = modelpress.press(mlp_path, ["cortex-m"], data_dir / "data.npz", out=folder / "out", max_drop=1.0,
                              epochs=2, families=["prune"], cache=folder / "cache", progress=False)
    return result, folder
