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


@pytest.fixture(scope="session")
def pressed(tmp_path_factory, mlp_path, data_dir):
    """One search (int8 and global pruning for cortex-m), shared by the tests that read its output."""
    import modelpress

    folder = tmp_path_factory.mktemp("pressed")
    result = modelpress.press(mlp_path, ["cortex-m"], data_dir / "data.npz", out=folder / "out", max_drop=1.0,
                              epochs=2, families=["prune"], cache=folder / "cache", progress=False)
    return result, folder
