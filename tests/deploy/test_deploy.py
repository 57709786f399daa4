"""`modelpress deploy` publishes complete, verified versions into a model repository."""

from __future__ import annotations

import json
import os

import pytest

import modelpress
from modelpress.errors import ConstraintError, UsageError
from modelpress.manifest import read_manifest

pytestmark = pytest.mark.integration


def test_deploy_publishes_next_versions(models, data_dir, tmp_path):
    repo = tmp_path / "repo"
    first = modelpress.deploy(models["keras3"], "raspberry-pi-4", repo, data=data_dir / "data.npz", name="digits")
    second = modelpress.deploy(models["keras3"], "raspberry-pi-4", repo, data=data_dir / "data.npz", name="digits")
    assert [p.version for p in first.published] == [1] and [p.version for p in second.published] == [2]
    assert sorted(p.name for p in (repo / "digits").iterdir()) == ["1", "2"]  # no staging left behind
    manifest = read_manifest(repo / "digits" / "2")
    assert manifest.version == "2" and manifest.name == "digits" and manifest.quantization == "int8"
    assert manifest.fidelity["top1_agreement"] >= 0.95 and not manifest.fidelity["random_inputs"]


def test_several_profiles_publish_one_model_each(runner, cli, models, data_dir, tmp_path):
    repo = tmp_path / "repo"
    result = runner.invoke(cli, ["deploy", str(models["tf_keras"]), "-p", "server-cpu", "-p", "coral-edgetpu",
                                 "--data", str(data_dir / "data.npz"), "--repo", str(repo), "--name", "dg", "--json",
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["rows"]
    assert [(r["model"], r["version"], r["quantization"]) for r in rows] == [
        ("dg-server-cpu", 1, "none"), ("dg-coral-edgetpu", 1, "int8")]
    assert read_manifest(repo / "dg-coral-edgetpu" / "1").inputs[0].dtype == "uint8"


def test_a_failed_profile_publishes_nothing(digits, tmp_path):
    import keras

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(8, activation="elu"),
                              keras.layers.Dense(10, activation="softmax")])
    repo = tmp_path / "repo"
    with pytest.raises(ConstraintError, match="ELU"):
        modelpress.deploy(model, "coral-edgetpu", repo, calibration=digits.x_train[:100], name="elu")
    assert list(repo.iterdir()) == []  # neither a version nor an empty model folder nor a staging folder


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"profiles": []}, "deploy needs at least one --profile"),
    ({"recipe": "prune-80"}, "recipe 'prune-80' fine-tunes the model: pass --data"),
    ({"name": "../escape"}, "model name '../escape' cannot be a repository folder"),
])
def test_bad_deploy_arguments(models, tmp_path, kwargs, message):
    arguments = {"profiles": "server-cpu", **kwargs}
    with pytest.raises(UsageError) as err:
        modelpress.deploy(models["keras3"], repo=tmp_path / "repo", **arguments)
    assert message in str(err.value)


def test_a_running_server_picks_up_the_next_deployed_version(models, data_dir, tmp_path):
    import time

    import numpy as np

    from modelpress.demo.serving import http_json, running_server

    repo = tmp_path / "repo"
    modelpress.deploy(models["keras3"], "server-cpu", repo, data=data_dir / "data.npz", name="digits")
    sample = np.load(data_dir / "verify.npy")[:2]
    with running_server(repo, model="digits") as url:
        status, answer = http_json("POST", f"{url}/v1/models/digits:predict", {"instances": sample.tolist()})
        assert status == 200 and len(answer["predictions"]) == 2
        published = modelpress.deploy(models["keras3"], "raspberry-pi-4", repo, data=data_dir / "data.npz",
                                      name="digits").published[0]
        assert published.version == 2
        deadline = time.monotonic() + 30
        while True:  # the server polls every 0.5 s; the new version is warmed up before it takes traffic
            status, body = http_json("POST", f"{url}/v2/models/digits/infer", {"inputs": [{
                "name": published.artifact.manifest.inputs[0].name, "shape": list(sample.shape), "datatype": "FP32",
                "data": sample.ravel().tolist()}]})
            assert status == 200, body
            if body["model_version"] == "2" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert body["model_version"] == "2"
        assert np.asarray(body["outputs"][0]["data"]).reshape(2, 10).argmax(1).tolist() == \
            np.asarray(answer["predictions"]).argmax(1).tolist()


