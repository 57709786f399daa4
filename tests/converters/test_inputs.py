"""Model files and data files as users bring them: good ones load, bad ones get one clear line."""

from __future__ import annotations

import zipfile

import keras
import numpy as np
import pytest

import modelpress
from modelpress.errors import DataError, ModelLoadError
from modelpress.model_io import load_model

pytestmark = pytest.mark.integration


def test_both_flavours_and_savedmodel_load(models, digits, tmp_path):
    k3 = load_model(models["keras3"])
    assert k3.flavor == "keras3" and len(k3.sha256) == 64
    legacy = load_model(models["tf_keras"], flavor="tf_keras")
    assert legacy.flavor == "tf_keras"
    np.testing.assert_allclose(k3.predict(digits.x_test[:8]).sum(1), 1.0, rtol=1e-5)
    sm = tmp_path / "sm"
    modelpress.convert(models["keras3"], "server-gpu", sm, model_format="saved_model",
                       verify_data=digits.x_test)
    saved = load_model(sm / "saved_model")
    assert saved.flavor == "saved_model"
    np.testing.assert_allclose(saved.predict(digits.x_test[:8]), k3.predict(digits.x_test[:8]), atol=1e-5)
    # a SavedModel converts on to TFLite like any other source
    art = modelpress.convert(sm / "saved_model", "android-gpu", tmp_path / "gpu", verify_data=digits.x_test)
    assert art.manifest.source["flavor"] == "saved_model" and art.manifest.fidelity["top1_agreement"] >= 0.99


def test_missing_file_names_the_path_and_what_was_expected(tmp_path):
    with pytest.raises(ModelLoadError, match=r"model .*nope\.keras does not exist; expected a Keras 3 \.keras file"):
        load_model(tmp_path / "nope.keras")


@pytest.mark.parametrize(("name", "content", "message"), [
    ("broken.keras", b"not a zip at all", "is not a valid .keras file (not a zip archive)"),
    ("broken.h5", b"\x00" * 64, "is not an HDF5 file (bad signature)"),
    ("model.onnx", b"onnx", "unsupported model file"),
    ("model.tflite", b"TFL3", "is already a TFLite model"),
])
def test_corrupt_and_wrong_kind_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ModelLoadError) as err:
        load_model(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_truncated_keras_file(models, tmp_path):
    data = models["keras3"].read_bytes()
    cut = tmp_path / "cut.keras"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=str(cut)):
        load_model(cut)


def test_folder_that_is_not_a_savedmodel(tmp_path):
    with pytest.raises(ModelLoadError, match="is a folder but not a SavedModel"):
        load_model(tmp_path)


def test_lambda_layers_need_an_explicit_opt_out_of_safe_mode(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2.0), keras.layers.Dense(2)])
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(ModelLoadError, match="--unsafe"):
        load_model(path)
    loaded = load_model(path, safe_mode=False)
    assert loaded.flavor == "keras3"
    assert zipfile.is_zipfile(path)


def test_calibration_from_npz_and_image_folder(models, digits, tmp_path):
    from PIL import Image

    npz = tmp_path / "calib.npz"
    np.savez(npz, x_train=digits.x_train[:120], y_train=digits.y_train[:120])
    art = modelpress.convert(models["keras3"], "raspberry-pi-4", tmp_path / "a", calibration=npz,
                             verify_data=digits.x_test)
    assert art.manifest.calibration["samples"] == 120 and art.manifest.fidelity["top1_agreement"] >= 0.97

    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(digits.x_train[:100]):
        Image.fromarray((image[..., 0] * 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    art = modelpress.convert(models["keras3"], "raspberry-pi-4", tmp_path / "b", calibration=folder,
                             verify_data=digits.x_test)
    assert art.manifest.calibration["samples"] == 100 and art.manifest.fidelity["top1_agreement"] >= 0.97


@pytest.mark.parametrize(("setup", "message"), [
    (lambda p: np.savez(p / "d.npz", labels=np.zeros(3), ids=np.ones(3)),
     "has arrays labels, ids; name the samples one of"),
    (lambda p: (p / "d.txt").write_text("1 2 3"), "unsupported data file"),
    (lambda p: (p / "empty").mkdir(), "holds no images"),
])
def test_bad_calibration_data(models, tmp_path, setup, message):
    setup(tmp_path)
    target = next(p for p in tmp_path.iterdir())
    with pytest.raises(DataError) as err:
        modelpress.convert(models["keras3"], "raspberry-pi-4", tmp_path / "pkg", calibration=target)
    assert message in str(err.value)
