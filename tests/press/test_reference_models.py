"""The benchmarks' converged baselines: early stopping on validation, best weights kept, a matching control."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.integration


def test_train_converged_stops_on_validation_and_keeps_the_best_epoch(digits):
    keras = pytest.importorskip("keras")
    from modelpress.testing.reference_models import learning_rate, train_converged, train_more

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = digits.x_train, digits.y_train
    model, epochs = train_converged(model, x[200:], y[200:], x[:200], y[:200], max_epochs=200, patience=3)
    assert 3 < epochs < 200  # stopped by validation accuracy, not by the bound
    history = model.history.history
    best = max(history["val_accuracy"])
    kept = float((model.predict(x[:200], verbose=0).argmax(1) == y[:200]).mean())
    assert kept == pytest.approx(best, abs=1e-6)  # the best epoch's weights, not the last epoch's
    assert learning_rate(model) < 1e-2  # halved on plateaus before it stopped
    control = train_more(model, x[200:], y[200:], epochs=1, batch_size=32)
    assert learning_rate(control) == pytest.approx(learning_rate(model))  # the rate fine-tuning would use
    assert not np.allclose(control.get_weights()[0], model.get_weights()[0])
