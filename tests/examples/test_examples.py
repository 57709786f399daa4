"""The examples work as shipped: the build script publishes, both client scripts talk to a real server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_build_script_then_both_clients_against_a_real_server(tmp_path):
    from modelpress.demo.serving import running_server

    repo = tmp_path / "build" / "repo"
    built = _run(str(EXAMPLES / "build_script.py"), "--repo", str(repo), cwd=tmp_path)
    assert built.returncode == 0, built.stderr[-2000:]
    assert "digits-raspberry-pi-4 v1" in built.stdout and "digits-coral-edgetpu v1" in built.stdout
    with running_server(repo, model="digits-raspberry-pi-4") as url:
        v1 = _run(str(EXAMPLES / "clients" / "tfserving_v1_client.py"), "--url", url, "--model",
                  "digits-raspberry-pi-4", cwd=tmp_path)
        assert v1.returncode == 0, v1.stderr
        assert "predicted 0" in v1.stdout and "true label 0" in v1.stdout
        for extra in ([], ["--binary"]):
            v2 = _run(str(EXAMPLES / "clients" / "open_inference_v2_client.py"), "--url", url.removeprefix("http://"),
                      "--model", "digits-coral-edgetpu", *extra, cwd=tmp_path)
            assert v2.returncode == 0, v2.stderr
            assert "server modelpress, model digits-coral-edgetpu version 1" in v2.stdout
            assert "predicted 0" in v2.stdout
