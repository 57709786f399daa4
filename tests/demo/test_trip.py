"""The main job's own code path, in its reduced mode, through the real CLI command."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


def test_demo_quick_runs_the_trip_and_prints_one_table(runner, cli, tmp_path):
    out = tmp_path / "demo"
    result = runner.invoke(cli, ["demo", "--quick", "--out", str(out), "-p", "server-cpu", "-p", "raspberry-pi-4",
                                 "-p", "coral-edgetpu"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("model ") and "profile" in line)
    table = lines[header + 2: header + 6]
    assert [line.split()[1] for line in table] == ["keras", "server-cpu", "raspberry-pi-4", "coral-edgetpu"]
    saved = json.loads((out / "results.json").read_text())
    rows = {row["profile"]: row for row in saved["rows"]}
    assert rows["keras (source)"]["accuracy"] > 0.85  # 3 epochs on real digits
    for name in ("server-cpu", "raspberry-pi-4", "coral-edgetpu"):
        assert rows[name]["agreement"] >= 0.95
        assert abs(rows[name]["accuracy"] - rows["keras (source)"]["accuracy"]) <= 0.03
        assert (out / "artifacts" / name / "modelpress.json").is_file()
    assert rows["raspberry-pi-4"]["bytes"] < rows["server-cpu"]["bytes"] / 2.5  # int8 vs float32
    assert rows["coral-edgetpu"]["quantization"] == "int8" and rows["server-cpu"]["quantization"] == "none"
    # the report, and the real server asked through both protocols
    assert (out / "report" / "report.html").is_file() and (out / "report" / "size_vs_accuracy.png").is_file()
    serving = saved["info"]["serving"]
    assert serving["v1_class"] == serving["v2_class"]
    assert "TF Serving v1  POST http://127.0.0.1:" in result.output and "-> 200" in result.output
    assert "v2 answer: {\"model_name\": \"digits\"" in result.output
    assert (out / "repo" / "digits" / "1" / "modelpress.json").is_file()
