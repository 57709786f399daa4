"""Publish a model package into a model repository as the next version, atomically.

    <repo>/<model>/<version>/      integer versions; the runtime serves what it finds there

    with staging(Path("repo"), "digits") as folder:
        version = next_version(Path("repo/digits"))
        modelpress.convert(model, profile, folder / "pkg", version=str(version))
        final = publish_package(folder / "pkg", Path("repo"), "digits", version)

The package is built completely beside its final place (a hidden temporary folder on the same file
system) and renamed into ``<version>`` in one step, so a running server polling the repository never
sees a half-written version, and an interrupted deploy leaves only a hidden folder it ignores.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from modelpress.atomic import TEMP_PREFIX
from modelpress.errors import UsageError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_model_name(name: str) -> str:
    if not NAME.match(name) or ".." in name:
        raise UsageError(f"model name {name!r} cannot be a repository folder; use letters, digits, '_', '.', '-' "
                         "(at most 128 characters, not starting with '.' or '-')")
    return name


def next_version(model_dir: Path) -> int:
    """One more than the highest integer version folder (1 for a new model)."""
    if not model_dir.is_dir():
        return 1
    versions = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


@contextlib.contextmanager
def staging(repo: Path, name: str) -> Iterator[Path]:
    """A hidden folder inside ``<repo>/<name>/`` to build a package in (same file system, so the final
    rename is atomic); removed on exit, with the model folder itself if it ended up empty."""
    model_dir = Path(repo) / check_model_name(name)
    created = not model_dir.exists()
    model_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}deploy-", dir=model_dir))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                model_dir.rmdir()  # only succeeds when nothing was published


def publish_package(package: Path, repo: Path, name: str, version: int) -> Path:
    """Rename a complete package folder to ``<repo>/<name>/<version>``; refuse to replace a version."""
    final = Path(repo) / check_model_name(name) / str(int(version))
    if final.exists():
        raise UsageError(f"{final} already exists: versions are never overwritten; deploy again for the next one")
    final.parent.mkdir(parents=True, exist_ok=True)
    os.rename(package, final)
    return final


