"""No traceback ever reaches a CLI user: an exception modelpress did not expect prints one line (command,
place, type, message, where the traceback was saved) and exits 70; ``-v`` shows the traceback too."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modelpress.cli.main import UNEXPECTED_EXIT


@pytest.fixture
def broken_inspect(monkeypatch):
    """`modelpress inspect` hitting a bug: the inspection code raises a KeyError it never expected."""
    import modelpress.converters.inspection as inspection

    def inspect_path(path, trusted=()):
        return {}["manifest"]

    monkeypatch.setattr(inspection, "inspect_path", inspect_path)


def test_an_unexpected_exception_is_one_line_and_a_saved_traceback(runner, cli, broken_inspect, tmp_path):
    result = runner.invoke(cli, ["inspect", str(tmp_path)])
    assert result.exit_code == UNEXPECTED_EXIT
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith("Error: unexpected KeyError in `modelpress inspect` at ")
    assert "'manifest'" in lines[0] and "run with -v to show it" in lines[0]
    saved = Path(re.search(r"the full traceback is in (\S+\.txt)", lines[0]).group(1))
    assert "Traceback (most recent call last)" in saved.read_text()
    saved.unlink()


def test_verbose_shows_the_traceback(runner, cli, broken_inspect, tmp_path):
    result = runner.invoke(cli, ["-v", "inspect", str(tmp_path)])
    assert result.exit_code == UNEXPECTED_EXIT
    assert "Traceback (most recent call last)" in result.output and "KeyError" in result.output
    Path(re.search(r"the full traceback is in (\S+\.txt)", result.output).group(1)).unlink()
