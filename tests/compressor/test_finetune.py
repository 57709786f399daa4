"""Fine-tuning does no harm: a converged model fine-tuned with no compression keeps its held-out accuracy,
the starting rate comes from the model's own, and only weights with the compression complete are kept."""

from __future__ import annotations

import numpy as np
import pytest

from modelpress.compressor.data import Dataset, selection_split
from modelpress.compressor.finetune import FineTune, finetune, initial_rate
from modelpress.errors import RecipeError

from .conftest import build_mlp, kernels

FLAVORS = ["keras3", "tf_keras"]


@pytest.fixture(scope="module", params=FLAVORS)
def converged(request, digits):
    """(flavor, model trained to a plateau on 3/4 of the training split, that Dataset): early stopping on the
    other quarter, the rate halved on plateaus (as the reference benchmarks train)."""
    pytest.importorskip("tf_keras" if request.param == "tf_keras" else "tensorflow")
    from modelpress.testing.reference_models import train_converged

    k = len(digits.x_train) // 4
    data = Dataset(digits.x_train[k:], digits.y_train[k:], digits.x_train[:k], digits.y_train[:k])
    model, _ = train_converged(build_mlp(request.param), data.x_train, data.y_train, data.x_val, data.y_val,
                               max_epochs=80, batch_size=32)
    return request.param, model, data


def _correct(model, digits) -> np.ndarray:
    return np.asarray(model(digits.x_test, training=False)).argmax(1) == digits.y_test


def _copy(model, flavor):
    from modelpress.compressor.flavors import clone_model

    return clone_model(model, flavor)


@pytest.mark.parametrize("restore_best", [True, False])
def test_converged_model_fine_tuned_without_compression_keeps_held_out_accuracy(converged, digits, restore_best):
    from modelpress.search.trial import drop_margin

    flavor, model, data = converged
    before = _correct(model, digits)
    tuned = _copy(model, flavor)
    config = FineTune(epochs=3, restore_best=restore_best).for_model(model)
    history = finetune(tuned, data, config, flavor)
    after = _correct(tuned, digits)
    worse, better = int((before & ~after).sum()), int((after & ~before).sum())
    drop = 100 * (before.mean() - after.mean())
    assert drop <= drop_margin(len(before), worse, better), (drop, worse, better, history)
    if restore_best:  # the starting weights were scored (epoch 0) and nothing worse on validation was kept
        assert history["val_epoch"] == [0, 1, 2, 3]
        assert history["val_accuracy"][history["best_epoch"]] == max(history["val_accuracy"])
        assert history["val_accuracy"][history["best_epoch"]] >= history["val_accuracy"][0]
    else:
        assert history["best_epoch"] is None and len(history["loss"]) == 3
    # the optimizer really ran the schedule: from the model's own rate down along a cosine
    rates = history["learning_rate"]
    assert rates[0] < config.learning_rate and rates == sorted(rates, reverse=True) and rates[-1] < 1e-2 * rates[0]


def test_best_weights_are_restored_when_training_only_hurts(converged, digits):
    """A rate far too large wrecks the model; selection on validation hands back the weights it started from."""
    flavor, model, data = converged
    tuned = _copy(model, flavor)
    history = finetune(tuned, data, FineTune(epochs=1, learning_rate=5.0, schedule="constant").for_model(model),
                       flavor)
    assert history["best_epoch"] == 0 and history["val_accuracy"][1] < history["val_accuracy"][0] - 0.1
    for a, b in zip(tuned.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    wrecked = _copy(model, flavor)
    finetune(wrecked, data, FineTune(epochs=1, learning_rate=5.0, schedule="constant",
                                     restore_best=False).for_model(model), flavor)
    assert _correct(wrecked, digits).mean() < _correct(tuned, digits).mean() - 0.1


def test_pruning_keeps_only_epochs_with_the_final_sparsity(converged):
    """A polynomial schedule reaches its sparsity at 2/3 of the steps: earlier epochs are never chosen."""
    from modelpress.compressor.pipeline import run_recipe
    from modelpress.compressor.recipe import Recipe, Step

    flavor, model, data = converged
    recipe = Recipe("p", [Step("prune", {"sparsity": 0.8})], FineTune(epochs=3))
    pruned, records, notes = run_recipe(model, flavor, recipe, data)
    assert 0 not in records[0]["val_epoch"] and records[0]["best_epoch"] in records[0]["val_epoch"]
    for name, w in kernels(pruned).items():
        assert abs((w == 0).mean() - 0.8) < 0.01, name
    assert any("learning rate" in n and "best epoch" in n for n in notes)


def test_peak_rate_is_the_models_initial_one_held_while_compressing_then_decayed():
    from modelpress.compressor.finetune import rate_at

    keras = pytest.importorskip("keras")
    own = build_mlp("keras3")  # Adam 2e-3
    assert FineTune().for_model(own).learning_rate == pytest.approx(2e-3)
    own.optimizer.learning_rate.assign(1e-5)  # lowered by a plateau callback: the initial rate is unknown
    assert FineTune().for_model(own).learning_rate == pytest.approx(1e-3)  # Adam's default, not 1e-5
    schedule = keras.optimizers.schedules.ExponentialDecay(3e-3, 100, 0.5)
    assert initial_rate(keras.optimizers.SGD(schedule), "sgd") == pytest.approx(3e-3)
    assert FineTune(learning_rate=5e-4).for_model(own).learning_rate == 5e-4  # an explicit rate is kept
    bare = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    resolved = FineTune().for_model(bare)
    assert (resolved.optimizer, resolved.learning_rate) == ("adam", pytest.approx(1e-3))
    rates = [rate_at(step, 1e-3, 100, hold=60) for step in range(101)]
    assert rates[:61] == [1e-3] * 61 and rates[80] == pytest.approx(5e-4) and rates[100] == pytest.approx(0.0)
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    assert rate_at(99, 1e-3, 100, schedule="constant") == 1e-3


def test_config_round_trips_and_bad_values_are_refused():
    config = FineTune(epochs=4, learning_rate=1e-4, schedule="constant", restore_best=False,
                      distill={"alpha": 0.3, "temperature": 2.0})
    assert FineTune.from_config(config.get_config()) == config
    assert FineTune.from_config(None) == FineTune()
    for bad, words in [({"schedule": "linear"}, ["schedule 'linear'", "cosine, constant"]),
                       ({"learning_rate": "fast"}, ["learning_rate 'fast'", "positive"]),
                       ({"restore_best": "yes"}, ["restore_best 'yes'", "true or false"]),
                       ({"distill": {"alpha": 2}}, ["alpha 2.0", "between 0 and 1"]),
                       ({"patience": 3}, ["unknown finetune settings", "restore_best"])]:
        with pytest.raises(RecipeError) as err:
            FineTune.from_config(bad)
        assert all(w in str(err.value) for w in words), str(err.value)


def test_selection_split_sets_training_samples_aside(digits):
    data = Dataset(digits.x_train, digits.y_train, digits.x_test, digits.y_test)
    tuning = selection_split(data)
    assert len(tuning.x_val) == len(data.x_train) // 10
    assert len(tuning.x_train) + len(tuning.x_val) == len(data.x_train)
    train_rows = {row.tobytes() for row in tuning.x_train}
    assert not any(row.tobytes() in train_rows for row in tuning.x_val)
