"""PNG plots for reports (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(row: dict[str, Any]) -> str:
    parts = [str(row[k]) for k in ("variant", "model", "profile") if row.get(k)]
    return " / ".join(dict.fromkeys(parts))


def scatter(rows: list[dict[str, Any]], x_key: str, y_key: str, x_label: str, y_label: str, title: str,
            path: Path, log_x: bool = False) -> Path | None:
    """One point per row that has both values, named in a legend; None when no row has both."""
    points = [(r[x_key], r[y_key], _label(r)) for r in rows
              if isinstance(r.get(x_key), (int, float)) and isinstance(r.get(y_key), (int, float))]
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 4.5), dpi=110)
    markers = "osD^vP*Xh<>"
    for i, (x, y, label) in enumerate(points):  # a legend, not annotations: close points stay readable
        ax.scatter([x], [y], s=55, marker=markers[i % len(markers)], label=label, alpha=0.85)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    if log_x:  # plain numbers (40, 60, 100) on the log axis, not 4x10^1
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
    if y_key == "accuracy" and all(0 <= y <= 1 for _, y, _ in points):  # as the tables show it: 98.9%
        from matplotlib.ticker import PercentFormatter

        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=2))
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def layer_sparsity(report: dict[str, Any], path: Path, title: str) -> Path | None:
    """Per layer: the fraction of weights that are zero (pruning) and of parameters removed (slimming)."""
    import numpy as np

    layers = [layer for layer in report.get("layers", []) if isinstance(layer, dict)]
    if not layers:
        return None
    names = [str(layer.get("name", i)) for i, layer in enumerate(layers)]
    sparsity = np.array([float(layer.get("sparsity") or 0.0) for layer in layers])
    removed = np.array([1.0 - float(layer.get("params_after") or 0) / float(layer["params_before"])
                        if layer.get("params_before") else 0.0 for layer in layers])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(layers) + 1.6), dpi=110)
    rows = np.arange(len(layers))
    ax.barh(rows - 0.2, sparsity, height=0.4, color="#4C72B0", label="weights that are zero (pruning)")
    ax.barh(rows + 0.2, removed, height=0.4, color="#DD8452", label="parameters removed (structured)")
    ax.set_yticks(rows, names)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("fraction of the layer's original parameters")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
