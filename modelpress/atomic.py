"""Atomic writes: nobody ever sees a half-written artifact.

A folder is built under a hidden temporary name beside its destination and renamed into place in one
step; a file likewise. Before the rename its files and folders are flushed to disk, and after it the
folder that holds the new name, so that once the call returns the result survives a power cut (Linux;
where a system cannot sync a folder, that step is skipped)::

    with atomic_directory("artifacts/rpi") as tmp:
        (tmp / "model.tflite").write_bytes(data)
        write_manifest(tmp, manifest)
    # artifacts/rpi now exists, complete; on an exception nothing is left behind
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from modelpress.errors import UsageError

TEMP_PREFIX = ".modelpress-tmp-"


def current_umask() -> int:
    """The process's umask, read without changing it where Linux tells it (``/proc/self/status``); elsewhere
    set and restored at once::

        0o666 & ~current_umask()   # the mode open() would give a new file (0o644 under umask 022)
    """
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def private_dir(parent: str | Path, prefix: str = TEMP_PREFIX) -> Path:
    """A new hidden folder in ``parent`` with the mode ``mkdir`` would give it (``tempfile.mkdtemp`` makes it
    0700, and a folder renamed into place keeps its mode: a service running as another user could not
    read a model deployed through it)::

        folder = private_dir(repo, TEMP_PREFIX + "deploy-")   # 0755 under umask 022
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(folder, 0o777 & ~current_umask())
    return folder
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


@functools.cache
def _renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not glibc 2.28+ / musl 1.2.3+
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``), so that ``b`` is never
    missing, not even for a moment; False where the system or file system cannot."""
    function = _renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def fsync_directory(path: str | Path) -> None:
    """Flush a folder's entries (names created, renamed or removed in it) to disk; a no-op where the system
    cannot open or sync a folder::

        os.rename(tmp, "repo/digits/3"); fsync_directory("repo/digits")   # the new name survives a power cut
    """
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # not openable as a folder here (Windows, permissions): nothing more we can do
        return
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.EBADF, errno.EOPNOTSUPP, errno.EACCES):
            raise
    finally:
        os.close(fd)


def fsync_tree(folder: str | Path) -> None:
    """Flush every file under ``folder``, then every folder in it (deepest first) and ``folder`` itself::

        fsync_tree("repo/.modelpress-tmp-deploy-123-digits-x/pkg")
    """
    folder = Path(folder)
    paths = sorted(folder.rglob("*"))
    for path in paths:
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    for path in sorted((p for p in paths if p.is_dir() and not p.is_symlink()), key=lambda p: -len(p.parts)):
        fsync_directory(path)
    fsync_directory(folder)



@contextlib.contextmanager
def atomic_directory(dest: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a private temporary folder that becomes ``dest`` when the block succeeds.

    An existing ``dest`` is replaced only when ``overwrite`` is true, by exchanging the two folders in
    one step (on Linux; elsewhere it is moved aside just before), so a reader, or a process killed at
    any moment, finds either the complete old folder or the complete new one.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and not overwrite:
        raise UsageError(f"{dest} already exists; choose another --out or remove it")
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"{dest} exists and is a file; --out must name a folder")
    tmp = private_dir(dest.parent)
    try:
        yield tmp
        fsync_tree(tmp)
        if dest.exists() and _exchange(tmp, dest):
            fsync_directory(dest.parent)
            shutil.rmtree(tmp, ignore_errors=True)  # the old folder, now under the hidden name
        elif dest.exists():  # no atomic exchange here: a short moment without dest
            old = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX + "old-", dir=dest.parent))
            os.replace(dest, old / dest.name)
            os.replace(tmp, dest)
            fsync_directory(dest.parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
            fsync_directory(dest.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(dest: str | Path, data: bytes) -> Path:
    """Write a file through a temporary sibling and one rename, flushed to disk with its folder::

        atomic_write_bytes("benchmarks/results/peer_bench.json", text.encode())
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=dest.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp's 0600 would stay after the rename
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
        fsync_directory(dest.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return dest
