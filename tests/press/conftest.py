"""A tiny real model for press: an MLP trained once per session on scikit-learn's digits."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mlp_path(tmp_path_factory, digits) -> Path:
    pytest.importorskip("keras")
    from modelpress.testing.reference_models import digits_mlp

    model = digits_mlp(digits.x_train, digits.y_train)
    path = tmp_path_factory.mktemp("press_model") / "digits_mlp.keras"
    model.save(path)
    return path


@pytest.fixture
def loud_mlp_path(mlp_path, tmp_path) -> Path:
    """The digits MLP with one fc1 unit 1000x louder (fc2 reads it 1000x softer: the float model is unchanged),
    so int8's single activation scale for fc1's output wipes out every other unit: int8 misses, float passes."""
    from modelpress.model_io import load_model

    model = load_model(mlp_path).model
    w1, b1 = model.get_layer("fc1").get_weights()
    w2, b2 = model.get_layer("fc2").get_weights()
    w1[:, 0], b1[0], w2[0, :] = w1[:, 0] * 1000, b1[0] * 1000, w2[0, :] / 1000
    model.get_layer("fc1").set_weights([w1, b1])
    model.get_layer("fc2").set_weights([w2, b2])
    path = tmp_path / "loud.keras"
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
