"""Every quantization mode, on real models of both Keras flavours, with fidelity asserted as numbers.
On server-cpu, dynamic / int8 / int16x8 / int4 are made by LiteRT's quantizer from the float32 model."""

from __future__ import annotations

import numpy as np
import pytest

import modelpress
from modelpress.model_io import load_model
from modelpress.tflite_graph import read_graph
from modelpress.tflite_interpreter import TFLiteModel

pytestmark = pytest.mark.integration

# quantization -> (largest max |error| accepted on softmax outputs, weight dtype expected in the file)
MODES = {
    "none": (1e-4, "float32"),
    "float16": (5e-3, "float16"),
    "dynamic": (0.1, "int8"),
    "int8": (0.1, "int8"),
    "int16x8": (0.05, "int8"),
    "int4": (0.3, "int4"),
}


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
@pytest.mark.parametrize("quantization", list(MODES))
def test_each_quantization_mode_is_faithful(models, data_dir, digits, tmp_path, flavor, quantization):
    source = load_model(models[flavor], flavor=flavor)
    assert source.flavor == flavor
    artifact = modelpress.convert(source, "server-cpu", tmp_path / "pkg", quantization=quantization,
                                  calibration=data_dir / "calib.npy", verify_data=data_dir / "verify.npy",
                                  min_agreement=0.97)  # server-cpu's own floor (99.9%) is for float32
    max_error, weight_dtype = MODES[quantization]
    fidelity = artifact.manifest.fidelity
    assert fidelity["samples"] == len(digits.x_test)
    assert fidelity["top1_agreement"] >= 0.97
    assert fidelity["max_abs_error"] <= max_error
    assert fidelity["mean_abs_error"] <= max_error / 4
    # the file really is what it claims: the tensor types imply the mode
    graph = read_graph(artifact.model_path.read_bytes())
    assert graph.quantization == quantization
    assert weight_dtype in graph.weight_types
    # and it classifies real held-out digits as well as its source
    probs = TFLiteModel(artifact.model_path).predict([digits.x_test])[0]
    accuracy = float(np.mean(probs.argmax(1) == digits.y_test))
    source_accuracy = float(np.mean(source.predict(digits.x_test).argmax(1) == digits.y_test))
    assert accuracy >= source_accuracy - 0.02
    assert artifact.manifest.quantization == quantization
    assert artifact.manifest.source["flavor"] == flavor


def test_integer_io_follows_the_quantization(models, data_dir, tmp_path):
    art = modelpress.convert(models["keras3"], "server-cpu", tmp_path / "a", quantization="int16x8",
                             calibration=data_dir / "calib.npy")
    assert [t.dtype for t in art.manifest.inputs] == ["float32"]  # server-cpu keeps float I/O
    coral = modelpress.convert(models["keras3"], "coral-edgetpu", tmp_path / "b", calibration=data_dir / "calib.npy")
    spec = coral.manifest.inputs[0]
    assert spec.dtype == "uint8" and spec.scale > 0 and 0 <= spec.zero_point <= 255
    assert spec.shape == [1, 8, 8, 1]  # Edge TPU models have static shapes


def test_int8_without_calibration_says_how_to_pass_it(models, tmp_path):
    with pytest.raises(modelpress.ModelpressError, match=r"--calibration FILE.npz\|FILE.npy\|IMAGE_FOLDER"):
        modelpress.convert(models["keras3"], "raspberry-pi-4", tmp_path / "pkg")
    assert not (tmp_path / "pkg").exists()


def test_random_calibration_is_explicit_and_recorded(models, tmp_path, caplog):
    art = modelpress.convert(models["keras3"], "raspberry-pi-4", tmp_path / "pkg", calibration="random")
    assert art.manifest.calibration["random"] is True
    assert art.manifest.fidelity["random_inputs"] is True
    assert any("random" in note for note in art.manifest.notes)
    assert "random samples" in caplog.text
