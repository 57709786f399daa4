"""Per-layer mixed precision: a recipe a user writes, by layer-name patterns, for LiteRT's quantizer.

A YAML file (or a dict, or ``PATTERN=PRECISION`` options on the command line)::

    # mixed.yaml: int8 everywhere, int16 activations in the first convolution, the classifier in float
    default: int8
    layers:
      conv1: int16x8
      probs: float

    recipe = LayerPrecision.load("mixed.yaml")           # or LayerPrecision.from_config({...})
    recipe.get_config()                                  # back to the mapping above
    modelpress.convert("model.keras", "raspberry-pi-4", "build/rpi", calibration="calib.npy",
                       layer_precision="mixed.yaml")

Patterns are regular expressions searched in the names of a layer's output tensors in the float32
flatbuffer, which carry the Keras layer names (``digits_cnn/conv1/Relu;...``); a later pattern wins
over an earlier one. Precisions: ``int8`` (int8 weights and activations), ``int16x8`` (int16 activations,
int8 weights), ``dynamic`` (int8 weights, activations quantized at run time), ``int4`` (int4 weights,
float compute) and ``float`` (left as it is).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelpress.errors import UsageError

PRECISIONS = ("int8", "int16x8", "dynamic", "int4", "float")
#: precisions whose activations are integer, so a recipe that uses one needs calibration samples
STATIC = ("int8", "int16x8")


def _precision(value: Any, where: str) -> str:
    if value not in PRECISIONS:
        raise UsageError(f"{where}: precision {value!r} is not one of {', '.join(PRECISIONS)}")
    return str(value)


@dataclass
class LayerPrecision:
    """A default precision and (pattern, precision) rules applied in order, the last match winning."""

    default: str = "int8"
    layers: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        _precision(self.default, "layer precision 'default'")
        for pattern, precision in self.layers:
            _precision(precision, f"layer precision for {pattern!r}")
            try:
                re.compile(pattern)
            except re.error as err:
                raise UsageError(f"layer pattern {pattern!r} is not a regular expression ({err}); write e.g. "
                                 "'conv1' or 'dense_[0-9]+'") from None

    @property
    def needs_calibration(self) -> bool:
        return any(p in STATIC for p in [self.default, *(p for _, p in self.layers)])

    def get_config(self) -> dict[str, Any]:
        return {"default": self.default, "layers": dict(self.layers)}

    @classmethod
    def from_config(cls, config: dict[str, Any], source: str = "layer precision") -> LayerPrecision:
        if not isinstance(config, dict):
            raise UsageError(f"{source}: expected a mapping with 'default' and 'layers', found {type(config).__name__}")
        unknown = sorted(set(config) - {"default", "layers"})
        if unknown:
            raise UsageError(f"{source}: unknown key(s) {', '.join(unknown)}; allowed: default, layers")
        layers = config.get("layers") or {}
        if not isinstance(layers, dict):
            raise UsageError(f"{source}: 'layers' must map name patterns to precisions, e.g. {{conv1: int16x8}}")
        return cls(default=config.get("default", "int8"), layers=[(str(k), v) for k, v in layers.items()])

    @classmethod
    def load(cls, recipe: str | Path | dict[str, Any] | list[str] | LayerPrecision) -> LayerPrecision:
        """From a YAML file, a mapping, ``["PATTERN=PRECISION", ...]`` options (default int8), or itself."""
        if isinstance(recipe, LayerPrecision):
            return recipe
        if isinstance(recipe, dict):
            return cls.from_config(recipe)
        if isinstance(recipe, (list, tuple)):
            return cls.from_options(list(recipe))
        path = Path(recipe)
        if not path.is_file():
            raise UsageError(f"layer precision file {path} does not exist; write a YAML file with 'default: int8' "
                             "and 'layers: {PATTERN: PRECISION}', or pass PATTERN=PRECISION options")
        import yaml

        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise UsageError(f"layer precision file {path} is not valid YAML: {err}") from None
        return cls.from_config(config, source=str(path))

    @classmethod
    def from_options(cls, options: list[str], default: str = "int8") -> LayerPrecision:
        """``["conv1=int16x8", "probs=float", "default=int8"]``: the command line's form."""
        rules = []
        for option in options:
            pattern, sep, precision = option.rpartition("=")
            if not sep or not pattern:
                raise UsageError(f"--layer-precision {option!r}: expected PATTERN=PRECISION (e.g. conv1=int16x8) "
                                 "or a YAML file")
            if pattern == "default":
                default = precision
            else:
                rules.append((pattern, precision))
        return cls(default=default, layers=rules)

    def describe(self) -> str:
        """One line for the manifest's notes: ``default int8; conv1: int16x8; probs: float``."""
        return "; ".join([f"default {self.default}", *(f"{p}: {q}" for p, q in self.layers)])
