"""The model repository's layout rules, written once for the writers (``converters/publish.py``) and the
reader (``runtime/repository.py``). Pure Python, no TensorFlow::

    <repo>/<model>/<version>/        model: letters, digits, '_', '.', '-'; version: ASCII digits

    is_model_name("digits")          # True
    parse_version("3")               # 3
    parse_version("٣"), parse_version("1.0")   # None, None: only ASCII digits name a version
    version_folders(Path("repo/digits"))       # {1: [Path(".../1")], 2: [Path(".../02"), Path(".../2")]}

A deploy builds its package in a hidden staging folder directly under the repository, named after the
deploying process, ``<repo>/.modelpress-tmp-deploy-<pid>-<model>-<random>``; the server skips it, and
removes it once that process is gone and the folder is stale::

    deploy_staging_prefix("digits", pid=4242)             # ".modelpress-tmp-deploy-4242-digits-"
    deploy_pid(".modelpress-tmp-deploy-4242-digits-x1")   # 4242
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from modelpress.atomic import TEMP_PREFIX

#: a model (or label) name: never a path, never hidden
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
#: a version as a folder name or in a URL: ASCII digits only, at most 15 of them (fits any JSON number)
VERSION = re.compile(r"[0-9]{1,15}")
#: what the name of every deploy's staging folder starts with (it is hidden: a leading '.')
STAGING_PREFIX = TEMP_PREFIX + "deploy-"
_STAGING_PID = re.compile(r"([0-9]{1,10})-")
NAME_RULE = ("letters, digits, '_', '.', '-'; at most 128 characters, starting with a letter or digit, "
             "no '..'")


def is_model_name(name: object) -> bool:
    """Whether ``name`` can be a model folder (and so a model, version label or URL part)."""
    return isinstance(name, str) and bool(NAME.match(name)) and ".." not in name


def parse_version(text: object) -> int | None:
    """The integer a version folder name or URL part stands for, or None when it names no version."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        return text if 0 <= text < 10**15 else None
    if isinstance(text, str) and VERSION.fullmatch(text):
        return int(text)
    return None


def version_folders(model_dir: Path) -> dict[int, list[Path]]:
    """Every folder of ``model_dir`` whose name is a version, grouped by the version it names (more than
    one path under a version means an ambiguous repository, e.g. ``1`` and ``01``); sorted paths."""
    found: dict[int, list[Path]] = {}
    for folder in sorted(Path(model_dir).iterdir()):
        number = parse_version(folder.name)
        if number is not None and folder.is_dir():
            found.setdefault(number, []).append(folder)
    return found


def deploy_staging_prefix(model: str, pid: int | None = None) -> str:
    """The start of the name of a staging folder in which process ``pid`` (default: this one) deploys
    ``model``; the folder's maker adds a random tail."""
    return f"{STAGING_PREFIX}{os.getpid() if pid is None else pid}-{model}-"


def deploy_pid(name: str) -> int | None:
    """The pid a staging folder's name records, or None (not a staging folder, or one made before the
    name recorded it)."""
    found = _STAGING_PID.match(name[len(STAGING_PREFIX):]) if name.startswith(STAGING_PREFIX) else None
    return int(found.group(1)) if found else None
