"""Recipes: built-ins, YAML and Python objects round-trip; bad recipes get one clear error each."""

from __future__ import annotations

import pytest

from modelpress.compressor import ConstantSparsity, PolynomialDecay, Recipe, Step, builtin_recipes, load_recipe
from modelpress.compressor.finetune import FineTune
from modelpress.errors import RecipeError

REQUIRED = ["prune-80", "prune-2:4", "slim-50", "cluster-16", "deep-compression"]


def test_required_builtins_exist():
    assert set(REQUIRED) <= set(builtin_recipes())


@pytest.mark.parametrize("name", sorted(set(REQUIRED) | set(builtin_recipes())))
def test_builtin_round_trips_through_config(name):
    recipe = load_recipe(name)
    assert recipe.name == name
    again = Recipe.from_config(recipe.get_config())
    assert again == recipe


def test_deep_compression_is_prune_then_cluster_then_int8():
    recipe = load_recipe("deep-compression")
    assert [s.type for s in recipe.steps] == ["prune", "cluster", "int8"]
    assert recipe.steps[1].params["preserve_sparsity"] is True
    assert recipe.int8


def test_yaml_file_and_python_object_agree(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("finetune: {epochs: 1, learning_rate: 0.0005, optimizer: sgd}\n"
                    "steps:\n  - {type: prune, sparsity: 0.5, schedule: constant}\n"
                    "  - {type: cluster, clusters: 8, epochs: 0}\n")
    from_yaml = load_recipe(path)
    built = Recipe("mine", [Step("prune", {"sparsity": 0.5, "schedule": "constant"}),
                            Step("cluster", {"clusters": 8}, epochs=0)],
                   FineTune(epochs=1, learning_rate=0.0005, optimizer="sgd"))
    assert from_yaml.get_config() == built.get_config()


@pytest.mark.parametrize("config, words", [
    ({"steps": [{"type": "sparsify", "sparsity": 0.5}]}, ["unknown recipe step 'sparsify'", "prune", "cluster"]),
    ({"steps": [{"type": "prune", "sparsity": 1.0}]}, ["sparsity 1.0", "below 1"]),
    ({"steps": [{"type": "prune", "sparsity": 1.5}]}, ["sparsity 1.5", "below 1"]),
    ({"steps": [{"type": "prune", "sparsity": "most"}]}, ["'most' is not a number"]),
    ({"steps": [{"type": "prune"}]}, ["needs 'sparsity'"]),
    ({"steps": [{"type": "prune", "sparsity": 0.5, "amount": 3}]}, ["unknown parameter", "amount"]),
    ({"steps": [{"type": "cluster", "clusters": 1}]}, ["clusters 1"]),
    ({"steps": [{"type": "prune_mn", "pattern": "4:2"}]}, ["0 < m < n"]),
    ({"steps": [{"type": "slim", "ratio": 0.5, "criterion": "magic"}]}, ["criterion 'magic'", "l2, bn"]),
    ({"steps": []}, ["no steps"]),
    ({"steps": [{"type": "prune", "sparsity": 0.5}], "finetune": {"epoch": 3}}, ["unknown finetune settings"]),
    ({"steps": [{"type": "prune", "sparsity": 0.5}], "finetune": {"optimizer": "lbfgs"}}, ["optimizer 'lbfgs'"]),
])
def test_bad_recipes_are_refused_with_a_clear_message(config, words):
    with pytest.raises(RecipeError) as err:
        load_recipe(config)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_unknown_recipe_name_lists_builtins(tmp_path):
    with pytest.raises(RecipeError, match="unknown recipe 'prune-99'.*prune-80"):
        load_recipe("prune-99")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [type: prune\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(bad)


def test_polynomial_decay_rises_to_its_final_sparsity():
    schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=100, frequency=10)
    values = [schedule.sparsity_at(s) for s in range(0, 101, 10)]
    assert values[0] == 0.0 and values[-1] == pytest.approx(0.8)
    assert all(a <= b for a, b in zip(values, values[1:]))
    assert schedule.sparsity_at(5) is None  # between updates
    assert PolynomialDecay.from_config(schedule.get_config()) == schedule


def test_constant_sparsity_and_its_config():
    schedule = ConstantSparsity(0.8, begin_step=10, frequency=5)
    assert schedule.sparsity_at(5) is None and schedule.sparsity_at(10) == 0.8 and schedule.sparsity_at(12) is None
    assert ConstantSparsity.from_config(schedule.get_config()) == schedule
    with pytest.raises(RecipeError, match="below 1"):
        ConstantSparsity(1.0)
