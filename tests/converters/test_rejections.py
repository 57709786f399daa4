"""Artifacts that break a profile are rejected with the reason, and nothing is left on disk."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import modelpress
from modelpress.errors import ConstraintError, FidelityError, UsageError

pytestmark = pytest.mark.integration


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".modelpress-tmp"))


def test_an_op_the_edgetpu_cannot_run_is_named(digits, tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(16, activation="elu"), keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)
    with pytest.raises(ConstraintError, match=r"ops not supported on edgetpu \(coral-edgetpu\): ELU"):
        modelpress.convert(model, "coral-edgetpu", tmp_path / "tpu", calibration=digits.x_train[:200])
    assert not (tmp_path / "tpu").exists() and _leftovers(tmp_path) == []


def test_a_model_over_the_flash_budget_reports_the_overshoot(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(1024),
                              keras.layers.Dense(1024), keras.layers.Dense(10, activation="softmax")])
    overshoot = r"artifact is [\d,]+ bytes .*, [\d,]+ bytes .* over the 1,048,576 bytes \(1024\.0 KiB\) budget"
    with pytest.raises(ConstraintError, match=overshoot):
        modelpress.convert(model, "cortex-m", tmp_path / "mcu", calibration="random")
    assert not (tmp_path / "mcu").exists()


def test_fidelity_below_the_profile_floor_fails(models, data_dir, tmp_path):
    strict = tmp_path / "strict.yaml"
    strict.write_text("name: strict\nquantization: int8\nmax_abs_error: 0.000001\n")
    message = (r"max absolute error against the source model is 0\.0\d+ \(mean [\d.e-]+\); profile strict allows at "
               r"most 1e-06\. Calibrate on more representative data, choose a milder quantization than int8 "
               r"\(--quantization int16x8\)")
    with pytest.raises(FidelityError, match=message):
        modelpress.convert(models["keras3"], strict, tmp_path / "pkg", calibration=data_dir / "calib.npy")
    assert not (tmp_path / "pkg").exists()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"quantization": "int2"}, "quantization 'int2' is not one of none, dynamic, float16, int8, int16x8, int4"),
    ({"model_format": "saved_model"}, "profile raspberry-pi-4 builds tflite; format 'saved_model'"),
    ({"min_agreement": 1.5}, "min_agreement 1.5 must be between 0 and 1"),
])
def test_bad_options_are_named(models, tmp_path, kwargs, message):
    with pytest.raises(UsageError) as err:
        modelpress.convert(models["keras3"], "raspberry-pi-4", tmp_path / "pkg", calibration="random", **kwargs)
    assert message in str(err.value)


def test_edge_tpu_refuses_float_models(models, tmp_path):
    with pytest.raises(UsageError, match="runs only full-integer models; quantization must be int8, not 'float16'"):
        modelpress.convert(models["keras3"], "coral-edgetpu", tmp_path / "pkg", quantization="float16")


def test_an_existing_folder_of_other_files_is_never_replaced(models, data_dir, tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not a modelpress package; refusing to replace it"):
        modelpress.convert(models["keras3"], "server-cpu", out)
    assert (out / "notes.txt").read_text() == "keep me"


def test_an_older_package_is_replaced_whole(models, data_dir, tmp_path):
    out = tmp_path / "pkg"
    first = modelpress.convert(models["keras3"], "server-cpu", out, verify_data=data_dir / "verify.npy")
    second = modelpress.convert(models["keras3"], "android-gpu", out, verify_data=data_dir / "verify.npy")
    assert first.manifest.quantization == "none" and second.manifest.quantization == "float16"
    assert sorted(p.name for p in out.iterdir()) == ["model.tflite", "modelpress.json"]
    assert modelpress.Artifact.open(out).manifest.quantization == "float16"
    assert _leftovers(tmp_path) == []


def test_wrong_calibration_shape_says_what_was_expected(models, tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((10, 28, 28), np.float32))
    with pytest.raises(modelpress.ModelpressError, match=r"\(10, 28, 28\).*\[None, 8, 8, 1\]|28, 28.*8, 8, 1"):
        modelpress.convert(models["keras3"], "raspberry-pi-4", tmp_path / "pkg", calibration=bad)
