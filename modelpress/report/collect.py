"""Find and read the results a run folder holds: comparison rows and per-layer compression reports."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelpress.errors import DataError

RESULT_NAMES = ("results.json", "deploy.json", "convert.json")


@dataclass
class RunResults:
    folder: Path
    title: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    compressions: list[dict[str, Any]] = field(default_factory=list)  # reports with per-layer figures
    info: dict[str, Any] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list)


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path} is not a readable JSON results file ({err})") from None


def _is_compression_report(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("layers"), list)


def collect(folder: str | Path) -> RunResults:
    """Read ``folder``: rows from results.json (or deploy.json / convert.json), every JSON report with
    per-layer figures beneath it; DataError when nothing renderable is there."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder; pass the folder a `modelpress demo`, `compress` or `deploy` "
                        "run wrote its JSON results to")
    results = RunResults(folder=folder, title=folder.resolve().name)
    for name in RESULT_NAMES:
        path = folder / name
        if path.is_file():
            data = _read(path)
            results.rows += list(data.get("rows", [])) if isinstance(data, dict) else []
            results.info.update(data.get("info", {}) if isinstance(data, dict) else {})
            results.sources.append(path)
    for path in sorted(folder.rglob("*.json")):
        if path.name in RESULT_NAMES or "report" in path.relative_to(folder).parts[:1]:
            continue
        if path.name == "modelpress.json":
            continue
        data = _read(path)
        if _is_compression_report(data):
            data = dict(data)
            data.setdefault("name", path.parent.name)
            recipe = data.get("recipe")
            recipe_name = recipe.get("name") if isinstance(recipe, dict) else recipe
            data["label"] = f"{data['name']} / {recipe_name}" if recipe_name else str(data["name"])
            results.compressions.append(data)
            results.sources.append(path)
    if not results.rows and not results.compressions:
        raise DataError(f"{folder} holds no modelpress results (results.json, deploy.json or a compression "
                        "report.json); run `modelpress demo`, `compress` or `deploy --json > deploy.json` first")
    return results
