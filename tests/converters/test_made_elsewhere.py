"""Models made elsewhere: ``modelpress package`` wraps a .tflite or SavedModel with a manifest read from
the model, and ``modelpress serve`` serves a version folder holding only the model file. Every I/O dtype
(int32, int64, bool, float16, float32, quantized int8), several inputs and outputs, a chosen signature
runner and a stateful model, through the CLI, the API and real HTTP."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import requests

import modelpress
from modelpress.errors import ConstraintError, DataError
from modelpress.testing.models import write_dtype_model, write_multi_output_saved_model, write_stateful_model
from modelpress.testing.server import served
from modelpress.tflite_interpreter import TFLiteModel

pytestmark = pytest.mark.integration
PACKAGES = Path(__file__).parents[1] / "runtime" / "fixtures" / "packages"
V2_TYPES = {"int32": "INT32", "int64": "INT64", "bool": "BOOL", "float16": "FP16", "float32": "FP32"}


@pytest.fixture(scope="module")
def made_elsewhere(tmp_path_factory):
    folder = tmp_path_factory.mktemp("elsewhere")
    return {"dtypes": write_dtype_model(folder / "dtypes.tflite"),
            "counter": write_stateful_model(folder / "counter.tflite"),
            "audio": write_multi_output_saved_model(folder / "audio_sm")}


def _dtype_feed(rows: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"count": rng.integers(-5, 5, (rows, 4)).astype(np.int32), "ids": rng.integers(0, 2**40, (rows, 4)),
            "mask": rng.random((rows, 4)) > 0.5, "half": rng.random((rows, 4)).astype(np.float16),
            "x": rng.random((rows, 4), dtype=np.float32)}


def _infer(url: str, model: str, feed: dict[str, np.ndarray]) -> dict:
    body = {"inputs": [{"name": k, "shape": list(v.shape), "datatype": V2_TYPES[v.dtype.name],
                        "data": v.ravel().tolist()} for k, v in feed.items()]}
    answer = requests.post(f"{url}/v2/models/{model}/infer", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    return {o["name"]: o for o in answer.json()["outputs"]}


def test_package_reads_the_manifest_from_the_model(runner, cli, made_elsewhere, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    result = runner.invoke(cli, ["package", str(made_elsewhere["dtypes"]), "--out", str(tmp_path / "pkg"),
                                 "--profile", "server-cpu", "--labels", str(labels), "--name", "dtypes"])
    assert result.exit_code == 0, result.output
    assert "constraints met" in result.output and "latency       p50" in result.output
    manifest = json.loads((tmp_path / "pkg" / "modelpress.json").read_text())
    assert manifest["inferred"] is True and manifest["labels_file"] == "labels.txt"
    assert {i["name"]: i["dtype"] for i in manifest["inputs"]} == {
        "count": "int32", "ids": "int64", "mask": "bool", "half": "float16", "x": "float32"}
    assert {o["name"]: o["dtype"] for o in manifest["outputs"]} == {
        "total": "int32", "ids_plus_one": "int64", "any": "bool", "y": "float32"}
    assert manifest["artifact"]["verified_on"]["samples"] >= 1


def test_package_checks_the_profile_and_dynamic_shapes(made_elsewhere, tmp_path):
    # an int8 microcontroller cannot take float / int64 / bool inputs: each offending tensor is named
    with pytest.raises(ConstraintError, match="input 'ids' is int64; the profile needs int8"):
        modelpress.package(made_elsewhere["dtypes"], tmp_path / "mcu", profile="cortex-m")
    assert not (tmp_path / "mcu").exists()
    energy = _energy_model(tmp_path / "energy.tflite")
    with pytest.raises(DataError, match="input 'audio' has dynamic dimension"):
        modelpress.package(energy, tmp_path / "energy")
    art = modelpress.package(energy, tmp_path / "energy", input_shapes={"audio": [1, 1280]})
    assert art.manifest.inputs[0].shape == [-1, -1]


def _energy_model(path: Path) -> Path:
    """A .tflite over audio of any length ([batch, None])."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="audio")])
    def serve(audio):
        return {"energy": tf.reduce_mean(audio * audio, axis=1, keepdims=True)}

    module = tf.Module()
    module.serve = serve
    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], module).convert())
    return path


def test_a_saved_model_made_elsewhere_is_packaged(made_elsewhere, tmp_path):
    art = modelpress.package(made_elsewhere["audio"], tmp_path / "pkg")
    assert art.manifest.model_format == "saved_model" and art.manifest.inferred
    assert [o.name for o in art.manifest.outputs] == ["embedding", "scores", "spectrogram"]
    assert {o.name: o.role for o in art.manifest.outputs}["scores"] == "class_scores"


