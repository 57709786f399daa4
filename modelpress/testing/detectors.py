"""A small audio event detector with three sigmoid outputs, built like the third-party audio models whose
float32 conversion differs from Keras by ordinary float reordering (max |err| around 5e-4, mean 3e-5)::

    model, x = three_sigmoid_detector()      # Keras 3 model, 64 dB-scaled spectrograms [64, 40, 64, 1]
    model.output_names                       # ['speech', 'music', 'noise']

Each head's logit is a small difference of larger features (standardised on the data, then sharpened
tenfold, as trained detectors are), so float32 rounding in the convolutions shows up in the outputs at
the 1e-4 level without anything being wrong with the conversion.
"""

from __future__ import annotations

import numpy as np

HEADS = ("speech", "music", "noise")


def detector_inputs(count: int = 64, seed: int = 0) -> np.ndarray:
    """``count`` spectrogram-like inputs [count, 40, 64, 1] in decibels (around -40 dB, spread 20 dB)."""
    rng = np.random.default_rng(seed)
    return rng.normal(-40.0, 20.0, (count, 40, 64, 1)).astype(np.float32)


def three_sigmoid_detector(seed: int = 0, sharpness: float = 10.0):
    """(model, inputs): a conv net over dB spectrograms with three sigmoid heads named :data:`HEADS`."""
    import keras

    keras.utils.set_random_seed(seed)
    spectrogram = keras.Input((40, 64, 1), name="spectrogram")
    x = keras.layers.Conv2D(16, 3, activation="relu", name="conv1")(spectrogram)
    x = keras.layers.Conv2D(32, 3, activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    hidden = keras.layers.Dense(256, activation="relu", name="hidden")(x)
    logits = [keras.layers.Dense(1, name=f"{name}_logit")(hidden) for name in HEADS]
    outputs = [keras.layers.Activation("sigmoid", name=name)(logit) for name, logit in zip(HEADS, logits)]
    model = keras.Model(spectrogram, outputs, name="detector")
    x = detector_inputs(seed=seed)
    raw = keras.Model(spectrogram, logits).predict(x, verbose=0)
    for name, values in zip(HEADS, raw):
        layer = model.get_layer(f"{name}_logit")
        kernel, _ = layer.get_weights()
        scale = sharpness / float(values.std())
        layer.set_weights([kernel * scale, np.array([-float(values.mean()) * scale], dtype=np.float32)])
    return model, x
