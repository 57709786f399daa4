"""Modern architectures for benchmarks (toy models hide cost): MobileNetV2 and a small ResNet on 32x32x3.

    data, name = fashion_mnist_32(quick=True)         # Fashion-MNIST resized to 32x32, grey copied to 3 channels
    model = mobilenet_v2(alpha=0.35)                  # depthwise convolutions and residual adds, ~420k parameters
    model = small_resnet()                            # ResNet-style: 3 stages of 2 basic blocks, ~270k parameters

Both are Keras 3 models built from scratch (no weight hub: nothing is downloaded).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelpress.testing.datasets import fashion_mnist


def fashion_mnist_32(quick: bool = False) -> tuple[dict[str, np.ndarray], str]:
    """Fashion-MNIST (Debian's dataset-fashion-mnist, `make data`) padded to 32x32 with 3 equal channels."""
    data, name = fashion_mnist(quick=quick)
    out = {}
    for key, value in data.items():
        if key.startswith("x_"):
            padded = np.pad(value, ((0, 0), (2, 2), (2, 2), (0, 0)))
            out[key] = np.repeat(padded, 3, axis=-1).astype(np.float32)
        else:
            out[key] = value
    return out, name + ", padded to 32x32x3"


def mobilenet_v2(alpha: float = 0.35, classes: int = 10, input_shape: tuple[int, int, int] = (32, 32, 3),
                 batch_norm_momentum: float | None = 0.9) -> Any:
    """keras.applications.MobileNetV2 with random initial weights (weights=None), compiled for integer labels.

    Its batch normalization keeps moving statistics with momentum 0.999, made for ImageNet's million images:
    over the few hundred steps a few thousand images give they lag the weights, and the model in inference mode
    scores near chance however well it trains. ``batch_norm_momentum`` (default 0.9) replaces it; None keeps
    Keras's.
    """
    import keras

    model = keras.applications.MobileNetV2(input_shape=input_shape, alpha=alpha, weights=None, classes=classes)
    for layer in model.layers if batch_norm_momentum is not None else ():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = batch_norm_momentum
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def small_resnet(classes: int = 10, input_shape: tuple[int, int, int] = (32, 32, 3), widths=(16, 32, 64),
                 batch_norm_momentum: float = 0.9) -> Any:
    """A ResNet-20-like network (basic blocks with batch norm and identity or 1x1 projection shortcuts).

    Batch normalization's moving statistics use momentum 0.9: Keras's 0.99 lags the weights over the few hundred
    steps a small training set gives (at 85% training accuracy the model scored 11% in inference mode).
    """
    import keras
    from keras import layers

    def norm() -> Any:
        return layers.BatchNormalization(momentum=batch_norm_momentum)

    x = inputs = keras.Input(input_shape, name="image")
    x = layers.Conv2D(widths[0], 3, padding="same", use_bias=False, name="stem")(x)
    x = layers.ReLU()(norm()(x))
    for stage, width in enumerate(widths):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            shortcut = x
            y = layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False,
                              name=f"s{stage}b{block}_conv1")(x)
            y = layers.ReLU()(norm()(y))
            y = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"s{stage}b{block}_conv2")(y)
            y = norm()(y)
            if stride != 1 or shortcut.shape[-1] != width:
                shortcut = norm()(
                    layers.Conv2D(width, 1, strides=stride, use_bias=False, name=f"s{stage}b{block}_proj")(shortcut))
            x = layers.ReLU()(layers.Add()([y, shortcut]))
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(classes, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs, name="small_resnet")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model
