"""Publish a model package into a model repository as the next version, atomically.

    <repo>/<model>/<version>/      integer versions; the runtime serves what it finds there

    with staging(Path("repo"), "digits") as folder:
        version = next_version(Path("repo/digits"))
        modelpress.convert(model, profile, folder / "pkg", version=str(version))
        final = publish_package(folder / "pkg", Path("repo"), "digits", version)

The package is built completely beside its final place (a hidden temporary folder on the same file
system) and renamed into ``<version>`` in one step, so a running server polling the repository never
sees a half-written version (nor an empty new model), and an interrupted deploy leaves only a hidden
``<repo>/.modelpress-tmp-deploy-<pid>-*`` folder, which the server ignores, and removes once it is stale
(its process gone and the folder older than an hour). When ``publish_package`` returns, the package's
files and the new version's name are on disk (fsync of the files, then of each folder a rename changed):
a power cut afterwards does not lose the version.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from modelpress.atomic import TEMP_PREFIX, fsync_directory, fsync_tree, private_dir
from modelpress.errors import UsageError
from modelpress.layout import NAME_RULE, deploy_staging_prefix, is_model_name, version_folders


def check_model_name(name: str) -> str:
    if not is_model_name(name):
        raise UsageError(f"model name {name!r} cannot be a repository folder; use {NAME_RULE}")
    return name


def next_version(model_dir: Path) -> int:
    """One more than the highest integer version folder (1 for a new model)."""
    if not model_dir.is_dir():
        return 1
    return max(version_folders(model_dir), default=0) + 1


@contextlib.contextmanager
def staging(repo: Path, name: str) -> Iterator[Path]:
    """A hidden folder directly inside ``<repo>`` to build a package in (same file system, so the final
    rename is atomic; beside the model folders, so that a deploy killed before publishing leaves no
    visible trace, not even the folder of a new model); removed on exit."""
    check_model_name(name)
    repo = Path(repo)
    repo.mkdir(parents=True, exist_ok=True)
    # the pid in the name tells the server whether the deploy that made it still runs
    folder = private_dir(repo, deploy_staging_prefix(name))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def publish_package(package: Path, repo: Path, name: str, version: int, sign_key: str | Path | None = None) -> Path:
    """Rename a complete package folder to ``<repo>/<name>/<version>``; refuse to replace a version. With
    ``sign_key`` the package is signed first, so that its version appears signed or not at all.

    A new model's folder appears in the same single rename as its first version (the package is moved
    into a hidden model folder beside it first), so the repository never shows an empty model."""
    model_dir = Path(repo) / check_model_name(name)
    final = model_dir / str(int(version))
    if final.exists():
        raise UsageError(f"{final} already exists: versions are never overwritten; deploy again for the next one")
    package = Path(package)
    if sign_key is not None:
        from modelpress.signing import sign_package

        sign_package(package, sign_key)
    fsync_tree(package)
    if not model_dir.exists():
        holder = private_dir(package.parent, f"{TEMP_PREFIX}model-")
        os.rename(package, holder / final.name)
        fsync_directory(holder)
        package = holder / final.name
        try:
            os.rename(holder, model_dir)
            fsync_directory(model_dir.parent)
            return final
        except OSError as err:  # another deploy created the model meanwhile: publish the version alone
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    try:
        os.rename(package, final)
    except OSError as err:
        if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise UsageError(f"{final} was published by another deploy meanwhile; deploy again for the next "
                             "version") from None
        raise
    fsync_directory(model_dir)
    return final