def test_bare_model_files_are_served_with_an_inferred_manifest(made_elsewhere, tmp_path):
    repo = tmp_path / "repo"
    for name, source in (("dtypes", made_elsewhere["dtypes"]), ("counter", made_elsewhere["counter"]),
                         ("int8", PACKAGES / "int8" / "model.tflite")):
        (repo / name / "1").mkdir(parents=True)
        shutil.copy(source, repo / name / "1" / "model.tflite")
    (repo / "audio" / "1").mkdir(parents=True)
    shutil.copytree(made_elsewhere["audio"], repo / "audio" / "1", dirs_exist_ok=True)  # TF Serving's layout
    (repo / "dtypes" / "config.yaml").write_text("tensor_names: {y: doubled}\n")
    feed = _dtype_feed()
    direct = TFLiteModel(made_elsewhere["dtypes"]).predict_named(feed)
    with served(repo, "--poll-interval", "0") as server:
        status = requests.get(f"{server.url}/status", timeout=10).json()["models"]
        for name in ("dtypes", "counter", "int8", "audio"):
            row = status[name]["versions"][0]
            assert (row["state"], row["manifest"]) == ("AVAILABLE", "inferred"), row
        meta = requests.get(f"{server.url}/v2/models/dtypes", timeout=10).json()
        assert meta["parameters"]["manifest"] == "inferred"
        assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {
            "count": "INT32", "ids": "INT64", "mask": "BOOL", "half": "FP16", "x": "FP32"}
        outputs = _infer(server.url, "dtypes", feed)
        assert outputs["total"]["datatype"] == "INT32" and outputs["any"]["datatype"] == "BOOL"
        np.testing.assert_array_equal(np.reshape(outputs["ids_plus_one"]["data"], (3, 4)), direct["ids_plus_one"])
        np.testing.assert_array_equal(np.reshape(outputs["any"]["data"], (3, 1)), direct["any"])
        np.testing.assert_allclose(np.reshape(outputs["doubled"]["data"], (3, 4)), direct["y"], rtol=1e-6)
        # stateful: metadata says so, and one state (one interpreter) answers requests in turn
        counter = requests.get(f"{server.url}/v2/models/counter", timeout=10).json()
        assert counter["parameters"]["stateful"] is True
        one = {"x": np.ones((1, 2), np.float32)}
        totals = [_infer(server.url, "counter", one)["total"]["data"] for _ in range(3)]
        assert totals == [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]
        # a quantized model made elsewhere: real values in, real values out
        x = np.random.default_rng(0).random((2, 8, 8, 1), dtype=np.float32)
        want = TFLiteModel(PACKAGES / "int8" / "model.tflite").predict([x])[0]
        name = TFLiteModel(PACKAGES / "int8" / "model.tflite").input_details[0]["name"]
        got = _infer(server.url, "int8", {name: x})
        np.testing.assert_allclose(np.reshape(next(iter(got.values()))["data"], want.shape), want, atol=1e-6)
        # a SavedModel folder (saved_model.pb in the version folder), three named outputs
        audio = np.random.default_rng(1).normal(size=(2, 16)).astype(np.float32)
        answer = _infer(server.url, "audio", {"audio": audio})
        assert set(answer) == {"embedding", "scores", "spectrogram"} and answer["spectrogram"]["shape"] == [2, 4, 4]


def test_deploy_publishes_a_tflite_made_elsewhere(made_elsewhere, tmp_path):
    result = modelpress.deploy(str(made_elsewhere["counter"]), "server-cpu", tmp_path / "repo")
    (published,) = result.published
    assert published.version == 1 and published.artifact.manifest.stateful
    assert (tmp_path / "repo" / "counter" / "1" / "modelpress.json").is_file()


def test_a_corrupt_model_file_is_named_as_the_user_gave_it(runner, cli, made_elsewhere, tmp_path):
    """The error names the user's file, not its copy inside the hidden staging folder; nothing is written."""
    bad = tmp_path / "truncated.tflite"
    bad.write_bytes(made_elsewhere["dtypes"].read_bytes()[:1000])
    result = runner.invoke(cli, ["package", str(bad), "--out", str(tmp_path / "pkg")])
    assert result.exit_code == 9, result.output
    assert f"{bad} is not a valid TFLite model" in result.output and ".modelpress-tmp" not in result.output
    assert not (tmp_path / "pkg").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["truncated.tflite"]
