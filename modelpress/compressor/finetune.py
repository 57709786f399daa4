"""Fine-tuning: one training loop for every technique, both Keras flavours, that does not undo convergence.

A converged model restarted at its initial learning rate and kept there is pushed off its optimum (a
Fashion-MNIST LeNet-300-100 fine-tuned 3 epochs at a constant Adam 1e-3 with no compression lost 1.2 points on
the test set). So, by default, the loop starts at the model's own initial rate, holds it only while the
compression is still being applied (a pruning schedule's ramp), then decays it along half a cosine to zero; it
scores the weights on the validation split after every epoch (and before the first, when the compression is
already in place) and keeps the best: with no compression it never ends below where it started on that split
(the same model gained 0.7 point instead). A tenth of the rate, which would also spare a converged model, left
too little to recover from pruning: 90% magnitude pruning lost 12.3 points at 1e-4 and 2.4 at 1e-3. Knowledge
distillation from the source model (soft targets at a temperature) is optional.

Techniques plug in as hooks (``begin``, ``before_step``, ``after_step``, ``end``; ``settled_from``: the first
step at which the compression is complete, so weights from then on may be kept): masks for pruning, centroid
sharing for clustering, tfmot's pruning-step counter. A penalty (``L(w) + λR(w)``) is added to the loss::

    config = FineTune(epochs=3, distill={"alpha": 0.5, "temperature": 4.0})
    config = FineTune.from_config(config.get_config())           # what a recipe's `finetune:` section holds
    history = finetune(model, data, config.for_model(model), "keras3", hooks=[pruner], teacher=source)
    history["val_accuracy"], history["best_epoch"]              # epoch 0 = the weights it started from
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from modelpress.compressor.data import Dataset
from modelpress.errors import RecipeError

OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")
DEFAULT_RATES = {"adam": 1e-3, "sgd": 1e-2, "rmsprop": 1e-3, "adamw": 1e-3}  # the Keras defaults
RATE_SCHEDULES = ("cosine", "constant")
DEFAULT_LOSS = "sparse_categorical_crossentropy"


@dataclass(frozen=True)
class FineTune:
    """How compression fine-tunes. ``None``: taken from the model (:meth:`for_model`), else the default.

    ``learning_rate``: the peak rate; None = the model's initial rate (its schedule's initial rate, or the
    larger of its optimizer's rate and that optimizer's Keras default, since a plateau callback lowers the
    stored rate and leaves no record of the first). ``schedule``: ``cosine`` holds the peak while the
    compression is being applied, then decays it to 0; ``constant`` keeps it. ``restore_best``: end on the
    epoch scoring best on the validation split (the start included). ``distill``: ``{"alpha": 0.5,
    "temperature": 4.0}`` mixes in the source model's soft targets::

        FineTune(epochs=3, learning_rate=1e-4, schedule="cosine", restore_best=True)
    """

    epochs: int = 2
    batch_size: int = 32
    learning_rate: float | None = None
    schedule: str = "cosine"
    restore_best: bool = True
    optimizer: str | None = None
    loss: Any = None
    distill: dict[str, float] | None = None
    freeze_bn: bool = False
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 0:
            raise RecipeError(f"finetune epochs {self.epochs!r} must be a whole number >= 0")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise RecipeError(f"finetune batch_size {self.batch_size!r} must be a whole number >= 1")
        if self.learning_rate is not None:
            try:
                rate = float(self.learning_rate)
            except (TypeError, ValueError):
                rate = -1.0
            if not rate > 0:
                raise RecipeError(f"finetune learning_rate {self.learning_rate!r} must be a positive number, such as "
                                  "1e-4 (or leave it out: the model's own initial rate)")
        if self.schedule not in RATE_SCHEDULES:
            raise RecipeError(f"finetune schedule {self.schedule!r} is not one of {', '.join(RATE_SCHEDULES)}")
        if not isinstance(self.restore_best, bool):
            raise RecipeError(f"finetune restore_best {self.restore_best!r} must be true or false")
        if self.optimizer is not None and str(self.optimizer).lower() not in OPTIMIZERS:
            raise RecipeError(f"finetune optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.distill is not None:
            if not isinstance(self.distill, dict):
                raise RecipeError(f"finetune distill {self.distill!r} must be a mapping such as "
                                  "{alpha: 0.5, temperature: 4.0}")
            unknown = set(self.distill) - {"alpha", "temperature"}
            if unknown:
                raise RecipeError(f"distill takes alpha and temperature, not {sorted(unknown)}")
            alpha = float(self.distill.get("alpha", 0.5))
            if not 0.0 <= alpha <= 1.0:
                raise RecipeError(f"distill alpha {alpha} must be between 0 and 1")
            if not float(self.distill.get("temperature", 4.0)) > 0:
                raise RecipeError(f"distill temperature {self.distill.get('temperature')} must be positive")

    def get_config(self) -> dict[str, Any]:
        config = asdict(self)
        if config["loss"] is not None and not isinstance(config["loss"], str):
            config["loss"] = getattr(config["loss"], "name", None) or str(config["loss"])
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> FineTune:
        config = dict(config or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise RecipeError(f"unknown finetune settings {unknown}; known: {', '.join(sorted(known))}")
        return cls(**config)

    def for_model(self, model: Any) -> FineTune:
        """These settings with loss, optimizer and starting rate filled from ``model``'s compile config."""
        loss = self.loss if self.loss is not None else getattr(model, "loss", None)
        compiled = getattr(model, "optimizer", None)
        optimizer = self.optimizer or (type(compiled).__name__.lower() if compiled is not None else "adam")
        optimizer = optimizer if optimizer in OPTIMIZERS else "adam"
        rate = self.learning_rate
        if rate is None:
            rate = initial_rate(compiled, optimizer)
        return dataclasses.replace(self, loss=loss, optimizer=optimizer, learning_rate=float(rate))


