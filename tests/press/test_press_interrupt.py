"""Ctrl-C during a press search ends the search, not the run: the trials measured so far are chosen from and
packaged, press.json says it was interrupted, no traceback; with worker processes the workers go too."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

DONE = re.compile(r"\b([1-9]\d*)trial")


def _press_then_ctrl_c(args: list[str], log, timeout: float = 240.0) -> tuple[subprocess.CompletedProcess, str]:
    """Run press in a session of its own and, once a trial is in and a fine-tuning is under way (in the driver or
    on the workers), send SIGINT to the whole process group (what a terminal's Ctrl-C does)."""
    command = [sys.executable, "-c", "from modelpress.cli.main import cli; cli()", "press", *args]
    with open(log, "w") as err_file:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err_file, text=True,
                                   start_new_session=True)
        began, sent = time.time(), False
        while process.poll() is None and time.time() - began < timeout:
            text = log.read_text()
            done = DONE.search(text)
            if done and ("fine-tuning" in text[done.end():] or "worker(s): prune" in text[done.end():]):
                time.sleep(1.0)
                os.killpg(process.pid, signal.SIGINT)
                sent = True
                break
            time.sleep(0.2)
        out = process.communicate(timeout=timeout)[0]
    err = log.read_text()
    assert sent, "press ended before a fine-tuning began: " + err[-2000:]
    return subprocess.CompletedProcess(process.pid, process.returncode, out, err), err


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_chooses_among_the_trials_measured(tmp_path, mlp_path, data_dir, workers):
    out = tmp_path / "out"
    result, err = _press_then_ctrl_c([str(mlp_path), "-p", "raspberry-pi-4", "-d", str(data_dir / "data.npz"),
                                      "-o", str(out), "--only", "quantize", "--only", "prune", "--epochs", "30",
                                      "--no-cache", "--max-drop", "5", "--workers", workers],
                                     tmp_path / "stderr.txt")
    assert result.returncode == 0, err[-3000:]
    assert "Traceback" not in err and "interrupted (Ctrl-C)" in err, err[max(0, err.find("Traceback") - 300):][:4000]
    document = json.loads((out / "press.json").read_text())
    assert document["stopped"].startswith("interrupted (Ctrl-C)")
    chosen = document["profiles"]["raspberry-pi-4"]["chosen"]
    assert chosen is not None and chosen["settings"]["family"] == "quantize"  # the prune trial never finished
    assert (out / "raspberry-pi-4" / "model.tflite").is_file()
    time.sleep(2.0)
    with pytest.raises(ProcessLookupError):  # nothing of the run's process group is left (no orphaned workers)
        os.killpg(result.args, 0)
