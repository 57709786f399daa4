"""The report of a ``modelpress press`` run: what was chosen per profile, every trial and why it lost, and
Pareto plots of size and latency against accuracy with the chosen point marked.

    paths = render_press_report(json.load(open("build/press/press.json")), "build/press/report")
    paths.markdown, paths.html, paths.images
"""

from __future__ import annotations

import datetime as _dt
import html
import re
from pathlib import Path
from typing import Any

from modelpress.report.plots import _pyplot
from modelpress.report.render import ReportPaths, _html_table
from modelpress.tables import markdown_table

TRIAL_COLUMNS = [("#", "id"), ("candidate", "variant"), ("family", "family"), ("verdict", "verdict"),
                 ("top-1", "accuracy", "{:.2%}"), ("drop pt", "drop_points", "{:+.2f}"),
                 ("margin pt", "margin_points", "{:.2f}"), ("KB", "kb", "{:.1f}"),
                 ("gzip KB", "gzip_kb", "{:.1f}"), ("p50 ms", "p50_ms", "{:.4f}"),
                 ("± ms", "p50_spread_ms", "{:.4f}"), ("s", "seconds", "{:.0f}"),
                 ("cached", "cached"), ("why not chosen", "why_not")]
CHOSEN_COLUMNS = [("profile", "profile"), ("chosen", "variant"), ("top-1", "accuracy", "{:.2%}"),
                  ("drop pt", "drop_points", "{:+.2f}"), ("gzip KB", "gzip_kb", "{:.1f}"),
                  ("x smaller (gzip, vs f32 TFLite)", "ratio", "{:.1f}x"), ("p50 ms", "p50_ms", "{:.4f}"),
                  ("± ms", "p50_spread_ms", "{:.4f}"), ("speed-up vs f32 TFLite", "speedup", "{:.2f}x")]
COLORS = {"passed": "#2a9d8f", "over budget": "#e76f51", "constraints": "#8d99ae", "failed": "#8d99ae"}


