"""tfmot for tf_keras models: pruning (schedules, m:n), clustering and quantization-aware training.

Imported only on the tf_keras path. Importing tfmot sets ``TF_USE_LEGACY_KERAS=1`` in the process
environment; :func:`tfmot` restores the variable so that a Keras 3 model handled later in the same
process is not affected::

    wrapped, hook = prune(model, ConstantSparsity(0.8))    # tfmot.sparsity.keras.prune_low_magnitude
    finetune(wrapped, data, settings, "tf_keras", hooks=[hook])
    plain = strip_pruning(wrapped)                          # a plain tf_keras model again
"""

from __future__ import annotations

from typing import Any

from modelpress.compressor.flavors import KERNELS, clone_model, legacy_keras_env
from modelpress.compressor.schedules import ConstantSparsity
from modelpress.errors import CompressionError

_PRUNABLE = {"Dense", "Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose"}


def tfmot() -> Any:
    """The tfmot module, imported with ``TF_USE_LEGACY_KERAS`` restored afterwards."""
    with legacy_keras_env():
        import tensorflow_model_optimization as module
    return module


def _schedule(schedule: Any) -> Any:
    sparsity = tfmot().sparsity.keras
    if isinstance(schedule, ConstantSparsity):
        return sparsity.ConstantSparsity(schedule.target_sparsity, schedule.begin_step, frequency=schedule.frequency)
    return sparsity.PolynomialDecay(schedule.initial_sparsity, schedule.final_sparsity, schedule.begin_step,
                                    schedule.end_step, power=schedule.power, frequency=schedule.frequency)


def _wrap(model: Any, wrap_layer, layers: list[str] | None):
    import tf_keras

    base = clone_model(model, "tf_keras")  # the wrappers share the layers they wrap: keep the source intact

    def clone_function(layer):
        if type(layer).__name__ in KERNELS and (not layers or layer.name in layers):
            wrapped = wrap_layer(layer)
            if wrapped is not None:
                return wrapped
        return layer

    try:
        return tf_keras.models.clone_model(base, clone_function=clone_function)
    except (ValueError, TypeError) as err:
        raise CompressionError(f"tfmot cannot wrap {model.name!r}: {str(err).splitlines()[0]}") from None


class _CallbackHook:
    """Drives a tf_keras callback (tfmot's UpdatePruningStep) from the fine-tuning loop."""

    def __init__(self, model: Any, callback: Any, settled_from: int = 0):
        self.model, self.callback = model, callback
        self.settled_from = settled_from  # the first step whose weights carry the final masks

    def begin(self, total_steps: int) -> None:
        self.callback.set_model(self.model)
        self.callback.on_train_begin()

    def before_step(self, step: int) -> None:
        self.callback.on_train_batch_begin(step)

    def after_step(self, step: int) -> None:
        pass

    def end(self) -> None:
        self.callback.on_epoch_end(0)


def prune(model: Any, schedule: Any = None, m_by_n: tuple[int, int] | None = None,
          layers: list[str] | None = None) -> tuple[Any, _CallbackHook, list[str]]:
    """Wrap kernels with ``prune_low_magnitude``; returns (wrapped model, fine-tuning hook, skipped layers)."""
    module = tfmot()
    skipped: list[str] = []

    def wrap_layer(layer):
        if type(layer).__name__ not in _PRUNABLE:
            return None
        if m_by_n is not None:
            axis = int(layer.kernel.shape[-2]) if hasattr(layer, "kernel") else 0
            if axis % m_by_n[1]:
                skipped.append(layer.name)
                return None
            return module.sparsity.keras.prune_low_magnitude(layer, sparsity_m_by_n=m_by_n)
        return module.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=_schedule(schedule))

    wrapped = _wrap(model, wrap_layer, layers)
    # tfmot updates masks inside the training step after the counter moves: final from one step past end_step
    settled = 1 if schedule is None or m_by_n is not None else int(schedule.end_step) + 1
    return wrapped, _CallbackHook(wrapped, module.sparsity.keras.UpdatePruningStep(), settled), skipped


def strip_pruning(model: Any) -> Any:
    return tfmot().sparsity.keras.strip_pruning(model)


def cluster(model: Any, clusters: int, preserve_sparsity: bool = False, layers: list[str] | None = None) -> Any:
    """Wrap kernels with ``cluster_weights`` (linear centroid initialisation, as Deep Compression advises).

    Layers with no more distinct weights than ``clusters`` already share that few values and are left as they are.
    """
    import numpy as np

    module = tfmot().clustering.keras
    init = module.CentroidInitialization.LINEAR

    def wrap_layer(layer):
        from modelpress.compressor.flavors import kernel_variable, variable_value

        kernel = kernel_variable(layer)
        if kernel is None or np.unique(variable_value(kernel)).size <= clusters + 1:
            return None
        return module.cluster_weights(layer, number_of_clusters=clusters, cluster_centroids_init=init,
                                      preserve_sparsity=preserve_sparsity)

    return _wrap(model, wrap_layer, layers)


def strip_clustering(model: Any) -> Any:
    return tfmot().clustering.keras.strip_clustering(model)


def quantize(model: Any) -> Any:
    """``quantize_model``: fake-quantization of weights and activations for quantization-aware training."""
    module = tfmot().quantization.keras
    try:
        return module.quantize_model(clone_model(model, "tf_keras"))
    except (ValueError, RuntimeError, TypeError) as err:
        raise CompressionError(f"tfmot quantization-aware training cannot handle {model.name!r}: "
                               f"{str(err).splitlines()[0]}") from None


def strip_quantization(qat_model: Any, original: Any) -> tuple[Any, list[str]]:
    """The QAT-trained float weights copied into a plain copy of ``original`` (the architecture it came from).

    tfmot has no strip step for QAT; the copy keeps the trained weights, and int8 conversion then
    calibrates ranges for them. Returns the model and the names of layers whose weights were not found.
    """
    plain = clone_model(original, "tf_keras")
    inner = {}
    for layer in qat_model.layers:
        target = getattr(layer, "layer", layer)
        # the wrapper, not the inner layer, tracks the kernel it fake-quantizes: take both, by weight name
        weights = {w.name.split(":")[0]: w for w in list(target.weights) + list(layer.weights)}
        inner[target.name] = {name.split("/")[-1]: w for name, w in weights.items()
                              if name.startswith(f"{target.name}/")}
    missing = []
    for layer in plain.layers:
        by_name = inner.get(layer.name)
        if not layer.weights:
            continue
        if by_name is None:
            missing.append(layer.name)
            continue
        values = []
        for weight in layer.weights:
            key = weight.name.split("/")[-1].split(":")[0]
            match = by_name.get(key)
            values.append(match.numpy() if match is not None and tuple(match.shape) == tuple(weight.shape)
                          else weight.numpy())
        layer.set_weights(values)
    return plain, missing