def initial_rate(optimizer: Any, name: str = "adam") -> float:
    """The rate ``optimizer`` started training at, as far as it can be told::

        initial_rate(keras.optimizers.Adam(1e-3))         # 0.001
    """
    default = DEFAULT_RATES.get(name, 1e-3)
    if optimizer is None:
        return default
    schedule = getattr(optimizer, "_learning_rate", None)
    config = schedule.get_config() if hasattr(schedule, "get_config") else {}
    if isinstance(config, dict) and "initial_learning_rate" in config:
        return float(config["initial_learning_rate"])
    try:
        current = float(np.asarray(optimizer.learning_rate))
    except (TypeError, ValueError, AttributeError):
        return default
    return max(current, default) if math.isfinite(current) else default


def rate_at(step: int, peak: float, total: int, hold: int = 0, schedule: str = "cosine") -> float:
    """The learning rate at ``step``: ``peak`` while the compression is still being applied (``hold`` steps),
    then (``cosine``) half a cosine down to 0 at ``total``::

        rate_at(0, 1e-3, 100), rate_at(50, 1e-3, 100), rate_at(60, 1e-3, 100, hold=60)   # 1e-3, 5e-4, 1e-3
    """
    if schedule == "constant" or step < hold:
        return peak
    span = max(total - hold, 1)
    return 0.5 * peak * (1.0 + math.cos(math.pi * min(step - hold, span) / span))


def _optimizer(keras: Any, config: FineTune):
    name = (config.optimizer or "adam").lower()
    rate = float(config.learning_rate or DEFAULT_RATES.get(name, 1e-3))
    classes = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop", "adamw": "AdamW"}
    cls = getattr(keras.optimizers, classes.get(name, "Adam"))
    return cls(learning_rate=rate) if name != "sgd" else cls(learning_rate=rate, momentum=0.9)


def _loss(keras: Any, config: FineTune, model: Any, y: np.ndarray):
    loss = config.loss if config.loss is not None else getattr(model, "loss", None)
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


