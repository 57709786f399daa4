"""Physically remove the hidden units and filters that pruning or L0 gates left dead, with the same answers.

A unit is dead when its kernel column (a Dense unit) or filter (a Conv2D output channel) is all zero: its output
is the constant ``activation(bias)`` whatever the input, so that constant is folded into the next layer's bias
and the unit is removed, together with its rows in the next kernel. A unit whose rows in the next kernel are all
zero is removed too: nothing reads it. Zeros cost a compressed file a little; a unit that is not there costs
nothing, and the narrower layers also run faster::

    result = narrow_model(model, sample=x_train[:64])     # Sequential Dense / Conv2D chains, both Keras flavours
    result.model                     # the narrower copy (uncompiled), or ``model`` itself when nothing was dead
    result.kept                      # {'fc1': 100, 'fc2': 91}: units left in each narrowed layer
    result.removed                   # 209 units and filters removed in all

A unit is folded only where that is exact: its layer's activation must be elementwise (not softmax), between it
and the next kernel layer only layers that map a per-channel constant to itself (pooling, dropout, flatten,
elementwise activations), and a next Conv2D must not pad (``padding="valid"``: zero padding would not carry the
constant), unless the constant is zero. Anything else is left as it is. With ``sample``, the narrow model's
answers are checked against the source's and a difference beyond float rounding is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelpress.errors import CompressionError

PRODUCERS = ("Dense", "Conv2D")
#: layers that pass a constant channel through unchanged (inference): its value may change (an activation), its
#: position may (flatten), but it stays one constant per channel
PASS_THROUGH = ("MaxPooling2D", "AveragePooling2D", "MaxPooling1D", "AveragePooling1D", "Dropout", "SpatialDropout2D",
                "Activation", "ReLU", "LeakyReLU", "ELU", "Flatten", "GaussianNoise", "GaussianDropout")
#: the answers of the narrow model may differ from the source by float rounding only (relative to the output range)
TOLERANCE = 1e-4


@dataclass
class NarrowResult:
    model: Any
    kept: dict[str, int] = field(default_factory=dict)      # narrowed layer -> units / filters it keeps
    removed: int = 0                                        # units and filters removed in all
    folded: int = 0                                         # of them, constants folded into a next bias
    max_difference: float | None = None                     # largest |narrow - source| on the sample


@dataclass
class _Link:
    """A kernel layer, the kernel layer that reads it and what lies between (a chain of pass-through layers)."""

    producer: int
    consumer: int
    between: list[Any]

    def flattened(self) -> bool:
        return any(type(layer).__name__ == "Flatten" for layer in self.between)


def _links(layers: list[Any]) -> list[_Link]:
    """Pairs of kernel layers that may be narrowed between them (see the module's rules)."""
    links, last, between = [], None, []
    for index, layer in enumerate(layers):
        name = type(layer).__name__
        if name in PRODUCERS:
            producer = layers[last] if last is not None else None
            if producer is not None and _can_fold(producer, layer, between):
                links.append(_Link(last, index, list(between)))
            last, between = index, []
        elif name in PASS_THROUGH:
            between.append(layer)
        else:  # a layer that mixes channels or keeps state: nothing across it
            last, between = None, []
    return links


def _can_fold(producer: Any, consumer: Any, between: list[Any]) -> bool:
    if getattr(producer, "groups", 1) != 1 or getattr(consumer, "groups", 1) != 1:
        return False
    if getattr(producer.activation, "__name__", "") == "softmax":
        return False
    for layer in between:
        if type(layer).__name__ == "Activation" and getattr(layer.activation, "__name__", "") == "softmax":
            return False
    flattened = any(type(layer).__name__ == "Flatten" for layer in between)
    producer_conv, consumer_conv = type(producer).__name__ == "Conv2D", type(consumer).__name__ == "Conv2D"
    if consumer_conv and not producer_conv:
        return False  # a Dense feeding a Conv2D needs a reshape, which is not a pass-through
    if producer_conv and not consumer_conv and not flattened:
        return False
    return getattr(producer, "data_format", "channels_last") == "channels_last" and \
        getattr(consumer, "data_format", "channels_last") == "channels_last"


def _constants(producer: Any, bias: np.ndarray, between: list[Any]) -> np.ndarray:
    """What each unit outputs when its kernel is all zero, after the pass-through layers (per channel)."""
    value = np.asarray(producer.activation(np.asarray(bias, np.float32)[None, :]), dtype=np.float64)[0]
    for layer in between:
        if type(layer).__name__ in ("Activation", "ReLU", "LeakyReLU", "ELU"):
            value = np.asarray(layer(np.asarray(value, np.float32)[None, :]), dtype=np.float64)[0]
    return value


def _rows(consumer_kernel: np.ndarray, channels: int, conv: bool) -> np.ndarray:
    """The consumer's kernel as (positions, channels, units): every row that reads each producer channel."""
    if conv:
        kh, kw, cin, cout = consumer_kernel.shape
        return consumer_kernel.reshape(kh * kw, cin, cout)
    return consumer_kernel.reshape(-1, channels, consumer_kernel.shape[-1])


def narrow_model(model: Any, sample: np.ndarray | None = None) -> NarrowResult:
    """Remove dead units and filters from a Sequential model (see the module); ``model`` is left unchanged."""
    if type(model).__name__ != "Sequential":
        return NarrowResult(model)
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    links = _links(layers)
    if not links:
        return NarrowResult(model)
    weights = {i: [np.asarray(w, np.float64) for w in layers[i].get_weights()] for i in
               {link.producer for link in links} | {link.consumer for link in links}}
    keep = {i: np.ones(weights[i][0].shape[-1], bool) for i in weights}
    removed = folded = 0
    changed = True
    while changed:  # removing a unit's column can leave a unit before it with nothing to feed: repeat to the end
        changed = False
        for link in links:
            p, c = link.producer, link.consumer
            kernel, use_bias = weights[p][0], len(weights[p]) > 1
            columns = kernel.reshape(-1, kernel.shape[-1])
            conv = type(layers[c]).__name__ == "Conv2D"
            rows = _rows(weights[c][0], kernel.shape[-1], conv)
            silent = ~np.any(columns != 0, axis=0)
            unread = ~np.any(rows[:, :, keep[c]] != 0, axis=(0, 2))
            bias = weights[p][1] if use_bias else np.zeros(kernel.shape[-1])
            constant = _constants(layers[p], bias, link.between)
            padded = conv and getattr(layers[c], "padding", "valid") != "valid"
            dead = keep[p] & (unread | (silent & ~(padded & (constant != 0))))
            if dead.sum() >= keep[p].sum():
                dead[np.flatnonzero(keep[p])[0]] = False  # a layer keeps at least one unit
            if not dead.any():
                continue
            fold = dead & ~unread & (constant != 0)
            if fold.any() and len(weights[c]) > 1:
                weights[c][1] = weights[c][1] + np.einsum("k,pkj->j", constant[fold], rows[:, fold, :])
            elif fold.any():
                continue  # a consumer without a bias cannot take the constant
            rows[:, dead, :] = 0.0
            weights[c][0] = rows.reshape(weights[c][0].shape)
            keep[p] &= ~dead
            removed += int(dead.sum())
            folded += int(fold.sum())
            changed = True
    if not removed:
        return NarrowResult(model)
    narrow = _rebuild(model, layers, links, weights, keep)
    result = NarrowResult(narrow, kept={layers[i].name: int(keep[i].sum()) for i in keep if not keep[i].all()},
                          removed=removed, folded=folded)
    if sample is not None:
        result.max_difference = _check(model, narrow, sample)
    return result


def _rebuild(model: Any, layers: list[Any], links: list[_Link], weights: dict[int, list[np.ndarray]],
             keep: dict[int, np.ndarray]) -> Any:
    config = model.get_config()
    sizes = {layers[i].name: int(keep[i].sum()) for i in keep if not keep[i].all()}
    for layer_config in config["layers"]:
        layer_config.pop("build_config", None)  # records the old input shapes
        cfg = layer_config.get("config", {})
        if cfg.get("name") in sizes:
            cfg["units" if layer_config["class_name"] == "Dense" else "filters"] = sizes[cfg["name"]]
    try:
        narrow = type(model).from_config(config)
    except Exception as err:
        raise CompressionError(f"cannot rebuild {model.name!r} without its dead units: {str(err).splitlines()[0]}") \
            from None
    if not narrow.built:
        narrow.build((None, *model.input_shape[1:]))
    reads = {link.consumer: link.producer for link in links}
    for index, layer in enumerate(layers):
        values = weights.get(index) or [np.asarray(w) for w in layer.get_weights()]
        if not values:
            continue
        out_keep = keep.get(index)
        if out_keep is not None:
            values = [values[0][..., out_keep]] + [w[out_keep] for w in values[1:]]
        if index in reads:
            conv = type(layer).__name__ == "Conv2D"
            channels = keep[reads[index]].shape[0]
            rows = _rows(values[0], channels, conv)[:, keep[reads[index]], :]
            shape = (*values[0].shape[:-2], -1, values[0].shape[-1]) if conv else (-1, values[0].shape[-1])
            values[0] = rows.reshape(shape)
        narrow.get_layer(layer.name).set_weights([np.asarray(w, np.float32) for w in values])
    return narrow


def _check(source: Any, narrow: Any, sample: np.ndarray) -> float:
    x = np.asarray(sample, np.float32)
    want = np.asarray(source(x, training=False), np.float64)
    got = np.asarray(narrow(x, training=False), np.float64)
    difference = float(np.max(np.abs(want - got))) if want.size else 0.0
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1.0)
    if difference > TOLERANCE * scale:
        raise CompressionError(f"narrowing {source.name!r} changed its answers by up to {difference:.3g} on "
                               f"{len(x)} samples (float rounding allows {TOLERANCE * scale:.3g}); keep the model "
                               "as it is or report this as a bug")
    return difference
