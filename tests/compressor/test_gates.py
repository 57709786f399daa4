"""L0 hard-concrete gates: training drives weights to exact zeros, accuracy is kept on real digits, and the
gates are stripped so the model is the plain architecture again (both Keras flavours)."""

from __future__ import annotations

import numpy as np
import pytest

from modelpress.compressor.gates import deterministic_gates
from modelpress.errors import RecipeError

from .conftest import kernels, val_accuracy

L0_RECIPE = {"name": "l0", "finetune": {"epochs": 15, "batch_size": 32, "learning_rate": 1e-3},
             "steps": [{"type": "l0", "strength": 30.0}]}
TOLERANCE = 0.03  # stated bound: at most 3 points of top-1 lost on the 359 held-out digits


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
def test_l0_gates_reach_exact_zeros_and_keep_accuracy(flavor, request, data):
    from modelpress.compressor.data import load_data
    from modelpress.compressor.pipeline import run_recipe
    from modelpress.compressor.recipe import load_recipe

    source = request.getfixturevalue(f"mlp_{flavor}")
    model, records, _ = run_recipe(source, flavor, load_recipe(L0_RECIPE), load_data(data))
    after = kernels(model)
    assert (after["fc1"] == 0).mean() >= 0.90, records[0]["zeros"]
    assert records[0]["zeros"]["fc1"] == pytest.approx((after["fc1"] == 0).mean())
    assert "exactly zero" in records[0]["summary"]
    assert val_accuracy(model, data) >= val_accuracy(source, data) - TOLERANCE
    # stripped: the same layers and weight shapes as the source, no gate variables left in the model
    assert [layer.name for layer in model.layers] == [layer.name for layer in source.layers]
    assert [w.shape for w in model.get_weights()] == [w.shape for w in source.get_weights()]


def test_gates_start_open_and_close_below_the_stretch():
    gates = deterministic_gates(np.array([3.0, 0.0, -3.0]))
    assert gates[0] == 1.0 and gates[1] == pytest.approx(0.5) and gates[2] == 0.0


def test_a_stronger_penalty_zeroes_more(mlp_keras3, data):
    from modelpress.compressor.data import load_data
    from modelpress.compressor.pipeline import run_recipe
    from modelpress.compressor.recipe import load_recipe

    shares = []
    for strength in (1.0, 30.0):
        recipe = {**L0_RECIPE, "finetune": {**L0_RECIPE["finetune"], "epochs": 5},
                  "steps": [{"type": "l0", "strength": strength}]}
        model, _, _ = run_recipe(mlp_keras3, "keras3", load_recipe(recipe), load_data(data))
        shares.append((kernels(model)["fc1"] == 0).mean())
    assert shares[1] > shares[0] + 0.2, shares


@pytest.mark.parametrize("step, words", [({"type": "l0", "strength": -1}, ["strength -1", "must not be negative"]),
                                         ({"type": "l0", "rate": 2}, ["unknown parameter", "rate"])])
def test_bad_l0_steps_are_refused(step, words):
    from modelpress.compressor.recipe import Step

    with pytest.raises(RecipeError) as err:
        Step.from_config(step)
    assert all(w in str(err.value) for w in words), str(err.value)
