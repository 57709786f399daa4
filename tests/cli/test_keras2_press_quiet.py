"""press on a Keras 2 (tf_keras) model, through a real subprocess: what tf_keras says while press fine-tunes,
keeps and reloads a candidate asks nothing of the user and stays off the terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_pressing_a_keras2_model_fine_tunes_it_without_warnings_that_ask_nothing(tf_keras_model, data_dir, tmp_path):
    """press fine-tunes the .h5 as tf_keras, keeps the candidate in its cache as .h5 and reloads it: tf_keras's
    "You are saving your model as an HDF5 file ... legacy" (modelpress picked .h5, the format every Keras reads)
    and "Compiled the loaded model, but the compiled metrics have yet to be built" must not reach the user."""
    command = [sys.executable, "-c", "from modelpress.cli.main import cli; cli()", "press", str(tf_keras_model),
               "-p", "raspberry-pi-4", "-d", str(data_dir / "data.npz"), "--only", "slim", "--epochs", "1",
               "--time-budget", "30s", "--cache", str(tmp_path / "cache"), "-o", str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert done.returncode == 0, done.stderr
    press = json.loads((tmp_path / "out" / "press.json").read_text())
    slimmed = [t for t in press["trials"] if t["settings"]["family"] == "slim" and t["error"] is None]
    assert slimmed and not any(t["cached"] for t in slimmed)                        # fine-tuned in this run
    assert list((tmp_path / "cache" / "models").glob("*.h5"))                      # kept as .h5
    assert "HDF5 file" not in done.stderr and "compiled metrics" not in done.stderr
    assert "Traceback" not in done.stderr
