"""Leftovers of killed deploys: the hidden ``<repo>/.modelpress-tmp-deploy-<pid>-<model>-*`` staging folders
that a deploy removes itself unless it is killed (their name is a layout rule, in ``modelpress.layout``).
The server removes them once they are stale: the process named in the folder's name is gone, and the folder
has not changed for ``STALE_AFTER`` seconds (the second rule also covers a deploy on another machine sharing
the repository, whose pid means nothing here)::

    removed = remove_stale_staging(Path("repo"))     # [Path("repo/.modelpress-tmp-deploy-4242-digits-x1")]

Each removal is logged; a folder that cannot be removed (a read-only repository) is logged once.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from modelpress.layout import STAGING_PREFIX, deploy_pid

log = logging.getLogger("modelpress.runtime.repository")
STALE_AFTER = 3600.0  # seconds without a change before a staging folder of a dead process is removed
_warned: set[str] = set()


def process_alive(pid: int) -> bool:
    """Whether a process of this id runs on this machine (one we may not signal counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid > 0
    return True


def remove_stale_staging(root: Path, stale_after: float = STALE_AFTER, now: float | None = None) -> list[Path]:
    """Remove the staging folders directly under ``root`` whose deploy is gone and that are older than
    ``stale_after`` seconds; return what was removed::

        remove_stale_staging(Path("repo"), stale_after=600)
    """
    now = time.time() if now is None else now
    removed = []
    try:
        candidates = [p for p in Path(root).iterdir() if p.name.startswith(STAGING_PREFIX)]
    except OSError:
        return removed
    for folder in candidates:
        try:
            if not folder.is_dir() or folder.is_symlink():
                continue
            age = now - folder.stat().st_mtime
        except OSError:  # removed meanwhile
            continue
        pid = deploy_pid(folder.name)
        if age < stale_after or (pid is not None and process_alive(pid)):
            continue
        try:
            shutil.rmtree(folder)
        except OSError as err:
            if str(folder) not in _warned:
                _warned.add(str(folder))
                log.warning("cannot remove %s, left by a killed deploy: %s", folder, err.strerror or err)
            continue
        owner = f"process {pid} is gone" if pid is not None else "no process recorded"
        log.warning("removed %s, left by a killed deploy (%s; unchanged for %.0f minutes)", folder, owner, age / 60)
        removed.append(folder)
    return removed