def _rows(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for t in trials:
        row = dict(t, family=t["settings"]["family"])
        if t.get("bytes") is not None:
            row.update(kb=t["bytes"] / 1024, gzip_kb=t["gzip_bytes"] / 1024)
        rows.append(row)
    return rows


def _frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both axes (lower x, higher accuracy), sorted by x."""
    best, front = -1.0, []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def pareto_plot(rows: list[dict[str, Any]], chosen_id: int | None, x_key: str, x_label: str, floor: float,
                title: str, path: Path) -> Path | None:
    """Every measured trial (colour = verdict), the Pareto front, the accuracy floor and the chosen point."""
    points = [r for r in rows if isinstance(r.get(x_key), (int, float)) and isinstance(r.get("accuracy"), float)]
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    for verdict, color in COLORS.items():
        mine = [r for r in points if r["verdict"] == verdict]
        if mine:
            ax.scatter([r[x_key] for r in mine], [r["accuracy"] for r in mine], s=30, color=color, alpha=0.8,
                       label=verdict)
    front = _frontier([(r[x_key], r["accuracy"]) for r in points])
    ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="#264653", lw=1, alpha=0.6,
            label="Pareto front")
    ax.axhline(floor, color="#e76f51", ls="--", lw=1, label="accuracy floor (budget)")
    for r in points:
        if r["id"] == chosen_id:
            ax.scatter([r[x_key]], [r["accuracy"]], s=220, marker="*", color="#f4a261", edgecolor="black",
                       zorder=5, label=f"chosen: {r['variant']}"[:60])
    ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel("top-1 accuracy (held-out)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _summary(doc: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, info in doc["profiles"].items():
        trial = info.get("chosen")
        row: dict[str, Any] = {"profile": name, "variant": "(none within the budget)"}
        if trial:
            row.update(trial, profile=name, gzip_kb=trial["gzip_bytes"] / 1024)
            f32 = info.get("float32_tflite") or {}
            if f32.get("gzip_bytes"):
                row["ratio"] = f32["gzip_bytes"] / trial["gzip_bytes"]
            if f32.get("p50_ms") and trial.get("p50_ms"):
                row["speedup"] = f32["p50_ms"] / trial["p50_ms"]
        rows.append(row)
    return rows


def render_press_report(doc: dict[str, Any], folder: str | Path) -> ReportPaths:
    """Write report.md, report.html and two Pareto plots per profile into ``folder`` (created)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ref = doc["reference"]["accuracy"]
    budget = doc["options"]["max_drop_points"]
    floor = ref - budget / 100
    rows = _rows(doc["trials"])
    images, sections = [], []
    for name, info in doc["profiles"].items():
        mine = [r for r in rows if r["profile"] == name]
        chosen = (info.get("chosen") or {}).get("id")
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        plots = [pareto_plot(mine, chosen, "gzip_kb", "artifact size, gzip (KB, log scale)", floor,
                             f"{name}: size vs accuracy", folder / f"pareto_{slug}_size.png"),
                 pareto_plot(mine, chosen, "p50_ms", "single-sample latency p50 on this host (ms, log scale)",
                             floor, f"{name}: latency vs accuracy", folder / f"pareto_{slug}_latency.png")]
        plots = [p for p in plots if p]
        images += plots
        sections.append((name, mine, plots))
    summary = _summary(doc)
    generated = f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M UTC}"
    intro = (f"Source `{doc['source']['name']}`: {ref:.2%} top-1 on {doc['reference']['samples']} held-out samples "
             f"(the reference for every drop). Budget: {budget:g} point(s); objective: {doc['options']['objective']}; "
             f"{len(rows)} trials in {doc['seconds']:.0f} s ({doc['cache'].get('hits', 0)} cache hits). A candidate "
             "passes only if its drop plus a margin fits the budget: "
             f"{doc['reference'].get('margin', 'no margin')}.")
    lines = [f"# modelpress press: {doc['source']['name']}", "", f"Generated {generated}.", "", intro, "",
             "## Chosen per profile", "", markdown_table(summary, CHOSEN_COLUMNS), ""]
    lines += [f"> {m}" for m in doc["messages"]] + ([""] if doc["messages"] else [])
    if doc.get("stopped"):
        lines += [f"Note: {doc['stopped']}.", ""]
    for name, mine, plots in sections:
        lines += [f"## {name}: every trial", "", markdown_table(mine, TRIAL_COLUMNS), ""]
        lines += [f"![{p.stem}]({p.name})" for p in plots] + [""]
    lines += ["## Notes", ""] + [f"- {n}" for n in doc.get("notes", [])]
    (folder / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    body = [f"<h1>modelpress press: {html.escape(doc['source']['name'])}</h1>",
            f"<p class='meta'>Generated {generated}.</p><p>{html.escape(intro)}</p>",
            "<h2>Chosen per profile</h2>", _html_table(summary, CHOSEN_COLUMNS)]
    body += [f"<blockquote>{html.escape(m)}</blockquote>" for m in doc["messages"]]
    for name, mine, plots in sections:
        body += [f"<h2>{html.escape(name)}: every trial</h2>", _html_table(mine, TRIAL_COLUMNS)]
        body += [f"<figure><img class='plot' src='{p.name}' alt='{html.escape(p.stem)}'></figure>" for p in plots]
    body += ["<h2>Notes</h2><ul>"] + [f"<li>{html.escape(str(n))}</li>" for n in doc.get("notes", [])] + ["</ul>"]
    style = ("body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:80rem;color:#222}"
             "table.results{border-collapse:collapse;font-size:.8rem}table.results th,table.results td"
             "{border:1px solid #ccc;padding:.2rem .45rem;text-align:right}td.text{text-align:left!important}"
             "img.plot{max-width:100%}.meta{color:#666;font-size:.8rem}")
    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>modelpress press: "
            f"{html.escape(doc['source']['name'])}</title><style>{style}</style></head><body>"
            + "\n".join(body) + "</body></html>")
    (folder / "report.html").write_text(page, encoding="utf-8")
    return ReportPaths(folder=folder, markdown=folder / "report.md", html=folder / "report.html", images=images)
