"""Estimates per microcontroller / NPU profile, and the profile fields behind them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelpress.converters.mcu.estimates import count_macs, estimate, estimates_for_builtin_profiles
from modelpress.device_profiles import DeviceProfile, load_profile
from modelpress.errors import ProfileError

FIXTURE = Path(__file__).parents[1] / "runtime" / "fixtures" / "packages" / "int8" / "model.tflite"


def test_macs_are_counted_from_the_layer_shapes():
    # the example CNN at width 4 (tests/runtime/make_fixtures.py) on 8x8x1 digits: conv 3x3 1->4, conv 3x3
    # 4->8 ('same'), pool 2, dense 128->64, dense 64->10
    w = 4
    expected = 8 * 8 * w * (3 * 3 * 1) + 8 * 8 * 2 * w * (3 * 3 * w) + 64 * (4 * 4 * 2 * w) + 10 * 64
    assert count_macs(FIXTURE.read_bytes()) == expected


def test_inference_estimate_follows_the_profile_figures():
    data = FIXTURE.read_bytes()
    profile = load_profile("cortex-m")
    est = estimate(profile, data)
    assert est.kind == "estimate" and est.flash_bytes == len(data) and est.arena_bytes > 0
    assert est.inference_ms == pytest.approx(est.macs / (profile.macs_per_cycle * profile.clock_hz) * 1000)
    rows = {row["profile"]: row for row in estimates_for_builtin_profiles(data)}
    assert {"cortex-m", "ethos-u55-128", "ethos-u55-256", "ethos-u65-256"} <= set(rows)
    # a wider NPU at a faster clock is estimated faster; the Cortex-M slowest
    assert rows["cortex-m"]["inference_ms"] > rows["ethos-u55-128"]["inference_ms"] > \
        rows["ethos-u65-256"]["inference_ms"]
    assert all(row["fits_flash"] and row["fits_ram"] for row in rows.values())


def test_inspect_shows_estimates_for_every_mcu_profile(runner, cli):
    pytest.importorskip("ai_edge_litert")
    result = runner.invoke(cli, ["inspect", str(FIXTURE)])
    assert result.exit_code == 0, result.output
    for name in ("cortex-m", "ethos-u55-128", "ethos-u55-256", "ethos-u65-256"):
        assert f"estimate      {name}" in result.output
    info = json.loads(runner.invoke(cli, ["inspect", str(FIXTURE), "--json"]).output)
    assert {row["kind"] for row in info["model"]["mcu_estimates"]} == {"estimate"}


def _npu(**fields) -> dict:
    base = {"name": "npu-board", "hardware": "mcu", "quantization": "int8", "input_dtype": "int8",
            "output_dtype": "int8", "npu": "ethos-u55-128", "npu_system_config": "Ethos_U55_High_End_Embedded",
            "npu_memory_mode": "Shared_Sram", "clock_hz": 400_000_000, "macs_per_cycle": 128}
    return {**base, **fields}


@pytest.mark.parametrize(("fields", "message"), [
    ({"npu": "ethos-u99"}, "field 'npu' is 'ethos-u99'; allowed values: ethos-u55-32"),
    ({"hardware": "cpu"}, "needs hardware 'mcu'"),
    ({"npu_memory_mode": None}, "needs npu_system_config and npu_memory_mode"),
    ({"clock_hz": 0}, "field 'clock_hz' is 0; expected a positive integer"),
    ({"macs_per_cycle": "fast"}, "field 'macs_per_cycle' is 'fast'"),
    ({"micro_max_lsb": -1}, "field 'micro_max_lsb' is -1; expected a whole number"),
])
def test_npu_profile_fields_are_checked(fields, message):
    with pytest.raises(ProfileError, match=message):
        DeviceProfile.from_config(_npu(**fields))


def test_npu_profile_round_trips():
    profile = DeviceProfile.from_config(_npu())
    assert DeviceProfile.from_config(profile.get_config()) == DeviceProfile.from_config(_npu())
    assert profile.static_batch
