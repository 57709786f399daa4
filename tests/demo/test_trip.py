"""The main job's own code path, in its reduced mode, through the real CLI command."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


def test_demo_quick_runs_the_trip_and_prints_one_table(runner, cli, tmp_path):
    out = tmp_path / "demo"
    result = runner.invoke(cli, ["demo", "--quick", "--out", str(out), "-p", "server-cpu", "-p", "raspberry-pi-4",
                                 "-p", "coral-edgetpu", "-r", "prune-80", "-r", "slim-50"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("model ") and "profile" in line)
    table = [line.split() for line in lines[header + 2: header + 15]]
    assert [cells[0] for cells in table] == ["example"] * 5 + ["prune-80"] * 4 + ["slim-50"] * 4
    assert [cells[1] for cells in table[:5]] == ["keras", "float32", "server-cpu", "raspberry-pi-4", "coral-edgetpu"]
    assert "speed-up vs f32 TFLite" in lines[header]
    saved = json.loads((out / "results.json").read_text())
    rows = {row["profile"]: row for row in saved["rows"] if row["variant"] == "example"}
    # every speed-up is against the source as float32 TFLite (not a Keras eager call)
    reference = rows["float32 TFLite (reference)"]
    assert reference["speedup"] == 1.0 and reference["quantization"] == "none"
    for row in saved["rows"]:
        assert row["speedup"] == pytest.approx(reference["p50_ms"] / row["p50_ms"])
    by_variant = {(row["variant"], row["profile"]): row for row in saved["rows"]}
    # the compressed variants are smaller where it counts (gzip of the pruned, fewer bytes for the slimmed)
    assert by_variant[("prune-80", "raspberry-pi-4")]["gzip_bytes"] < rows["raspberry-pi-4"]["gzip_bytes"] * 0.6
    assert by_variant[("slim-50", "raspberry-pi-4")]["bytes"] < rows["raspberry-pi-4"]["bytes"] * 0.6
    assert (out / "compressed" / "prune-80" / "report.json").is_file()
    assert rows["keras (source)"]["accuracy"] > 0.85  # 3 epochs on real digits
    for name in ("server-cpu", "raspberry-pi-4", "coral-edgetpu"):
        assert rows[name]["agreement"] >= 0.95
        assert abs(rows[name]["accuracy"] - rows["keras (source)"]["accuracy"]) <= 0.03
        assert (out / "artifacts" / "example" / name / "modelpress.json").is_file()
    assert rows["raspberry-pi-4"]["bytes"] < rows["server-cpu"]["bytes"] / 2.5  # int8 vs float32
    assert rows["coral-edgetpu"]["quantization"] == "int8" and rows["server-cpu"]["quantization"] == "none"
    # the report, and the real server asked through both protocols
    assert (out / "report" / "report.html").is_file() and (out / "report" / "size_vs_accuracy.png").is_file()
    assert len(list((out / "report").glob("sparsity_*.png"))) == 2
    serving = saved["info"]["serving"]
    assert serving["v1_class"] == serving["v2_class"]
    assert "TF Serving v1  POST http://127.0.0.1:" in result.output and "-> 200" in result.output
    assert "v2 answer: {\"model_name\": \"digits\"" in result.output
    assert (out / "repo" / "digits" / "1" / "modelpress.json").is_file()
