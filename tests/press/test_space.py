"""The search space's pieces that need no training: recipes, per-layer levels, durations."""

from __future__ import annotations

import pytest

from modelpress.api.press import parse_duration
from modelpress.search.sensitivity import overall_sparsity
from modelpress.search.space import Settings, layerwise_steps, quantizations_for


def test_layerwise_levels_become_one_prune_step_per_level():
    steps = layerwise_steps({"fc1": 0.97, "fc2": 0.9, "fc3": 0.9, "out": 0.0}, epochs=4)
    assert steps == ({"type": "prune", "sparsity": 0.97, "layers": ["fc1"]},
                     {"type": "prune", "sparsity": 0.9, "layers": ["fc2", "fc3"], "epochs": 2})
    recipe = Settings("prune-layerwise", steps, epochs=4).recipe()
    assert [s.params["layers"] for s in recipe.steps] == [["fc1"], ["fc2", "fc3"]]
    assert recipe.finetune.epochs == 4 and recipe.steps[1].epochs == 2


def test_overall_sparsity_weighs_each_layer_by_its_size():
    assert overall_sparsity({"fc1": 0.9, "fc3": 0.0}, {"fc1": 900, "fc3": 100}) == pytest.approx(0.81)


def test_compression_key_ignores_quantization_and_profile():
    a = Settings("prune", ({"type": "prune", "sparsity": 0.8},), 3, "int8")
    b = Settings("prune", ({"type": "prune", "sparsity": 0.8},), 3, "float16")
    assert a.compression_key() == b.compression_key()
    assert a.conversion_key() != b.conversion_key()
    assert a.describe() == "prune 80% (3 ep) + int8"


def test_integer_only_devices_get_int8_only():
    assert quantizations_for("mcu") == ("int8",) and quantizations_for("edgetpu") == ("int8",)
    assert quantizations_for("cpu")[0] == "int8" and "float16" in quantizations_for("cpu")


@pytest.mark.parametrize("text, seconds", [("90", 90.0), ("90s", 90.0), ("20m", 1200.0), ("1.5h", 5400.0),
                                           (30, 30.0), (None, None)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_greedy_path_prunes_the_large_redundant_layer_first_and_the_classifier_last():
    from modelpress.search.sensitivity import greedy_path

    curves = {"fc1": {0.5: 0.0, 0.9: 1.0, 0.97: 5.0}, "fc2": {0.5: 0.5, 0.9: 3.0}, "fc3": {0.5: 8.0, 0.9: 2.0}}
    path = greedy_path(curves, {"fc1": 10000, "fc2": 1000, "fc3": 50})
    assert path[0] == {"fc1": 0.5, "fc2": 0.0, "fc3": 0.0}
    assert path[-1] == {"fc1": 0.97, "fc2": 0.9, "fc3": 0.9}  # every layer ends at its last level
    first_fc3 = next(i for i, levels in enumerate(path) if levels["fc3"])
    assert all(levels["fc1"] == 0.97 and levels["fc2"] == 0.9 for levels in path[first_fc3:])
    sparsities = [sum(levels[k] * n for k, n in (("fc1", 10000), ("fc2", 1000), ("fc3", 50))) for levels in path]
    assert sparsities == sorted(sparsities)


def test_l0_candidates_train_gates_longer_and_key_on_their_fine_tuning():
    from modelpress.search.space import L0_EPOCH_FACTOR, l0_steps

    steps = l0_steps(10 ** 1.25, 3)
    settings = Settings("l0", steps, epochs=3)
    recipe = settings.recipe()
    assert [s.type for s in recipe.steps] == ["l0"] and recipe.steps[0].epochs == 3 * L0_EPOCH_FACTOR
    assert recipe.steps[0].params["strength"] == pytest.approx(17.7828)
    assert settings.describe() == "L0 gates λ=17.8 (9 ep) + int8"
    assert settings.compression_key() != Settings("l0", l0_steps(10.0, 3), epochs=3).compression_key()
    assert '"restore_best": true' in settings.compression_key()  # a change of fine-tuning is a new model
