"""The search space's pieces that need no training: recipes, per-layer levels, durations."""

from __future__ import annotations

import pytest

from modelpress.api.press import parse_duration
from modelpress.search.sensitivity import levels_for, overall_sparsity
from modelpress.search.space import Settings, layerwise_steps, quantizations_for


def test_layerwise_levels_become_one_prune_step_per_level():
    steps = layerwise_steps({"fc1": 0.97, "fc2": 0.9, "fc3": 0.9, "out": 0.0}, epochs=4)
    assert steps == ({"type": "prune", "sparsity": 0.97, "layers": ["fc1"]},
                     {"type": "prune", "sparsity": 0.9, "layers": ["fc2", "fc3"], "epochs": 2})
    recipe = Settings("prune-layerwise", steps, epochs=4).recipe()
    assert [s.params["layers"] for s in recipe.steps] == [["fc1"], ["fc2", "fc3"]]
    assert recipe.finetune.epochs == 4 and recipe.steps[1].epochs == 2


def test_levels_follow_the_tolerance_and_stop_at_the_first_excess():
    curves = {"fc1": {0.5: 0.0, 0.9: 0.5, 0.95: 3.0, 0.99: 0.1}, "fc3": {0.5: 6.0}}
    assert levels_for(curves, 1.0) == {"fc1": 0.9, "fc3": 0.0}
    assert levels_for(curves, 10.0) == {"fc1": 0.99, "fc3": 0.5}
    assert overall_sparsity({"fc1": 0.9, "fc3": 0.0}, {"fc1": 900, "fc3": 100}) == pytest.approx(0.81)


def test_compression_key_ignores_quantization_and_profile():
    a = Settings("prune", ({"type": "prune", "sparsity": 0.8},), 3, "int8")
    assert a.compression_key() == a.with_quantization("float16").compression_key()
    assert a.conversion_key() != a.with_quantization("float16").conversion_key()
    assert a.describe() == "prune 80% (3 ep) + int8"


def test_integer_only_devices_get_int8_only():
    assert quantizations_for("mcu") == ("int8",) and quantizations_for("edgetpu") == ("int8",)
    assert quantizations_for("cpu")[0] == "int8" and "float16" in quantizations_for("cpu")


@pytest.mark.parametrize("text, seconds", [("90", 90.0), ("90s", 90.0), ("20m", 1200.0), ("1.5h", 5400.0),
                                           (30, 30.0), (None, None)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds
