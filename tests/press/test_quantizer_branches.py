"""press on LiteRT's quantizer: an int4 branch for CPU and GPU profiles, and the chosen package's
per-tensor errors in its manifest and in press's report."""

from __future__ import annotations

import json

import pytest

import modelpress
from modelpress.search.space import quantizations_for

pytestmark = pytest.mark.integration
pytest.importorskip("litert_quantizer")


def test_int4_is_a_branch_only_where_the_quantizer_serves():
    assert quantizations_for("cpu", litert=True)[0] == "int4"
    assert "int4" not in quantizations_for("cpu") and quantizations_for("mcu", litert=True) == ("int8",)


def test_press_tries_int4_and_reports_per_tensor_errors(mlp_path, data_dir, tmp_path):
    result = modelpress.press(mlp_path, ["raspberry-pi-4"], data_dir / "data.npz", out=tmp_path / "out",
                              max_drop=2.0, families=["quantize"], cache=tmp_path / "cache", progress=False)
    doc = json.loads(result.press_json.read_text())
    trials = {t["settings"]["quantization"]: t for t in doc["trials"]}
    assert {"int4", "int8", "dynamic"} <= set(trials)
    assert trials["int4"]["gzip_bytes"] < trials["int8"]["gzip_bytes"]  # int4 weights: the smallest file
    manifest = modelpress.read_manifest(result.packages["raspberry-pi-4"])
    stats = manifest.fidelity["tensors"]
    assert stats and stats["tensors"][0]["kind"] == "output" and stats["tensors"][0]["snr_db"] > 10
    note = next(n for n in doc["notes"] if "tensors the quantization changed most" in n)
    assert "dB (cosine" in note
    assert "tensors the quantization changed most" in (result.out / "report" / "report.md").read_text()


def test_a_failing_per_tensor_comparison_never_costs_the_package(mlp_path, data_dir, tmp_path, monkeypatch, caplog):
    """The per-tensor comparison is a diagnostic: when LiteRT's validation raises (a benchmark's run died writing
    its package on ``KeyError: 'keras_tensor'``), the package is written without it and a warning says why."""
    from modelpress.converters import quantizer

    def broken(*args, **kwargs):
        raise KeyError("keras_tensor")

    monkeypatch.setattr(quantizer, "tensor_errors", broken)
    with caplog.at_level("WARNING", logger="modelpress.search.package"):
        result = modelpress.press(mlp_path, ["raspberry-pi-4"], data_dir / "data.npz", out=tmp_path / "out",
                                  max_drop=2.0, families=["quantize"], cache=tmp_path / "cache", progress=False)
    manifest = modelpress.read_manifest(result.packages["raspberry-pi-4"])
    assert manifest.quantization == result.search.chosen["raspberry-pi-4"].settings.quantization
    assert not manifest.fidelity.get("tensors")
    assert any("per-tensor comparison with float32 skipped" in r.getMessage() and "KeyError" in r.getMessage()
               for r in caplog.records)


def test_per_layer_branch_keeps_layers_in_int16_or_float_through_the_quantizer(mlp_path, data_dir, tmp_path):
    # the same function with one fc1 unit scaled up 1000x (and its fc2 weights down): fc1's output range
    # grows 1000-fold, so int8 activations lose the other units; int16 (or float) for fc1 brings them back
    keras = pytest.importorskip("keras")
    model = keras.models.load_model(mlp_path)
    kernel, bias = model.get_layer("fc1").get_weights()
    kernel[:, 0] *= 1000.0
    bias[0] *= 1000.0
    model.get_layer("fc1").set_weights([kernel, bias])
    kernel2, bias2 = model.get_layer("fc2").get_weights()
    kernel2[0, :] /= 1000.0
    model.get_layer("fc2").set_weights([kernel2, bias2])
    model.save(tmp_path / "outlier.keras")
    result = modelpress.press(tmp_path / "outlier.keras", ["raspberry-pi-4"], data_dir / "data.npz",
                              out=tmp_path / "out", max_drop=1.0, families=["fallback"], cache=tmp_path / "cache",
                              progress=False)
    doc = json.loads(result.press_json.read_text())
    int8 = next(t for t in doc["trials"] if t["settings"]["family"] == "quantize")
    assert int8["verdict"] != "passed", int8
    ranked = next(n for n in doc["notes"] if "int8 layers ranked by their error against float" in n)
    assert ranked.split(": ", 2)[2].startswith("fc1")  # one debug pass puts the outlier's layer first
    mixed = [t for t in doc["trials"] if t["settings"]["family"] == "fallback"]
    assert mixed, doc["notes"]
    for trial in mixed:
        entries = trial["settings"]["fallback"]
        assert entries and all(any(layer in e for layer in ("fc1", "fc2", "fc3")) for e in entries)
    # int16 activations first (they keep int8 weights), k = 1, 2, 4, ... layers until one fits; float only if
    # int16 never does
    int16 = [t for t in mixed if all(e.startswith("int16x8:") for e in t["settings"]["fallback"])]
    assert int16 and "fc1" in int16[0]["settings"]["fallback"][0]
    assert len(mixed) <= 2 * 2  # galloping over 3 layers, at most twice: never one trial per layer and mode
    chosen = result.chosen["raspberry-pi-4"]
    last = next(t for t in mixed if tuple(t["settings"]["fallback"]) == chosen.settings.fallback)
    assert last["verdict"] == "passed" and last["accuracy"] > int8["accuracy"] + 0.5
    assert any(e.startswith("int16x8:") for e in last["settings"]["fallback"]), last["settings"]["fallback"]
    assert "layer(s) int16 activations" in result.chosen["raspberry-pi-4"].describe()
