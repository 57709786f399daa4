"""The two Keras flavours side by side, and the layers the compressor knows how to change.

    keras = keras_module("tf_keras")         # tf_keras (Keras 2) or keras (Keras 3)
    with legacy_keras_env():                 # tfmot sets TF_USE_LEGACY_KERAS=1; undone on exit
        import tensorflow_model_optimization as tfmot
    kernel_layers(model)                     # Dense, Conv2D, DepthwiseConv2D, SeparableConv2D, ...
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

# class name -> name of the weight pruning, clustering and penalties act on
KERNELS = {"Dense": "kernel", "Conv1D": "kernel", "Conv2D": "kernel", "Conv3D": "kernel",
           "DepthwiseConv2D": "depthwise_kernel", "SeparableConv2D": "pointwise_kernel",
           "Conv2DTranspose": "kernel"}


def keras_module(flavor: str):
    """``keras`` for 'keras3', ``tf_keras`` for 'tf_keras'."""
    if flavor == "tf_keras":
        import tf_keras

        return tf_keras
    import keras

    return keras


@contextlib.contextmanager
def legacy_keras_env() -> Iterator[None]:
    """Restore ``TF_USE_LEGACY_KERAS`` (which importing tfmot sets to 1) when the block ends."""
    saved = os.environ.get("TF_USE_LEGACY_KERAS")
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = saved


def kernel_variable(layer: Any):
    """The kernel variable of a Dense / Conv layer, or None for layers without one."""
    name = KERNELS.get(type(layer).__name__)
    if name is None or not layer.built:
        return None
    # Keras 3 calls a DepthwiseConv2D's weights `kernel`, tf_keras `depthwise_kernel`
    return getattr(layer, name, None) if hasattr(layer, name) else getattr(layer, "kernel", None)


def kernel_layers(model: Any) -> list[Any]:
    """Layers with a kernel to prune or cluster, in model order (nested models flattened)."""
    found = []
    for layer in model.layers:
        if hasattr(layer, "layers") and not KERNELS.get(type(layer).__name__):
            found += kernel_layers(layer)
        elif kernel_variable(layer) is not None:
            found.append(layer)
    return found


def variable_value(variable: Any) -> np.ndarray:
    return np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable)


def clone_model(model: Any, flavor: str):
    """An independent copy of ``model`` with the same weights (and compile settings where it has them)."""
    keras = keras_module(flavor)
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def recompile(model: Any, like: Any, flavor: str) -> Any:
    """Compile ``model`` as ``like`` was compiled (fresh optimizer of the same kind); no-op if it was not."""
    loss = getattr(like, "loss", None)
    optimizer = getattr(like, "optimizer", None)
    if loss is None or optimizer is None:
        return model
    keras = keras_module(flavor)
    try:
        fresh = keras.optimizers.get({"class_name": type(optimizer).__name__, "config": optimizer.get_config()})
    except (ValueError, TypeError):
        fresh = keras.optimizers.Adam()
    model.compile(optimizer=fresh, loss=loss, metrics=["accuracy"])
    return model
