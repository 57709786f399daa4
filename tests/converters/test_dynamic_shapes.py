"""Models with dynamic dimensions other than the batch: a clear error naming the input and its open axes
when nothing fixes them, --input-shape (or calibration data) when something does; the dimension stays
dynamic where the profile allows (the runtime resizes) and is fixed for static-shape devices."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import modelpress
from modelpress.errors import DataError, UsageError
from modelpress.tflite_interpreter import TFLiteModel

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def spectro(tmp_path_factory):
    """A tiny classifier over a spectrogram of any length ([batch, 4, None, 1]), saved as .keras."""
    keras.utils.set_random_seed(0)
    x = keras.Input((4, None, 1), name="spec")
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(x, keras.layers.Dense(3, activation="softmax", name="probs")(h))
    path = tmp_path_factory.mktemp("spectro") / "spectro.keras"
    model.save(path)
    return path


def test_an_unfixed_dynamic_dimension_is_named(runner, cli, spectro, tmp_path):
    result = runner.invoke(cli, ["convert", str(spectro), "-p", "server-cpu", "-o", str(tmp_path / "pkg")])
    assert result.exit_code == DataError.exit_code
    assert "input 'spec' has dynamic dimension(s) at axis 2 (shape [None, 4, None, 1])" in result.output
    assert "--input-shape spec=1x4xNx1" in result.output
    assert not (tmp_path / "pkg").exists()


def test_input_shape_keeps_the_dimension_dynamic_on_a_server(runner, cli, spectro, tmp_path):
    out = tmp_path / "pkg"
    result = runner.invoke(cli, ["convert", str(spectro), "-p", "server-cpu", "-o", str(out),
                                 "--input-shape", "spec=1x4x16x1"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "modelpress.json").read_text())
    assert manifest["inputs"][0]["shape"] == [-1, 4, -1, 1]
    assert any("verified at spec=[N, 4, 16, 1]" in note for note in manifest["notes"])
    # the runtime resizes: another length runs and agrees with the source
    x = np.random.default_rng(0).random((2, 4, 30, 1), dtype=np.float32)
    got = TFLiteModel(out / "model.tflite").predict([x])[0]
    np.testing.assert_allclose(got, np.asarray(keras.saving.load_model(spectro)(x)), atol=1e-5)


def test_a_static_device_gets_the_shape_fixed_and_calibration_data_fixes_it(spectro, tmp_path):
    calib = np.random.default_rng(0).random((60, 4, 12, 1), dtype=np.float32)
    art = modelpress.convert(spectro, "cortex-m", tmp_path / "mcu", calibration=calib, min_agreement=0.5)
    assert art.manifest.inputs[0].shape == [1, 4, 12, 1] and art.manifest.inputs[0].dtype == "int8"


@pytest.mark.parametrize(("shapes", "message"), [
    (["nope=1x4x16x1"], "--input-shape names 'nope', which the model does not have; its inputs are 'spec'"),
    (["spec=1x4x16"], "has 3 dimensions; input 'spec' has 4"),
    (["spec=1x5x16x1"], "contradicts the model's [None, 4, None, 1] at axis 1"),
    (["spec=1x4y16"], "must be NAME=DIMS"),
])
def test_bad_input_shapes_are_explained(spectro, tmp_path, shapes, message):
    with pytest.raises(UsageError) as err:
        modelpress.convert(spectro, "server-cpu", tmp_path / "pkg", input_shapes=shapes)
    assert message in str(err.value)
