"""A build script that calls the Python API gets modelpress's lines on stderr, not TensorFlow's or CUDA's
native start-up chatter (``E0000 ... failed call to cuInit`` on a machine without a GPU, absl's banner, the
CPU feature banner, LiteRT's XNNPACK line), from this process or the conversion's child process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

NATIVE = re.compile(r"^[IWE]\d{4} |cuInit|absl::InitializeLog|cudart_stub|cpu_feature_guard|"
                    r"To enable the following instructions|XNNPACK delegate", re.MULTILINE)


def test_convert_through_the_python_api_keeps_native_noise_off_stderr(keras3_model, tmp_path):
    script = tmp_path / "build.py"
    script.write_text(textwrap.dedent(f"""
        import modelpress

        artifact = modelpress.convert({str(keras3_model)!r}, "raspberry-pi-4", {str(tmp_path / "pkg")!r},
                                      calibration="random", min_agreement=0.0)
        print("built", artifact.manifest.quantization)
    """), encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "ABSL_MIN_LOG_LEVEL", "GRPC_VERBOSITY", "MODELPRESS_ISOLATE")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("built int8")
    assert not NATIVE.search(done.stderr), done.stderr
    # modelpress's own warning (random calibration data) still reaches the script's log
    assert "calibrating on" in done.stderr and "random samples" in done.stderr
