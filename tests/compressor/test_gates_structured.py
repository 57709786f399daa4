"""Structured L0 gates: one gate switches a whole hidden unit (its kernel column, the next layer's row, its bias)
or an input feature (a row of the first kernel). Trained on real digits, they close whole units and the digits'
blank border pixels, keep accuracy, and the converted model is smaller and answers as the Keras model does."""

from __future__ import annotations

import numpy as np
import pytest

from modelpress.compressor.gates import L0Gates, parse_groups
from modelpress.errors import RecipeError

from .conftest import kernels, val_accuracy

STRUCTURED = {"name": "l0-structured", "finetune": {"epochs": 15, "batch_size": 32, "learning_rate": 1e-3},
              "steps": [{"type": "l0", "strength": 30.0, "groups": "units+inputs"}]}
TOLERANCE = 0.03  # stated bound: at most 3 points of top-1 lost on the 359 held-out digits


def _structured(source, flavor, data):
    from modelpress.compressor.data import load_data
    from modelpress.compressor.pipeline import run_recipe
    from modelpress.compressor.recipe import load_recipe

    return run_recipe(source, flavor, load_recipe(STRUCTURED), load_data(data))


@pytest.mark.parametrize("flavor", ["keras3", "tf_keras"])
def test_unit_and_input_gates_remove_whole_units_and_inputs(flavor, request, data):
    source = request.getfixturevalue(f"mlp_{flavor}")
    model, records, _ = _structured(source, flavor, data)
    k = kernels(model)
    dead_units = np.all(k["fc1"] == 0, axis=0)
    dead_inputs = np.all(k["fc1"] == 0, axis=1)
    removed = records[0]["removed"]
    assert removed["fc1 units"] >= 8 and removed["fc1 inputs"] >= 8, removed
    assert dead_units.sum() == removed["fc1 units"] and dead_inputs.sum() == removed["fc1 inputs"]
    # a removed unit is gone whole: its column, the next layer's row and its bias are exact zeros
    assert np.all(k["fc2"][dead_units] == 0)
    assert np.all(np.asarray(model.get_layer("fc1").bias)[dead_units] == 0)
    # the pixels the digits never light (always 0 in training) are among the inputs removed
    blank = np.all(data["x_train"].reshape(len(data["x_train"]), -1) == 0, axis=0)
    assert blank.any() and dead_inputs[blank].mean() >= 0.5
    # units and inputs only: the weights that survive are whole rows and columns, no scattered zeros inside them
    alive = k["fc1"][np.ix_(~dead_inputs, ~dead_units)]
    assert (alive == 0).mean() < 0.05
    assert val_accuracy(model, data) >= val_accuracy(source, data) - TOLERANCE
    assert [w.shape for w in model.get_weights()] == [w.shape for w in source.get_weights()]
    assert "fc1 units removed" in records[0]["summary"]


def test_removed_units_make_the_converted_model_smaller_and_it_answers_the_same(mlp_keras3, data):
    from modelpress.converters.tflite import to_tflite_bytes
    from modelpress.files import gzip_bytes
    from modelpress.tflite_interpreter import TFLiteModel

    model, _, _ = _structured(mlp_keras3, "keras3", data)
    source_blob, blob = to_tflite_bytes(mlp_keras3), to_tflite_bytes(model)
    assert gzip_bytes(blob) < 0.8 * gzip_bytes(source_blob), (gzip_bytes(blob), gzip_bytes(source_blob))
    x = data["x_val"][:64].astype(np.float32)
    got = TFLiteModel(blob).predict([x])[0]
    np.testing.assert_allclose(got, np.asarray(model(x, training=False)), atol=1e-5)


def test_a_closed_unit_gate_counts_every_weight_it_switches(mlp_keras3):
    gates = L0Gates(mlp_keras3, groups="units+inputs+weights")
    assert gates.open_fraction() == 1.0
    fc1, fc2 = (np.asarray(mlp_keras3.get_layer(n).kernel) for n in ("fc1", "fc2"))
    unit = gates.log_alpha[gates.columns[0]]
    unit.assign(np.where(np.arange(unit.shape[0]) < 4, -10.0, 3.0).astype(np.float32))
    switched = 4 * fc1.shape[0] + 4 * fc2.shape[1]  # four columns of fc1 and four rows of fc2
    assert gates.open_fraction() == pytest.approx(1 - switched / gates.count)
    before = float(gates.penalty())
    unit.assign(np.full(unit.shape, 3.0, np.float32))
    assert float(gates.penalty()) > before  # the penalty is the expected number of non-zero weights


def test_only_dense_units_feeding_a_dense_layer_and_dense_inputs_get_group_gates(cnn_keras3):
    gates = L0Gates(cnn_keras3, groups="units+inputs")  # conv1 -> bn -> conv2 -> pool -> fc1 -> probs
    names = [layer.name for layer in gates.layers]
    gated_columns = [n for n, c in zip(names, gates.columns) if c is not None]
    gated_rows = [n for n, r in zip(names, gates.rows) if r is not None]
    assert gated_columns == ["fc1"] and gated_rows == ["probs"]  # conv channels and conv inputs are left alone
    assert gates.input_layer is None and list(gates.removed()) == ["fc1 units"]


@pytest.mark.parametrize("value, canonical", [("units+inputs", ("inputs", "units")), (["weights"], ("weights",))])
def test_groups_are_read_in_either_spelling(value, canonical):
    assert parse_groups(value) == canonical


@pytest.mark.parametrize("value", ["neurons", "", ["units", 3], None])
def test_bad_groups_are_refused_with_the_choices(value):
    from modelpress.compressor.recipe import Step

    with pytest.raises(RecipeError) as err:
        Step.from_config({"type": "l0", "strength": 1.0, "groups": value})
    assert "units+inputs+weights" in str(err.value) and "weights, units, inputs" in str(err.value)


def test_group_gates_get_a_share_of_the_penalty_gradient_and_its_full_value(mlp_keras3):
    import tensorflow as tf

    gates = L0Gates(mlp_keras3, strength=10.0, groups="units+weights")
    unit = gates.log_alpha[gates.columns[0]]

    def pushed(share: float) -> tuple[float, np.ndarray]:
        gates.group_push = share
        with tf.GradientTape() as tape:
            value = gates.penalty()
        return float(value), np.asarray(tape.gradient(value, unit))

    (full, g_full), (part, g_part) = pushed(1.0), pushed(0.05)
    assert part == pytest.approx(full) and np.abs(g_full).min() > 0
    np.testing.assert_allclose(g_part, 0.05 * g_full, rtol=1e-4)
