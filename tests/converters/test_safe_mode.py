"""Model files that carry code (Lambda layers) are refused through the CLI unless the user passes --unsafe;
a legacy .h5 file is held to the same rule (tf_keras, the fallback loader, has no safe mode of its own)."""

from __future__ import annotations

import keras
import pytest

from modelpress.manifest import read_manifest

pytestmark = pytest.mark.integration


def _lambda_model(api):
    return api.Sequential([api.Input((8, 8, 1)), api.layers.Lambda(lambda x: x * 2.0), api.layers.Flatten(),
                           api.layers.Dense(10, activation="softmax")])


@pytest.fixture(scope="module")
def lambda_files(tmp_path_factory):
    import tf_keras

    folder = tmp_path_factory.mktemp("lambda")
    _lambda_model(keras).save(folder / "lambda.keras")
    _lambda_model(tf_keras).save(folder / "lambda.h5")
    return folder


@pytest.mark.parametrize("name", ["lambda.keras", "lambda.h5"])
def test_convert_refuses_a_lambda_layer_and_unsafe_accepts_it(runner, cli, lambda_files, tmp_path, name):
    model, out = lambda_files / name, tmp_path / "out"
    refused = runner.invoke(cli, ["convert", str(model), "-p", "server-cpu", "-o", str(out)])
    assert refused.exit_code == 3, refused.output
    assert (f"Error: {model} contains a Lambda layer or other arbitrary code, which safe mode refuses to run; "
            "if you trust the file, pass --unsafe") in refused.output
    assert "Traceback" not in refused.output and not out.exists()
    accepted = runner.invoke(cli, ["convert", str(model), "-p", "server-cpu", "-o", str(out), "--unsafe"])
    assert accepted.exit_code == 0, accepted.output
    assert read_manifest(out).model_format == "tflite"


def test_deploy_refuses_a_lambda_layer_and_publishes_nothing(runner, cli, lambda_files, tmp_path):
    repo = tmp_path / "repo"
    refused = runner.invoke(cli, ["deploy", str(lambda_files / "lambda.h5"), "-p", "server-cpu", "-r", str(repo)])
    assert refused.exit_code == 3 and "pass --unsafe" in refused.output
    assert not repo.exists() or list(repo.iterdir()) == []
