"""`modelpress convert` and `modelpress inspect` through the real click command."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


def test_convert_prints_a_report_and_writes_a_package(runner, cli, models, data_dir, tmp_path):
    out = tmp_path / "rpi"
    result = runner.invoke(cli, ["convert", str(models["keras3"]), "--profile", "raspberry-pi-4", "--out", str(out),
                                 "--calibration", str(data_dir / "calib.npy")])
    assert result.exit_code == 0, result.output
    assert f"Wrote {out}" in result.output
    assert "quantization int8" in result.output and "top-1 agreement" in result.output
    assert (out / "model.tflite").is_file() and (out / "modelpress.json").is_file()


def test_convert_json_is_the_manifest(runner, cli, models, data_dir, tmp_path):
    out = tmp_path / "coral"
    result = runner.invoke(cli, ["convert", str(models["tf_keras"]), "-p", "coral-edgetpu", "-o", str(out),
                                 "-c", str(data_dir / "calib.npy"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["path"] == str(out)
    assert data["inputs"][0]["dtype"] == "uint8" and data["fidelity"]["top1_agreement"] >= 0.95
    assert data == {"path": str(out), **json.loads((out / "modelpress.json").read_text())}


@pytest.mark.parametrize(("args", "code", "message"), [
    (["convert", "{tmp}/missing.keras", "-p", "server-cpu", "-o", "{tmp}/o"], 3, "does not exist"),
    (["convert", "{model}", "-p", "rpi5", "-o", "{tmp}/o"], 2, "unknown device profile 'rpi5'"),
    (["convert", "{model}", "-p", "raspberry-pi-4", "-o", "{tmp}/o"], 4, "needs calibration samples"),
    (["convert", "{model}", "-p", "server-cpu", "-o", "{tmp}/o", "-q", "int2"], 2, "Invalid value for '-q'"),
    (["convert", "{model}", "-p", "raspberry-pi-4", "-o", "{tmp}/o", "-c", "{tmp}/nodata.npy"], 4,
     "nodata.npy does not exist"),
    (["inspect", "{tmp}/nothing"], 3, "does not exist"),
])
def test_expected_failures_are_one_clean_line(runner, cli, models, tmp_path, args, code, message):
    argv = [a.format(tmp=tmp_path, model=models["keras3"]) for a in args]
    result = runner.invoke(cli, argv)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_inspect_package_tflite_and_keras(runner, cli, models, data_dir, tmp_path):
    out = tmp_path / "mcu"
    assert runner.invoke(cli, ["convert", str(models["keras3"]), "-p", "cortex-m", "-o", str(out),
                               "-c", str(data_dir / "calib.npy")]).exit_code == 0
    package = runner.invoke(cli, ["inspect", str(out)])
    assert package.exit_code == 0
    assert "profile cortex-m" in package.output and "CONV_2D" in package.output
    assert "int8 [1, 8, 8, 1]" in package.output
    info = json.loads(runner.invoke(cli, ["inspect", str(out / "model.tflite"), "--json"]).output)
    assert info["kind"] == "tflite" and info["model"]["quantization"] == "int8"
    assert info["model"]["ops"]["CONV_2D"] == 2 and info["model"]["activation_bytes"] > 0
    keras_info = runner.invoke(cli, ["inspect", str(models["keras3"])])
    assert keras_info.exit_code == 0 and "parameters" in keras_info.output and "keras3" in keras_info.output


def test_help_teaches_with_examples(runner, cli):
    result = runner.invoke(cli, ["convert", "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "--calibration" in result.output and "raspberry-pi-4" in result.output
