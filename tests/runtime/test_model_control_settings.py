"""Settings of model control and the memory budget, and the one-model layouts KServe mounts: parsed,
checked, and refused with a message that says what to write instead."""

from __future__ import annotations

import shutil

import pytest

from modelpress.errors import UsageError
from modelpress.runtime.config import RuntimeConfig
from modelpress.runtime.memory import machine_memory, parse_memory
from modelpress.runtime.repository import scan_repository, single_model
from tests.runtime.conftest import PACKAGES


@pytest.mark.parametrize("text,expected", [("512MiB", 512 * 2**20), ("2G", 2 * 10**9), ("1000000", 10**6),
                                           ("1.5GiB", int(1.5 * 2**30)), ("64 mb", 64 * 10**6)])
def test_memory_sizes(text, expected):
    assert parse_memory(text) == expected


def test_memory_shares_are_of_the_machine_or_container():
    assert parse_memory("50%") == parse_memory("0.5") == int(machine_memory() * 0.5)
    assert 0 < machine_memory()


@pytest.mark.parametrize("text", ["lots", "0%", "150%", "-1", "12 parsecs", "0"])
def test_bad_memory_settings_say_what_to_write(text):
    with pytest.raises(UsageError, match=r"max_memory .*(512MiB|share above 0%)"):
        parse_memory(text)


def test_model_control_settings_are_checked(monkeypatch):
    monkeypatch.setenv("MODELPRESS_LOAD_MODELS", "digits,int8")
    config = RuntimeConfig.load(None, repository="r", model_control="explicit", max_memory="75%")
    assert config.load_models == ["digits", "int8"] and config.model_control == "explicit"
    with pytest.raises(UsageError, match="must be poll .* or explicit"):
        RuntimeConfig.load(None, repository="r", model_control="lazy")
    with pytest.raises(UsageError, match="is not a valid model name"):
        RuntimeConfig.load(None, repository="r", model_name="../etc")


def test_serve_refuses_a_bad_budget_cleanly(runner, cli, repo):
    result = runner.invoke(cli, ["serve", str(repo), "--port", "0", "--max-memory", "lots"])
    assert result.exit_code == 2 and "Traceback" not in result.output  # a usage error
    assert "max_memory 'lots' is not a size" in result.output


def test_one_model_layouts_are_served_under_a_name(tmp_path):
    package = tmp_path / "package"
    shutil.copytree(PACKAGES / "int8", package)
    assert single_model(package) == "package"
    assert {n: sorted(e.versions) for n, e in scan_repository(package, "digits").items()} == {"digits": [1]}
    assert list(scan_repository(package)) == ["package"]  # no name given: the folder's

    versions = tmp_path / "versions"
    shutil.copytree(PACKAGES / "int8", versions / "3")
    shutil.copytree(PACKAGES / "float32", versions / "4")
    assert single_model(versions) == "versions"
    assert {n: sorted(e.versions) for n, e in scan_repository(versions, "digits").items()} == {"digits": [3, 4]}

    repository = tmp_path / "repository"
    shutil.copytree(PACKAGES / "int8", repository / "int8" / "1")
    assert single_model(repository) is None
    assert list(scan_repository(repository, "ignored")) == ["int8"]  # a repository keeps its own names
