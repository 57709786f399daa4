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
    import keras

    keras.utils.set_random_seed(seed)
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=max(patience, 3),
                                               restore_best_weights=True),
                 keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=1e-5)]
    history = model.fit(x, y, validation_data=(x_val, y_val), epochs=max_epochs, batch_size=batch_size,
                        callbacks=callbacks, verbose=0)
    return model, len(history.history["loss"])


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