def _png_size(path) -> tuple[int, int]:
    """Width and height from a PNG's signature and IHDR chunk (ValueError when it is not a PNG)."""
    import struct

    head = path.read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG")
    return struct.unpack(">II", head[16:24])


def test_deploy_with_data_records_held_out_accuracy_and_latency_and_plots_them(runner, cli, models, digits, tmp_path):
    """Two profiles, real digits: the run folder's deploy.json holds what each published artifact scores on the
    npz's held-out x_test / y_test (recomputed here from the artifact) and its latency; the report plots them."""
    import numpy as np

    data = tmp_path / "data.npz"  # x_test / y_test: held out from everything deploy uses
    np.savez_compressed(data, x_train=digits.x_train, y_train=digits.y_train, x_test=digits.x_test,
                        y_test=digits.y_test)
    repo, run = tmp_path / "repo", tmp_path / "run"
    result = runner.invoke(cli, ["deploy", str(models["keras3"]), "-p", "raspberry-pi-4", "-p", "cortex-m",
                                 "--data", str(data), "--repo", str(repo), "--name", "dg", "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert f"report: {run / 'report' / 'report.html'}" in result.output
    document = json.loads((run / "deploy.json").read_text())
    rows = {r["profile"]: r for r in document["rows"]}
    assert set(rows) == {"raspberry-pi-4", "cortex-m"}
    for row in rows.values():
        assert 0.0 < row["accuracy"] <= 1.0 and row["samples"] == len(digits.x_test)
        assert row["eval_data"] == "data.npz x_test/y_test"
        assert row["p50_ms"] > 0 and row["latency_runs"] > 0
        again = modelpress.evaluate(repo / row["model"] / "1", {"x_val": digits.x_test, "y_val": digits.y_test,
                                                               "x_train": digits.x_train, "y_train": digits.y_train})
        assert row["accuracy"] == pytest.approx(again["accuracy"]) and again["samples"] == row["samples"]
    assert rows["cortex-m"]["input_dtype"] == "int8"  # scored through its int8 input, as served
    report = run / "report"
    for name in ("size_vs_accuracy.png", "latency_vs_accuracy.png"):
        width, height = _png_size(report / name)
        assert width > 100 and height > 100
    markdown = (report / "report.md").read_text()
    assert "dg-cortex-m" in markdown and "p50 ms" in markdown and "accuracy" in markdown
    assert "latency_vs_accuracy.png" in (report / "report.html").read_text()


def test_deploy_out_must_be_a_folder(models, data_dir, tmp_path):
    (tmp_path / "run").write_text("not a folder")
    with pytest.raises(UsageError, match="is a file"):
        modelpress.deploy(models["keras3"], "server-cpu", tmp_path / "repo", data=data_dir / "data.npz",
                          out=tmp_path / "run")


def test_published_files_get_the_modes_the_umask_gives(models, tmp_path):
    """A service running as its own user (examples/device-service: User=modelpress) must be able to read what
    deploy wrote: temporary folders and files are 0700 / 0600, and a rename keeps the mode."""
    from modelpress.atomic import atomic_directory, atomic_write_bytes

    repo = tmp_path / "repo"
    old = os.umask(0o022)
    try:
        modelpress.deploy(models["keras3"], "server-cpu", repo, name="digits")
        os.umask(0o027)
        atomic_write_bytes(tmp_path / "out" / "result.json", b"{}")
        with atomic_directory(tmp_path / "out" / "package") as folder:
            (folder / "model.tflite").write_bytes(b"x")
    finally:
        os.umask(old)
    published = [repo / "digits", *sorted((repo / "digits").rglob("*"))]
    assert len(published) >= 4  # the model folder, its version, the model file and the manifest at least
    for path in published:
        assert path.stat().st_mode & 0o777 == (0o755 if path.is_dir() else 0o644), path
    assert (tmp_path / "out" / "result.json").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "out" / "package").stat().st_mode & 0o777 == 0o750
