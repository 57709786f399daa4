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
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def layer_sparsity(report: dict[str, Any], path: Path) -> Path | None:
    """Bars of per-layer sparsity (and kept fraction of parameters) from a compression report."""
    layers = [layer for layer in report.get("layers", []) if isinstance(layer, dict)]
    names = [str(layer.get("name", i)) for i, layer in enumerate(layers)]
    sparsity = [float(layer.get("sparsity") or 0.0) for layer in layers]
    if not layers:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(layers) + 1.5), dpi=110)
    ax.barh(names, sparsity, color="#4C72B0")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("sparsity (fraction of zero weights)")
    ax.set_title(f"per-layer sparsity: {report.get('name', '')} {report.get('recipe', '')}".strip())
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
