"""Render a run folder's results to ``<run>/report/report.md`` and ``report.html`` with PNG plots."""

from __future__ import annotations

import datetime as _dt
import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelpress.atomic import atomic_directory
from modelpress.report.collect import RunResults, collect
from modelpress.report.plots import layer_sparsity, scatter
from modelpress.tables import markdown_table, times

ROW_COLUMNS = [
    ("model", "variant"), ("model", "model"), ("profile", "profile"), ("version", "version"),
    ("format", "format"), ("quant", "quantization"), ("size KB", "kb", "{:.1f}"), ("gzip KB", "gzip_kb", "{:.1f}"),
    ("x smaller", "ratio", "{:.1f}x"), ("accuracy", "accuracy", "{:.2%}"), ("agreement", "agreement", "{:.2%}"),
    ("agreement", "top1_agreement", "{:.2%}"), ("p50 ms", "p50_ms", "{:.3f}"), ("speed-up", "speedup", times),
    # microcontroller / NPU packages (modelpress.converters.mcu.figures): "(est.)" marks estimates
    ("flash KB", "flash_kb", "{:.1f}"), ("arena KB (est.)", "arena_est_kb", "{:.1f}"),
    ("arena KB (measured)", "arena_kb", "{:.1f}"), ("ms (est.)", "est_ms", "{:.3f}"),
    ("ms (Vela)", "vela_ms", "{:.3f}"), ("TFLM LSB", "micro_lsb"),
]
LAYER_COLUMNS = [("layer", "name"), ("type", "type"), ("params before", "params_before", "{:,}"),
                 ("params after", "params_after", "{:,}"), ("sparsity", "sparsity", "{:.1%}"),
                 ("unique values", "unique_values"), ("MACs before", "macs_before", "{:,}"),
                 ("MACs after", "macs_after", "{:,}")]


@dataclass
class ReportPaths:
    folder: Path
    markdown: Path
    html: Path
    images: list[Path]


def _columns(rows: list[dict[str, Any]], columns: list[tuple]) -> list[tuple]:
    """Only the columns some row has a value for."""
    return [c for c in columns if any(r.get(c[1]) is not None for r in rows)]


def _with_sizes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        row = dict(row)
        if "kb" not in row and isinstance(row.get("bytes"), (int, float)):
            row["kb"] = row["bytes"] / 1024
        if "gzip_kb" not in row and isinstance(row.get("gzip_bytes"), (int, float)):
            row["gzip_kb"] = row["gzip_bytes"] / 1024
        out.append(row)
    return out


def _plots(results: RunResults, rows: list[dict[str, Any]], folder: Path) -> list[tuple[str, Path]]:
    plots = []
    size = scatter(rows, "gzip_kb", "accuracy", "artifact size, gzip (KB, log scale)", "top-1 accuracy",
                   "size vs accuracy", folder / "size_vs_accuracy.png", log_x=True)
    if size:
        plots.append(("Size vs accuracy", size))
    latency = scatter(rows, "p50_ms", "accuracy", "single-sample latency p50 (ms, log scale)", "top-1 accuracy",
                      "latency vs accuracy", folder / "latency_vs_accuracy.png", log_x=True)
    if latency:
        plots.append(("Latency vs accuracy", latency))
    for i, report in enumerate(results.compressions):
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(report.get("label", i)))
        title = f"Per-layer sparsity: {report.get('label', '')}"
        bars = layer_sparsity(report, folder / f"sparsity_{i}_{safe}.png", title)
        if bars:
            plots.append((title, bars))
    return plots


def _markdown(results: RunResults, rows, plots) -> str:
    lines = [f"# modelpress report: {results.title}", "",
             f"Generated {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M UTC} from "
             + ", ".join(f"`{p.relative_to(results.folder)}`" for p in results.sources) + ".", ""]
    if rows:
        lines += ["## Comparison", "", markdown_table(rows, _columns(rows, ROW_COLUMNS)), ""]
    for title, path in plots:
        lines += [f"## {title}", "", f"![{title}]({path.name})", ""]
    for report in results.compressions:
        layers = report.get("layers", [])
        lines += [f"## Layers: {report.get('label', '')}", "", markdown_table(layers, _columns(layers, LAYER_COLUMNS)),
                  ""]
    return "\n".join(lines)


def _html_table(rows: list[dict[str, Any]], columns: list[tuple]) -> str:
    from modelpress.tables import _cell, _numeric_col

    head = "".join(f"<th>{html.escape(c[0])}</th>" for c in columns)
    numeric = [_numeric_col(rows, c) for c in columns]
    body = "".join("<tr>" + "".join(f'<td class="{"num" if num else "text"}">{html.escape(_cell(r, c))}</td>'
                                    for c, num in zip(columns, numeric)) + "</tr>" for r in rows)
    return f'<table class="results"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _html(results: RunResults, rows, plots) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("modelpress.report", "templates"), autoescape=select_autoescape())
    layer_tables = [(r.get("label", ""), _html_table(r.get("layers", []), _columns(r.get("layers", []), LAYER_COLUMNS)))
                    for r in results.compressions]
    return env.get_template("report.html").render(
        title=results.title, generated=f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M UTC}",
        sources=[str(p.relative_to(results.folder)) for p in results.sources],
        table=_html_table(rows, _columns(rows, ROW_COLUMNS)) if rows else "",
        plots=[(title, path.name) for title, path in plots], layer_tables=layer_tables, info=results.info)


def render_report(run_dir: str | Path, out: str | Path | None = None) -> ReportPaths:
    """Write report.md, report.html and the PNG plots into ``out`` (default ``<run_dir>/report``), atomically."""
    results = collect(run_dir)
    rows = _with_sizes(results.rows)
    target = Path(out) if out else results.folder / "report"
    with atomic_directory(target) as folder:
        plots = _plots(results, rows, folder)
        (folder / "report.md").write_text(_markdown(results, rows, plots), encoding="utf-8")
        (folder / "report.html").write_text(_html(results, rows, plots), encoding="utf-8")
    images = [target / path.name for _, path in plots]
    return ReportPaths(folder=target, markdown=target / "report.md", html=target / "report.html", images=images)