class _Selection:
    """Scores the weights on the validation split and keeps the best copy (accuracy first, then loss)."""

    def __init__(self, model: Any, data: Dataset, loss_fn: Any, enabled: bool):
        self.model, self.loss_fn = model, loss_fn
        self.x, self.y = data.x_val, data.y_val
        self.enabled = enabled and self.x is not None and len(self.x) > 0
        self.best: tuple[float, float] | None = None
        self.best_epoch: int | None = None
        self.weights: list[np.ndarray] | None = None

    def score(self, epoch: int, history: dict[str, list]) -> None:
        outputs = np.concatenate([np.asarray(self.model(self.x[i:i + 1024], training=False))
                                  for i in range(0, len(self.x), 1024)])
        loss = float(np.mean(np.asarray(self.loss_fn(self.y, outputs))))
        labels = self.y if self.y.ndim == 1 else self.y.argmax(-1)
        acc = float((outputs.argmax(-1) == labels).mean()) if outputs.ndim == 2 and outputs.shape[-1] > 1 else -loss
        history["val_epoch"].append(epoch)
        history["val_accuracy"].append(acc)
        history["val_loss"].append(loss)
        key = (acc, -loss)
        if self.best is None or key > self.best:
            self.best, self.best_epoch, self.weights = key, epoch, self.model.get_weights()

    def restore(self) -> None:
        if self.weights is not None:
            self.model.set_weights(self.weights)


def _settled(hooks: list[Any], step: int) -> bool:
    """Whether every hook's compression is complete at ``step`` (its weights may be kept)."""
    return all(step >= getattr(hook, "settled_from", 0) for hook in hooks)


