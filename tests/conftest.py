"""Fixtures shared by every test folder. Nothing here imports TensorFlow at import time: the runtime's
tests collect this file in an environment without it. Model fixtures train real tiny models once per
session on scikit-learn's digits (skipped where TensorFlow is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner


@pytest.fixture(scope="session", autouse=True)
def _own_press_cache(tmp_path_factory):
    """press's trial cache in a folder of the test session's own: a trial cached by another run (other code,
    another session) must never decide what a test sees, and the user's ~/.cache stays untouched."""
    import os

    saved = os.environ.get("MODELPRESS_CACHE")
    os.environ["MODELPRESS_CACHE"] = str(tmp_path_factory.mktemp("press-cache"))
    yield
    if saved is None:
        os.environ.pop("MODELPRESS_CACHE", None)
    else:
        os.environ["MODELPRESS_CACHE"] = saved


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def cli():
    from modelpress.cli.main import cli as command

    return command


@pytest.fixture(scope="session")
def digits():
    pytest.importorskip("sklearn")
    from modelpress.demo.example import digits_data

    return digits_data(seed=0)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory, digits) -> Path:
    """calib.npy (300 real training images), verify.npy (the 359 test images), data.npz (the split)."""
    folder = tmp_path_factory.mktemp("data")
    np.save(folder / "calib.npy", digits.x_train[:300])
    np.save(folder / "verify.npy", digits.x_test)
    digits.save_npz(folder / "data.npz")
    return folder


@pytest.fixture(scope="session")
def keras3_model(tmp_path_factory, digits) -> Path:
    pytest.importorskip("tensorflow")
    from modelpress.demo.example import train_example_model

    path = tmp_path_factory.mktemp("keras3") / "digits.keras"
    train_example_model(digits, flavor="keras3", epochs=6).save(path)
    return path


@pytest.fixture(scope="session")
def tf_keras_model(tmp_path_factory, digits) -> Path:
    """A Keras 2 model saved as legacy .h5, as users of older training code bring."""
    pytest.importorskip("tf_keras")
    from modelpress.demo.example import train_example_model

    path = tmp_path_factory.mktemp("tf_keras") / "digits.h5"
    train_example_model(digits, flavor="tf_keras", epochs=6).save(path)
    return path


@pytest.fixture(scope="session")
def models(keras3_model, tf_keras_model) -> dict[str, Path]:
    return {"keras3": keras3_model, "tf_keras": tf_keras_model}
