"""Reference architectures the benchmarks train, and training to convergence (early stopping on validation).

    model = lenet_300_100()
    model, epochs = train_converged(model, x_train, y_train, x_val, y_val, max_epochs=60)
"""

from __future__ import annotations

from typing import Any

import numpy as np


def lenet_300_100(input_shape: tuple[int, ...] = (28, 28, 1), classes: int = 10):
    """LeNet-300-100: an MLP 784-300-100-10 (layers fc1, fc2, fc3), compiled with Adam 1e-3::

        lenet_300_100().count_params()     # 266,610
    """
    import keras

    layers = keras.layers
    model = keras.Sequential([keras.Input(input_shape), layers.Flatten(),
                              layers.Dense(300, activation="relu", name="fc1"),
                              layers.Dense(100, activation="relu", name="fc2"),
                              layers.Dense(classes, activation="softmax", name="fc3")], name="lenet_300_100")
    return _compiled(model)


def lenet5(input_shape: tuple[int, ...] = (28, 28, 1), classes: int = 10):
    """A LeNet-5-shaped CNN: conv 5x5 x32 - pool - conv 5x5 x64 - pool - dense 256 - 10::

        lenet5().name      # 'lenet5_cnn'
    """
    import keras

    layers = keras.layers
    model = keras.Sequential([keras.Input(input_shape),
                              layers.Conv2D(32, 5, padding="same", activation="relu", name="conv1"),
                              layers.MaxPooling2D(2), layers.Conv2D(64, 5, activation="relu", name="conv2"),
                              layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(256, activation="relu"),
                              layers.Dense(classes, activation="softmax")], name="lenet5_cnn")
    return _compiled(model)


def _compiled(model: Any):
    import keras

    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def train_converged(model: Any, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                    max_epochs: int = 60, patience: int = 4, batch_size: int = 128, seed: int = 0) -> tuple[Any, int]:
    """Train until validation accuracy stops improving for ``patience`` epochs (at most ``max_epochs``); keep
    the best epoch's weights. The learning rate halves whenever validation loss stalls for 2 epochs, so the
    model settles instead of oscillating (stopping on validation loss alone ended LeNet-5 at 10 epochs, after
    which 3 more epochs still gained 0.8 point: it had not converged).

    Returns (model, epochs run); the model keeps its optimizer with the final (reduced) learning rate, which
    fine-tuning then reads from its compile config::

        model, epochs = train_converged(lenet5(), x, y, xv, yv)
    """
    keras = _keras_of(model)
    keras.utils.set_random_seed(seed)
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=max(patience, 3),
                                               restore_best_weights=True),
                 keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=1e-5)]
    history = model.fit(x, y, validation_data=(x_val, y_val), epochs=max_epochs, batch_size=batch_size,
                        callbacks=callbacks, verbose=0)
    return model, len(history.history["loss"])


def _keras_of(model: Any):
    """The Keras module ``model`` belongs to (tf_keras or Keras 3), so either flavour trains here."""
    if type(model).__module__.startswith("tf_keras"):
        import tf_keras

        return tf_keras
    import keras

    return keras


def learning_rate(model: Any) -> float:
    """The learning rate ``model``'s optimizer ends with (what modelpress fine-tuning starts from)::

        learning_rate(lenet5())      # 0.001
    """
    return float(np.asarray(model.optimizer.learning_rate))


def train_more(model: Any, x: np.ndarray, y: np.ndarray, epochs: int, batch_size: int = 64, seed: int = 1,
               lr: float | None = None):
    """The control: a copy of ``model`` trained ``epochs`` more epochs with no compression, with the batch
    size and learning rate (default: the model's own, as fine-tuning reads it) the compressed copy got::

        control = train_more(baseline, x, y, epochs=7)
    """
    import keras

    keras.utils.set_random_seed(seed)
    rate = lr if lr is not None else learning_rate(model)
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    copy.compile(optimizer=keras.optimizers.Adam(rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if epochs:
        copy.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
    return copy


def convergence_check(model: Any, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                      epochs: int = 5, batch_size: int = 128) -> dict[str, Any]:
    """Is ``model`` at a plateau? A copy trained ``epochs`` more at the rate its training ended with must not beat
    it on the test set by more than one standard error of the paired difference::

        check = convergence_check(model, x, y, x_test, y_test)
        check["converged"], check["gain_points"], check["margin_points"]
    """
    from modelpress.search.trial import drop_margin

    def correct(m: Any) -> np.ndarray:
        out = np.concatenate([np.asarray(m(x_test[i:i + 1000], training=False)) for i in range(0, len(x_test), 1000)])
        return out.argmax(-1) == y_test

    more = train_more(model, x, y, epochs, batch_size=batch_size, lr=learning_rate(model))
    before, after = correct(model), correct(more)
    worse, better = int((before & ~after).sum()), int((after & ~before).sum())
    gain = 100 * float(after.mean() - before.mean())
    margin = drop_margin(len(before), worse, better)
    return {"extra_epochs": epochs, "learning_rate": learning_rate(model), "baseline_test": float(before.mean()),
            "more_epochs_test": float(after.mean()), "gain_points": round(gain, 3), "margin_points": margin,
            "converged": gain <= margin,
            "rule": f"baseline + {epochs} epochs at its final rate gains no more than one paired standard error"}


def digits_mlp(x: np.ndarray, y: np.ndarray, seed: int = 0):
    """The tiny MLP press's tests and its scaling benchmark search over: 8x8 digits -> 64 -> 32 -> 10, trained
    20 epochs (Keras 3)::

        digits_mlp(digits.x_train, digits.y_train).save("digits_mlp.keras")
    """
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(64, activation="relu", name="fc1"),
                              keras.layers.Dense(32, activation="relu", name="fc2"),
                              keras.layers.Dense(10, activation="softmax", name="fc3")], name="digits_mlp")
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=20, batch_size=32, verbose=0)
    return model
