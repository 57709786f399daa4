"""The import-cycle check that ``make test`` runs (``python -m modelpress.testing.import_cycles modelpress``):
it fails on a cycle planted in a throwaway package, a type-only one included, and passes on modelpress."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("grimp")
ROOT = Path(__file__).resolve().parents[1]


def _check(package: str, path: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(p) for p in (path, ROOT) if p is not None))
    return subprocess.run([sys.executable, "-m", "modelpress.testing.import_cycles", package], env=env,
                          capture_output=True, text=True, timeout=120)


def _package(root: Path, name: str, modules: dict[str, str]) -> Path:
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text("", encoding="utf-8")
    for module, text in modules.items():
        (root / name / f"{module}.py").write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize("second", [
    "from planted import first\n",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from planted.first import Thing\n",
], ids=["import", "type-checking-import"])
def test_a_planted_cycle_fails_the_check_and_is_named(tmp_path, second):
    root = _package(tmp_path, "planted", {
        "first": "from planted import middle\nclass Thing: ...\n",
        "middle": "def call():\n    from planted import second\n    return second\n",  # a lazy import counts too
        "second": second,
        "apart": "from planted import first\n",                                  # imports into the loop, not in it
    })
    answer = _check("planted", root)
    assert answer.returncode == 1, answer.stdout + answer.stderr
    assert "import cycle among 3 modules: planted.first, planted.middle, planted.second" in answer.stdout
    assert "planted.second imports planted.first (line" in answer.stdout
    assert "planted.apart" not in answer.stdout


def test_a_package_without_cycles_passes(tmp_path):
    root = _package(tmp_path, "layered", {"low": "X = 1\n", "high": "from layered.low import X\n"})
    answer = _check("layered", root)
    assert answer.returncode == 0 and "no import cycle in layered (3 modules)" in answer.stdout


def test_modelpress_has_no_import_cycle():
    answer = _check("modelpress")
    assert answer.returncode == 0, answer.stdout + answer.stderr