def finetune(model: Any, data: Dataset, config: FineTune, flavor: str, *, hooks: list[Any] = (),
             penalty: Any = None, teacher: Any = None, gates: Any = None, quiet: bool = True,
             desc: str = "fine-tuning", epochs: int | None = None) -> dict[str, Any]:
    """Train ``model`` in place on ``data.x_train`` for ``config.epochs`` (or ``epochs``); with
    ``restore_best`` (and no ``penalty`` or ``gates``, whose aim is not accuracy alone), end on the best-scoring
    settled epoch on ``data.x_val`` (epoch 0 = the start). ``gates`` (:class:`~modelpress.compressor.gates.L0Gates`)
    trains gated copies of the kernels in their place; the caller strips them afterwards::

        history = finetune(model, data, FineTune(epochs=3).for_model(model), "keras3")
        history["loss"], history["val_accuracy"], history["best_epoch"]
    """
    import tensorflow as tf

    from modelpress.compressor.flavors import keras_module

    keras = keras_module(flavor)
    epochs = config.epochs if epochs is None else epochs
    x, y = data.x_train, data.y_train
    n = len(x)
    steps_per_epoch = int(np.ceil(n / config.batch_size))
    total = steps_per_epoch * epochs
    hooks = list(hooks)
    for hook in hooks:
        hook.begin(total)
    history: dict[str, Any] = {"loss": [], "learning_rate": [], "val_epoch": [], "val_accuracy": [], "val_loss": [],
                               "best_epoch": None}
    if total == 0:
        for hook in hooks:
            hook.end()
        return history
    optimizer = _optimizer(keras, config)
    peak = float(np.asarray(optimizer.learning_rate))
    hold = min(max([int(getattr(hook, "settled_from", 0)) for hook in hooks] + [0]), total)
    loss_fn = _loss(keras, config, model, y)
    # a penalty or gates change what training aims at, and so does a hook whose model is scored in another form
    # (int8 weight fake-quantization: the float weights' accuracy would undo it by keeping epoch 0)
    aimed = penalty is None and gates is None and all(getattr(hook, "select_best", True) for hook in hooks)
    selection = _Selection(model, data, loss_fn, config.restore_best and aimed)
    soft = None
    alpha, temperature = 0.0, 1.0
    if teacher is not None and config.distill is not None:
        alpha = float(config.distill.get("alpha", 0.5))
        temperature = float(config.distill.get("temperature", 4.0))
        soft = np.concatenate([np.asarray(teacher(x[i:i + 512], training=False)) for i in range(0, n, 512)])
    eps = 1e-7
    softmax_output = _ends_in_softmax(model)

    def _log_probs(out):
        # log-probabilities whether the model ends in softmax or gives logits (both shift-invariant)
        return tf.nn.log_softmax(tf.math.log(tf.clip_by_value(out, eps, 1.0))) if softmax_output \
            else tf.nn.log_softmax(out)

    frozen = []
    if config.freeze_bn:  # BatchNorm in inference mode: its statistics stay those of the original training data
        frozen = [layer for layer in _all_layers(model) if type(layer).__name__ == "BatchNormalization"
                  and layer.trainable]
        for layer in frozen:
            layer.trainable = False
    variables = list(model.trainable_variables)
    if gates is not None:  # the gated kernels are written from θ·z before each step, not trained themselves
        gates.begin(keras)
        gated = {id(v) for v in gates.targets}
        variables = [v for v in variables if id(v) not in gated] + list(gates.targets)
        plain = len(variables) - len(gates.targets)

    @tf.function
    def train_step(xb, yb, tb):
        with tf.GradientTape(persistent=gates is not None) as tape:
            if gates is not None:
                kernels = gates.kernels(training=True)
                for var, value in zip(gates.targets, kernels):
                    var.assign(value)
            out = model(xb, training=True)
            loss = tf.reduce_mean(loss_fn(yb, out))
            if soft is not None:
                student = tf.nn.log_softmax(_log_probs(out) / temperature)
                target = tf.nn.softmax(_log_probs(tb) / temperature)
                kd = tf.reduce_mean(tf.reduce_sum(target * (tf.math.log(target + eps) - student), axis=-1))
                loss = (1.0 - alpha) * loss + alpha * temperature ** 2 * kd
            if penalty is not None:
                loss = loss + penalty()
            if gates is not None:
                loss = loss + gates.penalty()
            extra = model.losses
            if extra:
                loss = loss + tf.add_n([tf.cast(v, loss.dtype) for v in extra])
        grads = tape.gradient(loss, variables)
        if gates is not None:  # chain rule through the kernel writes: d loss / d (θ, log α)
            through = tape.gradient(kernels, gates.sources, output_gradients=grads[plain:])
            direct = tape.gradient(loss, gates.sources)
            total = [t if d is None else (d if t is None else t + d) for t, d in zip(through, direct)]
            n = len(gates.weights)
            optimizer.apply_gradients([(g, v) for g, v in zip(grads[:plain] + total[:n],
                                                              variables[:plain] + gates.weights) if g is not None])
            gates.optimizer.apply_gradients([(g, v) for g, v in zip(total[n:], gates.log_alpha) if g is not None])
            return loss
        optimizer.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
        return loss

    if selection.enabled and _settled(hooks, 0):
        selection.score(0, history)
    rng = np.random.default_rng(config.seed)
    step = 0
    with _progress(total, quiet, desc) as bar:
        for epoch in range(epochs):
            bar.set_postfix_str(f"epoch {epoch + 1}/{epochs}", refresh=False)
            order = rng.permutation(n)
            losses = []
            for start in range(0, n, config.batch_size):
                idx = order[start:start + config.batch_size]
                for hook in hooks:
                    hook.before_step(step)
                optimizer.learning_rate = rate_at(step, peak, total, hold, config.schedule)
                tb = soft[idx] if soft is not None else np.zeros((len(idx), 1), np.float32)
                loss = train_step(tf.constant(x[idx]), tf.constant(y[idx]), tf.constant(tb))
                for hook in hooks:
                    hook.after_step(step)
                losses.append(float(loss))
                step += 1
                bar.update(1)
                bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", loss=f"{losses[-1]:.4f}")
            history["loss"].append(float(np.mean(losses)))
            history["learning_rate"].append(float(np.asarray(optimizer.learning_rate)))  # as the optimizer read it
            if selection.enabled and (_settled(hooks, step) or epoch == epochs - 1):
                selection.score(epoch + 1, history)
    if selection.enabled:
        selection.restore()
        history["best_epoch"] = selection.best_epoch
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
