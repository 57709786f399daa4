"""What a model file or folder costs and is: sizes raw and gzipped (a download, a flash image) and a content
digest. Pure Python, shared by the converters, the manifest of models made elsewhere and the runtime::

    raw_bytes("build/rpi/model.tflite"), gzip_bytes("build/gpu/saved_model"), file_sha256("model.keras")
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path


def _files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def raw_bytes(path: str | Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    return sum(p.stat().st_size for p in _files(Path(path)))


def gzip_bytes(path: str | Path) -> int:
    """Bytes of a file (or every file under a folder) gzipped at level 9, each on its own."""
    return sum(len(gzip.compress(p.read_bytes(), compresslevel=9, mtime=0)) for p in _files(Path(path)))


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and contents, in sorted order)."""
    path = Path(path)
    digest = hashlib.sha256()
    for item in _files(path):
        if path.is_dir():
            digest.update(str(item.relative_to(path)).encode())
        with open(item, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
