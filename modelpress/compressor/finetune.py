"""Fine-tuning: one training loop for every technique, both Keras flavours, with optional distillation.

Techniques plug in as hooks (``begin``, ``before_step``, ``after_step``, ``end``): masks for pruning,
centroid sharing for clustering, tfmot's pruning-step counter. A penalty (``L(w) + λR(w)``) and a teacher
(knowledge distillation) are added to the loss::

    settings = FineTuneSettings(epochs=2, batch_size=32, learning_rate=1e-3)
    history = finetune(model, data, settings, hooks=[pruner], penalty=Penalty(model, "l1", 1e-5))
    history["loss"]        # mean loss per epoch
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from modelpress.compressor.data import Dataset
from modelpress.errors import RecipeError

OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")
DEFAULT_LOSS = "sparse_categorical_crossentropy"


@dataclass
class FineTuneSettings:
    """How each step fine-tunes. ``None`` means: take it from the model's compile config, else the default.

        FineTuneSettings(epochs=2, distill={"alpha": 0.5, "temperature": 4.0})
    """

    epochs: int = 2
    batch_size: int = 32
    learning_rate: float | None = None
    optimizer: str | None = None
    loss: str | None = None
    distill: dict[str, float] | None = None
    freeze_bn: bool = False
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise RecipeError(f"finetune epochs {self.epochs!r} must be a whole number >= 0")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise RecipeError(f"finetune batch_size {self.batch_size!r} must be a whole number >= 1")
        if self.learning_rate is not None and not float(self.learning_rate) > 0:
            raise RecipeError(f"finetune learning_rate {self.learning_rate!r} must be positive")
        if self.optimizer is not None and self.optimizer.lower() not in OPTIMIZERS:
            raise RecipeError(f"finetune optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.distill is not None:
            unknown = set(self.distill) - {"alpha", "temperature"}
            if unknown:
                raise RecipeError(f"distill takes alpha and temperature, not {sorted(unknown)}")
            alpha = float(self.distill.get("alpha", 0.5))
            if not 0.0 <= alpha <= 1.0:
                raise RecipeError(f"distill alpha {alpha} must be between 0 and 1")
        if self.extra:
            raise RecipeError(f"unknown finetune settings {sorted(self.extra)}; known: "
                              "epochs, batch_size, learning_rate, optimizer, loss, distill, freeze_bn, seed")

    def get_config(self) -> dict[str, Any]:
        config = asdict(self)
        config.pop("extra")
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> FineTuneSettings:
        config = dict(config or {})
        known = {"epochs", "batch_size", "learning_rate", "optimizer", "loss", "distill", "freeze_bn", "seed"}
        extra = {k: config.pop(k) for k in list(config) if k not in known}
        return cls(**config, extra=extra)


def _compiled(model: Any) -> tuple[Any, Any]:
    """(loss, optimizer) the model was compiled with, or Nones."""
    loss = getattr(model, "loss", None)
    optimizer = getattr(model, "optimizer", None)
    return loss, optimizer


def _optimizer(keras: Any, settings: FineTuneSettings, model: Any):
    _, compiled = _compiled(model)
    name = settings.optimizer
    lr = settings.learning_rate
    if compiled is not None:
        name = name or type(compiled).__name__.lower()
        if lr is None:
            try:
                lr = float(np.asarray(compiled.learning_rate))
            except (TypeError, ValueError, AttributeError):
                lr = None
    name = (name or "adam").lower()
    lr = float(lr or 1e-3)
    classes = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop", "adamw": "AdamW"}
    cls = getattr(keras.optimizers, classes.get(name, "Adam"))
    return cls(learning_rate=lr) if name != "sgd" else cls(learning_rate=lr, momentum=0.9)


def _loss(keras: Any, settings: FineTuneSettings, model: Any, y: np.ndarray):
    loss = settings.loss or _compiled(model)[0]
    if loss is None:
        loss = DEFAULT_LOSS if y.ndim == 1 or y.shape[-1] == 1 else "categorical_crossentropy"
    if isinstance(loss, (dict, list, tuple)):
        raise RecipeError("the model was compiled with several losses; set `loss:` in the recipe's finetune section")
    name = loss if isinstance(loss, str) else getattr(loss, "__name__", None) or getattr(loss, "name", "")
    sparse_labels = y.ndim == 1 or y.shape[-1] == 1
    from_logits = bool(getattr(loss, "from_logits", False) or (hasattr(loss, "get_config")
                                                                and loss.get_config().get("from_logits")))
    if sparse_labels and name in ("categorical_crossentropy", "CategoricalCrossentropy"):
        # compiled for one-hot labels, given class ids: the same loss in its sparse form
        return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    if not sparse_labels and name in ("sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"):
        return keras.losses.CategoricalCrossentropy(from_logits=from_logits)
    try:
        return keras.losses.get(loss)
    except (ValueError, TypeError):
        raise RecipeError(f"loss {loss!r} is not a Keras loss; use e.g. sparse_categorical_crossentropy") from None


def _progress(total: int, quiet: bool, desc: str):
    from tqdm.auto import tqdm

    disable = quiet or not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
    return tqdm(total=total, desc=desc, unit="step", disable=disable, leave=False, dynamic_ncols=True)


def finetune(model: Any, data: Dataset, settings: FineTuneSettings, flavor: str, *, hooks: list[Any] = (),
             penalty: Any = None, teacher: Any = None, quiet: bool = True, desc: str = "fine-tuning",
             epochs: int | None = None) -> dict[str, list[float]]:
    """Train ``model`` in place on ``data.x_train`` for ``settings.epochs`` (or ``epochs``)."""
    import tensorflow as tf

    from modelpress.compressor.flavors import keras_module

    keras = keras_module(flavor)
    epochs = settings.epochs if epochs is None else epochs
    x, y = data.x_train, data.y_train
    n = len(x)
    steps_per_epoch = int(np.ceil(n / settings.batch_size))
    total = steps_per_epoch * epochs
    for hook in hooks:
        hook.begin(total)
    history: dict[str, list[float]] = {"loss": []}
    if total == 0:
        for hook in hooks:
            hook.end()
        return history
    optimizer = _optimizer(keras, settings, model)
    loss_fn = _loss(keras, settings, model, y)
    soft = None
    alpha, temperature = 0.0, 1.0
    if teacher is not None and settings.distill is not None:
        alpha = float(settings.distill.get("alpha", 0.5))
        temperature = float(settings.distill.get("temperature", 4.0))
        soft = np.concatenate([np.asarray(teacher(x[i:i + 512], training=False)) for i in range(0, n, 512)])
    eps = 1e-7

    def _log_probs(out):
        # log-probabilities whether the model ends in softmax or gives logits (both shift-invariant)
        return tf.nn.log_softmax(tf.math.log(tf.clip_by_value(out, eps, 1.0))) if _ends_in_softmax(model) \
            else tf.nn.log_softmax(out)

    frozen = []
    if settings.freeze_bn:  # BatchNorm in inference mode: its statistics stay those of the original training data
        frozen = [layer for layer in _all_layers(model) if type(layer).__name__ == "BatchNormalization"
                  and layer.trainable]
        for layer in frozen:
            layer.trainable = False
    variables = model.trainable_variables

    @tf.function
    def train_step(xb, yb, tb):
        with tf.GradientTape() as tape:
            out = model(xb, training=True)
            loss = tf.reduce_mean(loss_fn(yb, out))
            if soft is not None:
                student = tf.nn.log_softmax(_log_probs(out) / temperature)
                target = tf.nn.softmax(_log_probs(tb) / temperature)
                kd = tf.reduce_mean(tf.reduce_sum(target * (tf.math.log(target + eps) - student), axis=-1))
                loss = (1.0 - alpha) * loss + alpha * temperature ** 2 * kd
            if penalty is not None:
                loss = loss + penalty()
            extra = model.losses
            if extra:
                loss = loss + tf.add_n([tf.cast(v, loss.dtype) for v in extra])
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
        return loss

    rng = np.random.default_rng(settings.seed)
    step = 0
    with _progress(total, quiet, desc) as bar:
        for epoch in range(epochs):
            order = rng.permutation(n)
            losses = []
            for start in range(0, n, settings.batch_size):
                idx = order[start:start + settings.batch_size]
                for hook in hooks:
                    hook.before_step(step)
                tb = soft[idx] if soft is not None else np.zeros((len(idx), 1), np.float32)
                loss = train_step(tf.constant(x[idx]), tf.constant(y[idx]), tf.constant(tb))
                for hook in hooks:
                    hook.after_step(step)
                losses.append(float(loss))
                step += 1
                bar.update(1)
                bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", loss=f"{losses[-1]:.4f}")
            history["loss"].append(float(np.mean(losses)))
    for layer in frozen:
        layer.trainable = True
    for hook in hooks:
        hook.end()
    return history


def _all_layers(model: Any) -> list[Any]:
    found = []
    for layer in getattr(model, "layers", []):
        found.append(layer)
        inner = getattr(layer, "layer", None)  # tfmot wrappers
        if inner is not None:
            found.append(inner)
        if hasattr(layer, "layers"):
            found += _all_layers(layer)
    return found


def _ends_in_softmax(model: Any) -> bool:
    last = model.layers[-1] if getattr(model, "layers", None) else None
    while last is not None and hasattr(last, "layer") and not hasattr(last, "activation"):
        last = last.layer  # tfmot wrappers
    activation = getattr(last, "activation", None)
    if activation is None and hasattr(last, "layer"):
        activation = getattr(last.layer, "activation", None)
    return getattr(activation, "__name__", "") == "softmax" or type(last).__name__ == "Softmax"
