"""What a model file or folder costs and is: sizes raw and gzipped (a download, a flash image) and a content
digest. Pure Python, shared by the converters, the manifest of models made elsewhere and the runtime::

    raw_bytes("build/rpi/model.tflite"), gzip_bytes("build/gpu/saved_model"), gzip_bytes(flatbuffer),
    file_sha256("model.keras")
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


def gzip_bytes(data: bytes | str | Path) -> int:
    """Bytes of ``data`` (a model in memory, a file, or every file under a folder, each on its own) gzipped
    at level 9: what a download or a compressed flash image costs::

        gzip_bytes(flatbuffer), gzip_bytes("build/rpi/model.tflite")
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        return len(gzip.compress(bytes(data), compresslevel=9, mtime=0))
    return sum(gzip_bytes(p.read_bytes()) for p in _files(Path(data)))


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
