"""Structured channel pruning ("slimming"): remove whole channels / units, giving a smaller dense model.

Channels are ranked by the L2 norm of their weights (group-lasso norms, best after regularized
fine-tuning with ``group_lasso``) or by the scale factors of the BatchNorm that follows them (Liu et al.
2017, "Network Slimming"); the lowest ranked are removed physically from Conv2D, SeparableConv2D,
DepthwiseConv2D and Dense layers, from the BatchNorm after them and from the next layer's inputs::

    slim = slim_model(model, ratio=0.5, criterion="l2")
    slim.model.count_params() < model.count_params()
    slim.kept          # {"conv1": [0, 3, 4, ...], ...}

Channels that meet at an ``Add`` (residual connections) form one group and are removed together, so the
shapes agree across the add. A layer the surgery does not understand is refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelpress.compressor.flavors import keras_module
from modelpress.compressor.regularizers import channel_norms
from modelpress.errors import CompressionError, RecipeError

PRODUCERS = {"Dense", "Conv1D", "Conv2D", "SeparableConv2D"}
PASSTHROUGH = {"Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
               "GaussianNoise", "GaussianDropout", "AlphaDropout", "MaxPooling1D", "MaxPooling2D",
               "AveragePooling1D", "AveragePooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
               "GlobalMaxPooling1D", "GlobalMaxPooling2D", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D",
               "Cropping2D", "UpSampling1D", "UpSampling2D", "BatchNormalization", "DepthwiseConv2D",
               "ActivityRegularization", "Identity"}
MERGES = {"Add", "Subtract", "Average", "Maximum", "Minimum", "Multiply"}
SUPPORTED = sorted(PRODUCERS | PASSTHROUGH | MERGES | {"Flatten", "InputLayer"})
CRITERIA = ("l2", "bn")


@dataclass
class _Group:
    size: int
    producers: list[Any] = field(default_factory=list)
    members: list[Any] = field(default_factory=list)   # BatchNorm / DepthwiseConv2D carrying the channels
    frozen: str | None = None                          # why these channels must stay
    keep: np.ndarray | None = None


@dataclass
class SlimResult:
    model: Any
    kept: dict[str, list[int]]
    removed_channels: int
    groups: int


class _UnionFind:
    def __init__(self):
        self.parent: dict[int, int] = {}

    def find(self, a: int) -> int:
        while self.parent.get(a, a) != a:
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def _inputs_of(layer: Any) -> list[Any]:
    if len(getattr(layer, "_inbound_nodes", [])) > 1:
        raise CompressionError(f"layer {layer.name!r} is shared (called {len(layer._inbound_nodes)} times); "
                               "structured pruning needs each layer used once")
    value = layer.input
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _producer(tensor: Any) -> Any:
    return tensor._keras_history[0]


def _check_layer(layer: Any) -> str:
    name = type(layer).__name__
    if name not in SUPPORTED:
        raise CompressionError(f"structured pruning cannot handle layer {layer.name!r} ({name}); supported: "
                               f"{', '.join(SUPPORTED)}. Use unstructured pruning (prune-80) for this model")
    config = layer.get_config()
    if config.get("data_format", "channels_last") != "channels_last":
        raise CompressionError(f"layer {layer.name!r} uses data_format {config['data_format']}; structured pruning "
                               "handles channels_last models only")
    if config.get("groups", 1) != 1:
        raise CompressionError(f"layer {layer.name!r} is a grouped convolution (groups={config['groups']}); "
                               "structured pruning cannot resize it")
    if name == "BatchNormalization":
        axis = config.get("axis")
        axis = axis[0] if isinstance(axis, (list, tuple)) else axis
        if axis not in (-1, len(layer.input.shape) - 1):
            raise CompressionError(f"BatchNormalization {layer.name!r} normalizes axis {axis}; only the channel "
                                   "(last) axis is supported")
    return name


class _Graph:
    """Channel groups of a model: which layers' output channels must be removed together."""

    def __init__(self, model: Any):
        self.model = model
        self.uf = _UnionFind()
        self.groups: dict[int, _Group] = {}
        self.out_group: dict[str, int] = {}      # layer name -> group of its output channels
        self.flat: dict[int, tuple[int, int]] = {}  # flat group -> (channel group, spatial repeat)
        self.consumers: list[tuple[Any, int]] = []  # (Dense / Conv / Separable, group of its input)
        self._next = 0
        for layer in model.layers:
            if hasattr(layer, "layers"):
                raise CompressionError(f"layer {layer.name!r} is a nested model; structured pruning needs a flat "
                                       "Sequential or functional model")
            self._visit(layer)
        for tensor in _as_list(model.outputs):
            self._freeze(self._group_of(tensor), "it feeds the model output")

    def _new(self, size: int, frozen: str | None = None) -> int:
        gid = self._next
        self._next += 1
        self.groups[gid] = _Group(size=size, frozen=frozen)
        return gid

    def _group_of(self, tensor: Any) -> int:
        layer = _producer(tensor)
        if layer.name not in self.out_group:  # an InputLayer outside model.layers (Sequential)
            self.out_group[layer.name] = self._new(int(tensor.shape[-1] or 0), "model input")
        return self.uf.find(self.out_group[layer.name])

    def _freeze(self, gid: int, why: str) -> None:
        gid = self.uf.find(gid)
        if gid in self.flat:
            gid = self.uf.find(self.flat[gid][0])
        group = self.groups[gid]
        group.frozen = group.frozen or why

    def _visit(self, layer: Any) -> None:
        name = _check_layer(layer)
        size = int(layer.output.shape[-1] or 0)
        if name == "InputLayer":
            self.out_group[layer.name] = self._new(size, "model input")
            return
        inputs = [self._group_of(t) for t in _inputs_of(layer)]
        if name in PRODUCERS:
            source = inputs[0]
            if source in self.flat and name != "Dense":
                self._freeze(source, f"{layer.name} reads a flattened tensor")
            self.consumers.append((layer, source))
            gid = self._new(size)
            self.groups[gid].producers.append(layer)
            if name == "SeparableConv2D" and layer.get_config().get("depth_multiplier", 1) != 1:
                self._freeze(source, f"{layer.name} has depth_multiplier > 1")
        elif name == "Flatten":
            shape = layer.input.shape
            repeat = int(np.prod([int(d) for d in shape[1:-1]])) if len(shape) > 2 else 1
            gid = self._new(size)
            self.flat[gid] = (inputs[0], repeat)
        elif name in MERGES:
            for other in inputs[1:]:
                self.uf.union(inputs[0], other)
            gid = self.uf.find(inputs[0])
        else:  # pass-through: same channels in and out
            gid = inputs[0]
            if name == "DepthwiseConv2D" and layer.get_config().get("depth_multiplier", 1) != 1:
                self._freeze(gid, f"{layer.name} has depth_multiplier > 1")
                gid = self._new(size, f"output of {layer.name} (depth_multiplier > 1)")
            elif name in ("BatchNormalization", "DepthwiseConv2D"):
                self.groups[self.uf.find(gid)].members.append(layer)
            if gid in self.flat and name not in ("Dropout", "Activation", "ReLU", "ActivityRegularization"):
                self._freeze(gid, f"{layer.name} reads a flattened tensor")
        self.out_group[layer.name] = gid

    def roots(self) -> dict[int, _Group]:
        merged: dict[int, _Group] = {}
        for gid, group in self.groups.items():
            if gid in self.flat:
                continue
            root = self.uf.find(gid)
            target = merged.setdefault(root, _Group(size=group.size))
            target.producers += group.producers
            target.members += group.members
            target.frozen = target.frozen or group.frozen
        return merged

    def keep_for(self, gid: int, roots: dict[int, _Group]) -> np.ndarray | None:
        """Indices kept along a tensor of group ``gid`` (tiled through a Flatten), or None for all."""
        gid = self.uf.find(gid)
        if gid in self.flat:
            parent, repeat = self.flat[gid]
            keep = roots[self.uf.find(parent)].keep
            if keep is None:
                return None
            size = roots[self.uf.find(parent)].size
            return (np.arange(repeat)[:, None] * size + keep[None, :]).ravel()
        return roots[gid].keep


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _scores(group: _Group, criterion: str) -> np.ndarray:
    if criterion == "bn":
        bns = [m for m in group.members if type(m).__name__ == "BatchNormalization" and m.scale]
        if bns:
            return sum(np.abs(np.asarray(bn.gamma.numpy())) for bn in bns)
    return sum(channel_norms(p) for p in group.producers)


