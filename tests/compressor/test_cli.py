"""``modelpress compress`` / ``modelpress evaluate`` through the real CLI, and the Python API's data forms."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def compressed(tmp_path_factory, keras3_model, data_dir):
    """One real CLI run (prune-80 on the Keras 3 digits CNN), shared by the checks below."""
    from click.testing import CliRunner

    from modelpress.cli.main import cli

    out = tmp_path_factory.mktemp("cli") / "pruned"
    result = CliRunner().invoke(cli, ["compress", str(keras3_model), "--recipe", "prune-80", "--data",
                                      str(data_dir / "data.npz"), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_compress_writes_model_and_reports(compressed):
    out, report = compressed
    assert sorted(p.name for p in out.iterdir()) == ["model.keras", "report.json", "report.md"]
    assert report == {**json.loads((out / "report.json").read_text()), "model_path": str(out / "model.keras")}
    assert report["recipe"] == "prune-80" and report["flavor"] == "keras3"
    layers = {row["name"]: row for row in report["layers"]}
    assert layers["fc1"]["sparsity"] == pytest.approx(0.8, abs=1e-4)
    for key in ("params_before", "params_after", "unique_values", "macs_before", "macs_after"):
        assert key in layers["conv2"]
    for sizes in (report["sizes_before"], report["sizes_after"]):
        assert {"model_bytes", "model_gzip_bytes", "int8_tflite_bytes", "int8_tflite_gzip_bytes"} <= set(sizes)
    assert report["sizes_after"]["int8_tflite_gzip_bytes"] < report["sizes_before"]["int8_tflite_gzip_bytes"]
    markdown = (out / "report.md").read_text()
    assert "| fc1 | Dense |" in markdown and "int8 TFLite, gzip" in markdown


def test_evaluate_agrees_with_the_report(runner, cli, compressed, data_dir):
    out, report = compressed
    result = runner.invoke(cli, ["evaluate", str(out / "model.keras"), "--data", str(data_dir / "data.npz"),
                                 "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["accuracy"] == pytest.approx(report["accuracy_after"])


def test_evaluate_a_converted_tflite_package(runner, cli, compressed, data_dir, tmp_path):
    import modelpress

    out, report = compressed
    modelpress.convert(out / "model.keras", "raspberry-pi-4", tmp_path / "rpi", calibration=data_dir / "data.npz")
    result = runner.invoke(cli, ["evaluate", str(tmp_path / "rpi"), "--data", str(data_dir / "data.npz")])
    assert result.exit_code == 0, result.output
    assert "tflite" in result.output and "accuracy" in result.output
    value = modelpress.evaluate(tmp_path / "rpi", data_dir / "data.npz")
    assert value["kind"] == "tflite" and value["samples"] == 359
    assert value["accuracy"] == pytest.approx(report["sizes_after"]["int8_accuracy"], abs=0.02)


def test_compress_tf_keras_h5_stays_tf_keras(runner, cli, tf_keras_model, data_dir, tmp_path):
    out = tmp_path / "c16"
    result = runner.invoke(cli, ["compress", str(tf_keras_model), "--recipe", "cluster-16", "--data",
                                 str(data_dir / "data.npz"), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (out / "model.h5").is_file() and "tfmot cluster_weights" in result.output
    from modelpress.model_io import load_model

    loaded = load_model(out / "model.h5", flavor="tf_keras")
    assert loaded.flavor == "tf_keras"
    kernel = loaded.model.get_layer("fc1").get_weights()[0]
    assert np.unique(kernel).size == 16


@pytest.mark.parametrize("args, code, words", [
    (["--recipe", "prune-101"], 2, "unknown recipe 'prune-101'"),
    (["--recipe", "BAD_YAML"], 2, "sparsity 1.0 must be at least 0 and below 1"),
    (["--recipe", "prune-80", "--data", "MISSING"], 4, "does not exist"),
    (["--recipe", "prune-80", "--data", "WRONG_SHAPE"], 4, "shape [28, 28, 1], but the model takes [8, 8, 1]"),
])
def test_bad_input_gets_one_line_and_an_exit_code(runner, cli, keras3_model, data_dir, tmp_path, args, code, words):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("steps:\n  - {type: prune, sparsity: 1.0}\n")
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x_train=np.zeros((10, 28, 28, 1), np.float32), y_train=np.zeros(10, np.int64))
    subst = {"BAD_YAML": str(bad_yaml), "MISSING": str(tmp_path / "nope.npz"), "WRONG_SHAPE": str(wrong)}
    args = [subst.get(a, a) for a in args]
    if "--data" not in args:
        args += ["--data", str(data_dir / "data.npz")]
    result = runner.invoke(cli, ["compress", str(keras3_model), *args, "--out", str(tmp_path / "o")])
    assert result.exit_code == code, result.output
    assert words in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_out_folder_of_other_files_is_never_replaced(runner, cli, keras3_model, data_dir, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = runner.invoke(cli, ["compress", str(keras3_model), "--recipe", "prune-80", "--data",
                                 str(data_dir / "data.npz"), "--out", str(tmp_path / "mine")])
    assert result.exit_code == 2 and "refusing to replace it" in result.output
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_unsupported_topology_is_refused_by_the_cli(runner, cli, data_dir, tmp_path):
    import keras

    inp = keras.Input((8, 8, 1))
    a = keras.layers.Conv2D(4, 3, name="left")(inp)
    b = keras.layers.Conv2D(4, 3, name="right")(inp)
    x = keras.layers.Flatten()(keras.layers.Concatenate(name="concat")([a, b]))
    model = keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x))
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    model.save(tmp_path / "concat.keras")
    result = runner.invoke(cli, ["compress", str(tmp_path / "concat.keras"), "--recipe", "slim-50", "--data",
                                 str(data_dir / "data.npz"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 8
    assert "'concat' (Concatenate)" in result.output and "Traceback" not in result.output


def test_api_takes_arrays_and_tf_data(mlp_keras3, digits):
    import tensorflow as tf

    import modelpress

    recipe = {"name": "tiny", "finetune": {"epochs": 1}, "steps": [{"type": "prune", "sparsity": 0.5}]}
    result = modelpress.compress(mlp_keras3, recipe, (digits.x_train, digits.y_train), measure_int8=False)
    model, report = result
    assert report.data["val"] == int(len(digits.x_train) * 0.1) and result.model_path is None
    dataset = tf.data.Dataset.from_tensor_slices((digits.x_train, digits.y_train)).batch(64)
    _, report2 = modelpress.compress(mlp_keras3, recipe, dataset, measure_int8=False)
    assert report2.data["train"] + report2.data["val"] == len(digits.x_train)
