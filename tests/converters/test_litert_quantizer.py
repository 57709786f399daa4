"""LiteRT's quantizer: int4 weights, per-layer mixed precision and per-tensor errors, through the CLI and
the API on the real digits models; the converter's path kept for the devices the quantizer cannot serve."""

from __future__ import annotations

import json

import numpy as np
import pytest

import modelpress
from modelpress.device_profiles import load_profile
from modelpress.errors import ProfileError, UsageError
from modelpress.tflite_graph import read_graph
from modelpress.tflite_interpreter import TFLiteModel

pytestmark = pytest.mark.integration
pytest.importorskip("litert_quantizer")

LITERT = "by LiteRT's quantizer"


def _accuracy(model_path, digits) -> float:
    probs = TFLiteModel(model_path).predict([digits.x_test])[0]
    return float(np.mean(probs.argmax(1) == digits.y_test))


@pytest.fixture(scope="module")
def float32(models, data_dir, tmp_path_factory):
    return modelpress.convert(models["keras3"], "server-cpu", tmp_path_factory.mktemp("f32") / "pkg",
                              verify_data=data_dir / "verify.npy")


@pytest.mark.parametrize("profile", ["server-cpu", "android-gpu"])
def test_int4_weights_make_a_smaller_file_with_the_same_answers(profile, models, data_dir, digits, float32,
                                                                runner, cli, tmp_path):
    out = tmp_path / "int4"
    result = runner.invoke(cli, ["convert", str(models["keras3"]), "--profile", profile, "--quantization", "int4",
                                 "--verify-data", str(data_dir / "verify.npy"), "--min-agreement", "0.97",
                                 "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.output)
    assert manifest["quantization"] == "int4"
    assert any(LITERT in note for note in manifest["notes"])
    data = (out / "model.tflite").read_bytes()
    graph = read_graph(data)
    assert graph.quantization == "int4" and "int4" in graph.weight_types
    # smaller: int4 weights take an eighth of float32's room; the file is at least 4x smaller
    assert len(data) * 4 < float32.size_bytes
    # the same answers, within tolerance, on the 359 held-out digits
    fidelity = manifest["fidelity"]
    assert fidelity["samples"] == 359 and fidelity["top1_agreement"] >= 0.97
    assert fidelity["max_abs_error"] < 0.3 and fidelity["mean_abs_error"] < 0.02
    assert _accuracy(out / "model.tflite", digits) >= _accuracy(float32.model_path, digits) - 0.02
    # blockwise where the kernels support it: on CPU the dense layers' int4 weights come in blocks of 32,
    # each with a float16 scale (tensors of their own); on the GPU every weight is channelwise int4
    assert ("float16" in graph.weight_types) == (profile == "server-cpu")


def test_a_mixed_precision_recipe_from_yaml(models, data_dir, runner, cli, tmp_path):
    recipe = tmp_path / "mixed.yaml"
    recipe.write_text("# int16 activations in the first convolution, the classifier in float\n"
                      "default: int8\nlayers:\n  conv1: int16x8\n  probs: float\n")
    out = tmp_path / "mixed"
    result = runner.invoke(cli, ["convert", str(models["keras3"]), "--profile", "raspberry-pi-4", "--calibration",
                                 str(data_dir / "calib.npy"), "--verify-data", str(data_dir / "verify.npy"),
                                 "--layer-precision", str(recipe), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.output)
    assert manifest["quantization"] == "mixed"
    assert "per-layer precision: default int8; conv1: int16x8; probs: float" in manifest["notes"]
    assert manifest["fidelity"]["top1_agreement"] >= 0.95
    assert [t["dtype"] for t in manifest["inputs"]] == ["float32"]
    graph = read_graph((out / "model.tflite").read_bytes())
    assert {"int8", "int16"} <= graph.activation_types  # int8 layers and the int16 convolution
    assert "float32" in graph.weight_types  # the classifier kept its float weights
    plain = modelpress.convert(models["keras3"], "raspberry-pi-4", tmp_path / "int8",
                               calibration=data_dir / "calib.npy", verify_data=data_dir / "verify.npy")
    assert "float32" not in read_graph(plain.model_path.read_bytes()).weight_types


def test_layer_precision_as_options_and_in_python(models, data_dir, tmp_path):
    art = modelpress.convert(models["keras3"], "server-cpu", tmp_path / "pkg", quantization="dynamic",
                             verify_data=data_dir / "verify.npy", min_agreement=0.97,
                             layer_precision=["probs=float", "fc1=int4"])
    assert art.manifest.quantization == "mixed"
    assert "per-layer precision: default dynamic; probs: float; fc1: int4" in art.manifest.notes
    graph = read_graph(art.model_path.read_bytes())
    assert {"int8", "int4", "float32"} <= graph.weight_types
    assert art.manifest.calibration == {}  # no static layer: nothing to calibrate


@pytest.mark.parametrize(("profile", "kwargs", "message"), [
    ("server-cpu", {"layer_precision": {"default": "int3"}}, "precision 'int3' is not one of int8, int16x8"),
    ("server-cpu", {"layer_precision": ["conv1"]}, "expected PATTERN=PRECISION"),
    ("server-cpu", {"layer_precision": {"layers": {"conv(": "float"}}}, "is not a regular expression"),
    ("server-cpu", {"layer_precision": {"default": "int8", "layer": {}}}, "unknown key(s) layer"),
    ("coral-edgetpu", {"layer_precision": ["probs=float"]}, "profile coral-edgetpu (edgetpu, tflite) does not"),
    ("cortex-m", {"quantization": "int4"}, "runs only full-integer models; quantization must be int8"),
])
def test_recipes_the_device_cannot_take_are_named(models, tmp_path, profile, kwargs, message):
    with pytest.raises(UsageError) as err:
        modelpress.convert(models["keras3"], profile, tmp_path / "pkg", calibration="random", **kwargs)
    assert message in str(err.value)
    assert not (tmp_path / "pkg").exists()


def test_per_tensor_errors_are_stored_and_inspected(models, data_dir, runner, cli, tmp_path):
    art = modelpress.convert(models["keras3"], "raspberry-pi-4", tmp_path / "pkg", calibration=data_dir / "calib.npy",
                             verify_data=data_dir / "verify.npy")
    stats = art.manifest.fidelity["tensors"]
    assert stats["samples"] == 8 and stats["tensors_compared"] > 10
    kinds = [t["kind"] for t in stats["tensors"]]
    assert kinds[0] == "output" and {"activation", "weight"} <= set(kinds)
    assert stats["tensors"][0]["tensor"] == "probs"  # named as the signature names it
    for t in stats["tensors"]:
        assert t["snr_db"] is None or 10 < t["snr_db"] < 200
        assert 0.9 < t["cosine"] <= 1.0 + 1e-6
    activations = [t["snr_db"] for t in stats["tensors"] if t["kind"] == "activation"]
    assert activations == sorted(activations)  # the worst first
    result = runner.invoke(cli, ["inspect", str(tmp_path / "pkg")])
    assert result.exit_code == 0, result.output
    assert "per tensor" in result.output and "SNR" in result.output and "cosine" in result.output
    assert "output     SNR" in result.output and "probs" in result.output


def test_converter_path_stays_for_the_edge_tpu_and_on_request(models, data_dir, tmp_path):
    coral = modelpress.convert(models["keras3"], "coral-edgetpu", tmp_path / "tpu", calibration=data_dir / "calib.npy")
    assert not any(LITERT in note for note in coral.manifest.notes)
    assert coral.manifest.fidelity["tensors"] is None
    assert coral.manifest.inputs[0].dtype == "uint8"  # the converter's integer I/O, which the TPU needs
    # the same int8 mode on both paths, verified the same way
    converter = load_profile("raspberry-pi-4").get_config() | {"name": "rpi-converter", "quantizer": "converter"}
    (tmp_path / "rpi.yaml").write_text(json.dumps(converter))
    arts = {path: modelpress.convert(models["keras3"], profile, tmp_path / path, calibration=data_dir / "calib.npy",
                                     verify_data=data_dir / "verify.npy")
            for path, profile in (("converter", tmp_path / "rpi.yaml"), ("litert", "raspberry-pi-4"))}
    for path, art in arts.items():
        assert art.manifest.quantization == "int8"
        assert read_graph(art.model_path.read_bytes()).quantization == "int8"
        assert art.manifest.fidelity["top1_agreement"] >= 0.95
        assert art.manifest.fidelity["max_abs_error"] < 0.1
        assert any(LITERT in note for note in art.manifest.notes) == (path == "litert")


def test_a_profile_names_a_known_quantizer():
    with pytest.raises(ProfileError, match=r"field 'quantizer' is 'tflm'; allowed values: litert, converter"):
        load_profile("raspberry-pi-4").from_config({"name": "x", "quantizer": "tflm"})
    assert load_profile("raspberry-pi-4").quantizes_with == "litert"
    assert load_profile("coral-edgetpu").quantizes_with == "converter"
    assert load_profile("cortex-m").quantizes_with == "converter"
