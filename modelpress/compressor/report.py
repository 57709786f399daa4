"""The compression report: per-layer parameters, sparsity, unique values and MACs, accuracy and sizes.

    report = CompressionReport(...)           # built by modelpress.compress
    report.to_dict()["layers"][0]             # {"name": "conv1", "params_before": 144, "sparsity": 0.8, ...}
    report.write("out/")                      # out/report.json and out/report.md
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelpress.compressor.flavors import kernel_variable, variable_value
from modelpress.tables import markdown_table

LAYER_COLUMNS = [("layer", "name"), ("type", "type"), ("params before", "params_before", "{:,}"),
                 ("params after", "params_after", "{:,}"), ("sparsity", "sparsity", "{:.1%}"),
                 ("unique values", "unique_values"), ("MACs before", "macs_before", "{:,}"),
                 ("MACs after", "macs_after", "{:,}")]


def accuracy(y_true: np.ndarray, outputs: np.ndarray) -> float:
    """Top-1 accuracy for integer or one-hot labels (a single sigmoid output is thresholded at 0.5).

        accuracy(np.array([1, 0]), np.array([[0.2, 0.8], [0.9, 0.1]]))   # 1.0
    """
    outputs = np.asarray(outputs)
    y = np.asarray(y_true)
    if y.ndim > 1 and y.shape[-1] > 1:
        y = y.argmax(axis=-1)
    y = y.reshape(-1)
    if outputs.ndim == 1 or outputs.shape[-1] == 1:
        predicted = (outputs.reshape(-1) > 0.5).astype(np.int64)
    else:
        predicted = outputs.argmax(axis=-1)
    return float((predicted == y).mean())


def layer_macs(layer: Any) -> int:
    """Multiply-accumulates of one call on one sample (dense count; BatchNorm is folded at conversion)."""
    name = type(layer).__name__
    try:
        out_shape = [int(d) for d in layer.output.shape[1:]]
        in_shape = [int(d) for d in layer.input.shape[1:]]
    except (AttributeError, TypeError, ValueError):
        return 0
    spatial = int(np.prod(out_shape[:-1])) if len(out_shape) > 1 else 1
    config = layer.get_config()
    if name == "Dense":
        return int(np.prod(in_shape[:-1] or [1])) * in_shape[-1] * out_shape[-1]
    if name in ("Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose"):
        kernel = variable_value(kernel_variable(layer))
        return spatial * int(np.prod(kernel.shape))
    if name == "DepthwiseConv2D":
        kernel = variable_value(kernel_variable(layer))
        return spatial * int(np.prod(kernel.shape))
    if name == "SeparableConv2D":
        depthwise = variable_value(layer.depthwise_kernel)
        return spatial * (int(np.prod(depthwise.shape)) + in_shape[-1] * config.get("depth_multiplier", 1)
                          * out_shape[-1])
    return 0


def layer_stats(model: Any) -> dict[str, dict[str, Any]]:
    """Per layer with weights: type, params, kernel sparsity, unique kernel values, MACs."""
    stats = {}
    for layer in model.layers:
        if not layer.weights or hasattr(layer, "layers"):
            continue
        kernel = kernel_variable(layer)
        row: dict[str, Any] = {"type": type(layer).__name__, "params": int(layer.count_params()),
                               "macs": layer_macs(layer)}
        if kernel is not None:
            values = variable_value(kernel)
            row["sparsity"] = float((values == 0).mean())
            row["unique_values"] = int(np.unique(values).size)
            row["kernel_shape"] = list(values.shape)
        stats[layer.name] = row
    return stats


def compare_layers(before: dict[str, dict], after: dict[str, dict]) -> list[dict[str, Any]]:
    rows = []
    for name in list(before) + [n for n in after if n not in before]:
        b, a = before.get(name, {}), after.get(name, {})
        sparsity = a.get("sparsity")
        macs_after = a.get("macs", 0)
        rows.append({"name": name, "type": a.get("type") or b.get("type"),
                     "params_before": b.get("params", 0), "params_after": a.get("params", 0),
                     "sparsity": sparsity, "unique_values": a.get("unique_values"),
                     "unique_values_before": b.get("unique_values"),
                     "macs_before": b.get("macs", 0), "macs_after": macs_after,
                     "macs_nonzero_after": int(round(macs_after * (1 - (sparsity or 0.0)))),
                     "shape_before": b.get("kernel_shape"), "shape_after": a.get("kernel_shape")})
    return rows


@dataclass
class CompressionReport:
    """What compression did, per layer and overall; JSON and Markdown."""

    name: str
    recipe: dict[str, Any]
    flavor: str
    layers: list[dict[str, Any]]
    accuracy_before: float
    accuracy_after: float
    sizes_before: dict[str, Any]
    sizes_after: dict[str, Any]
    data: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def params_before(self) -> int:
        return sum(row["params_before"] for row in self.layers)

    @property
    def params_after(self) -> int:
        return sum(row["params_after"] for row in self.layers)

    def summary(self) -> dict[str, Any]:
        nonzero = sum(row["params_after"] * (1 - (row["sparsity"] or 0.0)) for row in self.layers)
        b, a = self.sizes_before, self.sizes_after
        ratio = (b.get("model_gzip_bytes", 0) / a["int8_tflite_gzip_bytes"]) if a.get("int8_tflite_gzip_bytes") \
            else None
        return {"params_before": self.params_before, "params_after": self.params_after,
                "nonzero_params_after": int(round(nonzero)),
                "macs_before": sum(r["macs_before"] for r in self.layers),
                "macs_after": sum(r["macs_after"] for r in self.layers),
                "accuracy_before": self.accuracy_before, "accuracy_after": self.accuracy_after,
                "accuracy_drop": self.accuracy_before - self.accuracy_after,
                "int8_accuracy_after": a.get("int8_accuracy"),
                "gzip_ratio_int8_vs_source": ratio}

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "compression", "name": self.name, "recipe": self.recipe["name"],
                "recipe_config": self.recipe, "flavor": self.flavor, "summary": self.summary(),
                "accuracy_before": self.accuracy_before, "accuracy_after": self.accuracy_after,
                "sizes_before": self.sizes_before, "sizes_after": self.sizes_after, "data": self.data,
                "steps": self.steps, "notes": self.notes, "seconds": round(self.seconds, 2), "layers": self.layers}

    def to_markdown(self) -> str:
        s = self.summary()
        b, a = self.sizes_before, self.sizes_after

        def kb(value):
            return "-" if value is None else f"{value / 1024:.1f} KB"

        lines = [f"# Compression report: {self.name} with `{self.recipe['name']}`", "",
                 f"{self.recipe.get('description', '')}", "",
                 f"Flavour: {self.flavor}. Validation data: {self.data.get('validation')} "
                 f"({self.data.get('val')} samples). Took {self.seconds:.1f} s.", "",
                 "| | before | after |", "|---|---:|---:|",
                 f"| accuracy (Keras) | {self.accuracy_before:.2%} | {self.accuracy_after:.2%} |",
                 f"| accuracy (int8 TFLite) | {_pct(b.get('int8_accuracy'))} | {_pct(a.get('int8_accuracy'))} |",
                 f"| parameters | {s['params_before']:,} | {s['params_after']:,} |",
                 f"| non-zero parameters | | {s['nonzero_params_after']:,} |",
                 f"| MACs | {s['macs_before']:,} | {s['macs_after']:,} |",
                 f"| model file, raw | {kb(b.get('model_bytes'))} | {kb(a.get('model_bytes'))} |",
                 f"| model file, gzip | {kb(b.get('model_gzip_bytes'))} | {kb(a.get('model_gzip_bytes'))} |",
                 f"| int8 TFLite, raw | {kb(b.get('int8_tflite_bytes'))} | {kb(a.get('int8_tflite_bytes'))} |",
                 f"| int8 TFLite, gzip | {kb(b.get('int8_tflite_gzip_bytes'))} | "
                 f"{kb(a.get('int8_tflite_gzip_bytes'))} |", ""]
        if s["gzip_ratio_int8_vs_source"]:
            lines += [f"The gzipped int8 TFLite model is {s['gzip_ratio_int8_vs_source']:.1f}x smaller than the "
                      "gzipped source model.", ""]
        lines += ["## Steps", ""] + [f"{i + 1}. {step['summary']}" for i, step in enumerate(self.steps)] + [""]
        if self.notes:
            lines += ["## Notes", ""] + [f"- {note}" for note in self.notes] + [""]
        lines += ["## Layers", "", markdown_table(self.layers, LAYER_COLUMNS), ""]
        return "\n".join(lines)

    def write(self, folder: str | Path) -> tuple[Path, Path]:
        folder = Path(folder)
        json_path, md_path = folder / "report.json", folder / "report.md"
        json_path.write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        md_path.write_text(self.to_markdown(), encoding="utf-8")
        return json_path, md_path


def _pct(value) -> str:
    return "-" if value is None else f"{value:.2%}"
