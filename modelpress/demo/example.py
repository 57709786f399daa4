"""The built-in example model and its data: a small CNN on scikit-learn's 8x8 digits (1,797 real images).

Trained from a fixed seed in a few seconds on 2 cores, in either Keras flavour::

    data = digits_data()                       # x in [0, 1], shape (n, 8, 8, 1); split 80/20
    model = train_example_model(data, flavor="keras3", epochs=15)
    model.evaluate(data.x_test, data.y_test)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLASS_NAMES = [str(d) for d in range(10)]


@dataclass
class ExampleData:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def save_npz(self, path: str | Path) -> Path:
        """Write the ``.npz`` layout the CLI reads (x_train, y_train, x_val, y_val)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, x_train=self.x_train, y_train=self.y_train, x_val=self.x_test,
                            y_val=self.y_test)
        return path


def digits_data(seed: int = 0, test_fraction: float = 0.2) -> ExampleData:
    """scikit-learn's digits as float32 images in [0, 1], shuffled with ``seed`` and split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    n_test = int(len(x) * test_fraction)
    return ExampleData(x_train=x[n_test:], y_train=y[n_test:], x_test=x[:n_test], y_test=y[:n_test])


def _keras(flavor: str):
    if flavor == "tf_keras":
        import tf_keras as keras
    elif flavor == "keras3":
        import keras
    else:
        raise ValueError(f"flavor must be 'keras3' or 'tf_keras', not {flavor!r}")
    return keras


def build_example_model(flavor: str = "keras3", width: int = 16, activation: str = "relu"):
    """The untrained architecture: Conv(width) -> BatchNorm -> Conv(2*width) -> pool -> Dense(64) -> Dense(10)."""
    keras = _keras(flavor)
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((8, 8, 1), name="image"),
        layers.Conv2D(width, 3, padding="same", use_bias=False, name="conv1"),
        layers.BatchNormalization(name="bn1"),
        layers.Activation(activation, name="act1"),
        layers.Conv2D(2 * width, 3, padding="same", activation=activation, name="conv2"),
        layers.MaxPooling2D(2, name="pool"),
        layers.Flatten(name="flatten"),
        layers.Dense(64, activation=activation, name="fc1"),
        layers.Dense(10, activation="softmax", name="probs"),
    ], name="digits_cnn")
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def train_example_model(data: ExampleData | None = None, flavor: str = "keras3", epochs: int = 15,
                        seed: int = 0, **build_kwargs):
    """Build and train the example model from a fixed seed; returns the compiled, trained model."""
    keras = _keras(flavor)
    keras.utils.set_random_seed(seed)
    data = data or digits_data(seed)
    model = build_example_model(flavor, **build_kwargs)
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=32, verbose=0)
    return model
