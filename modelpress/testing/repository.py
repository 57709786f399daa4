"""Model repositories for tests and benchmarks, written the way a deploy writes them::

    add_version(root, "digits", 1, "tests/runtime/fixtures/packages/float32")   # complete, then renamed
    build_repository(root, packages)    # digits 1 + 2 (labels stable / canary), int8 and edgetpu
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def add_version(repo: Path, model: str, version: int, package: str | Path, packages: Path | None = None) -> Path:
    """Copy a package folder into ``repo/model/version`` complete, then rename it into place.
    ``package`` is a folder, or a name under ``packages``::

        add_version(repo, "fer", 1, "artifacts/peers/fer")
    """
    source = Path(packages) / package if packages is not None else Path(package)
    tmp = Path(repo) / model / f".incoming-{version}"
    shutil.copytree(source, tmp)
    dest = Path(repo) / model / str(version)
    os.replace(tmp, dest)
    return dest


def build_repository(root: Path, packages: Path) -> Path:
    """digits (float32, versions 1 and 2, labels stable=1 canary=2, latest 2 served), int8 and edgetpu, from
    the packages ``float32``, ``int8`` and ``edgetpu`` under ``packages``::

        build_repository(tmp / "repo", Path("tests/runtime/fixtures/packages"))
    """
    root = Path(root)
    (root / "digits").mkdir(parents=True)
    add_version(root, "digits", 1, "float32", packages)
    add_version(root, "digits", 2, "float32", packages)
    (root / "digits" / "config.yaml").write_text("version_policy: {latest: 2}\nlabels: {stable: 1, canary: 2}\n")
    add_version(root, "int8", 1, "int8", packages)
    add_version(root, "edgetpu", 1, "edgetpu", packages)
    return root
