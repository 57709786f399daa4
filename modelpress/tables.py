"""Plain-text and Markdown tables from rows of dicts: the one place comparison tables are laid out.

    print(text_table(rows, [("profile", "profile"), ("size", "gzip_kb", "{:.1f}"), ("speed-up", "speedup", times)]))

A column is (header, key) or (header, key, format): a format string or a function from the value to the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Column = tuple  # (header, key) or (header, key, format string or function)


def times(value: float) -> str:
    """A ratio such as a speed-up: two decimals, or two significant digits below 0.1, so that a small
    ratio reads as what it is instead of ``0.00x``::

        times(3.514) == "3.51x"; times(0.00412) == "0.0041x"
    """
    return f"{value:.2f}x" if abs(value) >= 0.1 or value == 0 else f"{value:.2g}x"


def _cell(row: dict[str, Any], column: Column) -> str:
    value = row.get(column[1])
    if value is None:
        return "-"
    if len(column) > 2:
        try:
            return column[2](value) if callable(column[2]) else column[2].format(value)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def text_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """Columns padded to their widest cell; numbers right-aligned."""
    cells = [[_cell(row, c) for c in columns] for row in rows]
    headers = [c[0] for c in columns]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(_is_number(r[i]) for r in cells) and bool(cells) for i in range(len(columns))]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths)] + [line(r) for r in cells])


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    headers = [c[0] for c in columns]
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" if _numeric_col(rows, c) else "---"
                                                              for c in columns) + "|"]
    out += ["| " + " | ".join(_cell(row, c) for c in columns) + " |" for row in rows]
    return "\n".join(out)


def _numeric_col(rows, column) -> bool:
    return bool(rows) and all(_is_number(_cell(r, column)) for r in rows)


def _is_number(text: str) -> bool:
    text = text.replace(",", "").rstrip("x%").strip()
    if text == "-":
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True
