"""Sizes of a model file or folder, raw and gzipped (what a download or a flash image costs)."""

from __future__ import annotations

import gzip
from pathlib import Path


def _files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def raw_bytes(path: str | Path) -> int:
    return sum(p.stat().st_size for p in _files(Path(path)))


def gzip_bytes(path: str | Path) -> int:
    return sum(len(gzip.compress(p.read_bytes(), compresslevel=9, mtime=0)) for p in _files(Path(path)))
