"""`modelpress press` through the real command line (CliRunner)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


def test_press_cli_writes_package_json_and_report(runner, cli, mlp_path, data_dir, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(cli, ["press", str(mlp_path), "-p", "cortex-m", "-d", str(data_dir / "data.npz"),
                                 "--max-drop", "1", "--only", "quantize", "-o", str(out),
                                 "--cache", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    assert "cortex-m" in result.output and "press.json" in result.output
    assert (out / "cortex-m" / "modelpress.json").is_file()
    doc = json.loads((out / "press.json").read_text())
    assert doc["met"] and doc["options"]["max_drop_points"] == 1.0
    assert (out / "report" / "report.html").is_file()


def test_press_cli_budget_not_met_exits_non_zero_with_the_closest(runner, cli, mlp_path, data_dir, tmp_path):
    profile = tmp_path / "tiny.yaml"
    profile.write_text("name: tiny\nhardware: mcu\nquantization: int8\nmax_artifact_bytes: 1024\n")
    result = runner.invoke(cli, ["press", str(mlp_path), "-p", str(profile), "-d", str(data_dir / "data.npz"),
                                 "--only", "quantize", "-o", str(tmp_path / "out"), "--no-cache"])
    assert result.exit_code == 11, result.output
    assert "Error: tiny: none of" in result.output and "closest" in result.output
    assert "Traceback" not in result.output
    assert (tmp_path / "out" / "press.json").is_file()


@pytest.mark.parametrize("args, words", [
    (["--time-budget", "soon"], "90s, 20m or 1.5h"), (["--only", "magic"], "unknown search branch"),
    (["--objective", "speed"], "speed"),
])
def test_press_cli_bad_options(runner, cli, mlp_path, data_dir, tmp_path, args, words):
    result = runner.invoke(cli, ["press", str(mlp_path), "-p", "raspberry-pi-4", "-d", str(data_dir / "data.npz"),
                                 "-o", str(tmp_path / "out"), *args])
    assert result.exit_code == 2 and words in result.output and "Traceback" not in result.output