def _slice_weights(layer: Any, weights: list[np.ndarray], keep_in: np.ndarray | None,
                   keep_out: np.ndarray | None) -> list[np.ndarray]:
    name = type(layer).__name__

    def take(array, keep, axis):
        return array if keep is None else np.take(array, keep, axis=axis)

    if name in ("Dense", "Conv1D", "Conv2D"):
        out = [take(take(weights[0], keep_in, -2), keep_out, -1)]
        return out + [take(w, keep_out, 0) for w in weights[1:]]
    if name == "SeparableConv2D":
        depthwise = take(weights[0], keep_in, 2)
        mult = weights[0].shape[-1]
        rows = None if keep_in is None else (keep_in[:, None] * mult + np.arange(mult)[None, :]).ravel()
        pointwise = take(take(weights[1], rows, 2), keep_out, 3)
        return [depthwise, pointwise] + [take(w, keep_out, 0) for w in weights[2:]]
    if name == "DepthwiseConv2D":
        return [take(weights[0], keep_in, 2)] + [take(w, keep_in, 0) for w in weights[1:]]
    if name == "BatchNormalization":
        return [take(w, keep_in, 0) for w in weights]
    return weights


def slim_model(model: Any, ratio: float = 0.5, criterion: str = "l2", flavor: str = "keras3",
               min_channels: int = 1) -> SlimResult:
    """Remove ``ratio`` of the channels of every prunable group; returns the new (uncompiled) model."""
    if criterion not in CRITERIA:
        raise RecipeError(f"slim criterion {criterion!r} is not one of {', '.join(CRITERIA)}")
    try:
        ratio = float(ratio)
    except (TypeError, ValueError):
        raise RecipeError(f"slim ratio {ratio!r} is not a number; use a fraction such as 0.5") from None
    if not 0.0 <= ratio < 1.0:
        raise RecipeError(f"slim ratio {ratio} must be at least 0 and below 1 (0.5 removes half the channels)")
    graph = _Graph(model)
    roots = graph.roots()
    removed = 0
    for group in roots.values():
        if group.frozen or not group.producers or group.size < 2:
            continue
        keep_n = max(min_channels, int(round(group.size * (1.0 - ratio))))
        if keep_n >= group.size:
            continue
        scores = _scores(group, criterion)
        group.keep = np.sort(np.argsort(-scores, kind="stable")[:keep_n])
        removed += group.size - keep_n
    config = model.get_config()
    new_sizes: dict[str, int] = {}
    for group in roots.values():
        if group.keep is not None:
            for producer in group.producers:
                new_sizes[producer.name] = len(group.keep)
    for layer_config in config["layers"]:
        layer_config.pop("build_config", None)  # records the old input shapes
        cfg = layer_config.get("config", {})
        if cfg.get("name") in new_sizes:
            key = "units" if layer_config["class_name"] == "Dense" else "filters"
            cfg[key] = new_sizes[cfg["name"]]
    keras = keras_module(flavor)
    cls = type(model) if type(model).__name__ == "Sequential" else keras.Model
    try:
        new_model = cls.from_config(config)
    except Exception as err:
        raise CompressionError(f"cannot rebuild {model.name!r} with fewer channels: {str(err).splitlines()[0]}") \
            from None
    kept: dict[str, list[int]] = {}
    input_group: dict[str, int] = {}
    for layer in model.layers:
        if type(layer).__name__ != "InputLayer":
            input_group[layer.name] = graph._group_of(_inputs_of(layer)[0])
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        keep_in = graph.keep_for(input_group[layer.name], roots)
        keep_out = graph.keep_for(graph.out_group[layer.name], roots)
        if keep_out is not None and type(layer).__name__ in PRODUCERS:
            kept[layer.name] = [int(i) for i in keep_out]
        weights = layer.get_weights()
        if weights:
            new_model.get_layer(layer.name).set_weights(_slice_weights(layer, weights, keep_in, keep_out))
    return SlimResult(model=new_model, kept=kept, removed_channels=removed,
                      groups=sum(1 for g in roots.values() if g.keep is not None))
