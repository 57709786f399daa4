"""`modelpress deploy --max-drop`: press picks the package, deploy publishes it (or nothing)."""

from __future__ import annotations

import json

import pytest

import modelpress

pytestmark = pytest.mark.integration


def test_deploy_max_drop_publishes_press_choice(runner, cli, mlp_path, data_dir, tmp_path):
    repo = tmp_path / "repo"
    result = runner.invoke(cli, ["deploy", str(mlp_path), "-p", "cortex-m", "-d", str(data_dir / "data.npz"),
                                 "--max-drop", "1", "--time-budget", "1s", "-r", str(repo), "--name", "digits",
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    manifest = modelpress.read_manifest(repo / "digits" / "1")
    assert manifest.name == "digits" and manifest.version == "1"
    assert "chosen by modelpress press" in manifest.notes[0]
    reference = modelpress.evaluate(mlp_path, data_dir / "data.npz")["accuracy"]
    published = modelpress.evaluate(repo / "digits" / "1", data_dir / "data.npz")["accuracy"]
    assert (reference - published) * 100 <= 1.0
    row = json.loads((tmp_path / "run" / "deploy.json").read_text())["rows"][0]  # held-out x_val here
    assert row["accuracy"] == pytest.approx(published) and row["p50_ms"] > 0
    assert (tmp_path / "run" / "report" / "latency_vs_accuracy.png").stat().st_size > 1000


def test_deploy_max_drop_publishes_nothing_when_the_budget_is_not_met(runner, cli, mlp_path, data_dir, tmp_path):
    profile = tmp_path / "tiny.yaml"
    profile.write_text("name: tiny\nhardware: mcu\nquantization: int8\nmax_artifact_bytes: 1024\n")
    repo = tmp_path / "repo"
    result = runner.invoke(cli, ["deploy", str(mlp_path), "-p", str(profile), "-d", str(data_dir / "data.npz"),
                                 "--max-drop", "1", "--time-budget", "1s", "-r", str(repo)])
    assert result.exit_code == 11 and "nothing was published" in result.output and "closest" in result.output
    assert not any(p for p in repo.glob("*") if not p.name.startswith("."))


def test_deploy_max_drop_needs_data_and_no_recipe(runner, cli, mlp_path, data_dir, tmp_path):
    result = runner.invoke(cli, ["deploy", str(mlp_path), "-p", "cortex-m", "--max-drop", "1", "-r",
                                 str(tmp_path / "repo"), "--recipe", "prune-80", "-d", str(data_dir / "data.npz")])
    assert result.exit_code == 2 and "--max-drop" in result.output


def test_deploy_max_drop_with_a_profile_file_publishes_press_choice_finished_for_it(runner, cli, mlp_path, data_dir,
                                                                                   tmp_path):
    """A profile given as a YAML file is the profile press chose for (looked up by its name, not the path)."""
    pytest.importorskip("tflite_micro")
    profile = tmp_path / "my-m4.yaml"
    profile.write_text("name: my-m4\nhardware: mcu\nquantization: int8\n")
    repo = tmp_path / "repo"
    result = runner.invoke(cli, ["deploy", str(mlp_path), "-p", str(profile), "-d", str(data_dir / "data.npz"),
                                 "--max-drop", "5", "--time-budget", "1s", "-r", str(repo), "--name", "digits"])
    assert result.exit_code == 0, result.output
    manifest = modelpress.read_manifest(repo / "digits" / "1")
    assert manifest.profile["name"] == "my-m4" and "chosen by modelpress press" in manifest.notes[0]
    assert manifest.mcu["arena"]["source"] == "measured on TFLite Micro"
    assert "DIGITS_TENSOR_ARENA_SIZE" in (repo / "digits" / "1" / "model_data.h").read_text()


def test_deploy_passes_confidence_to_press_and_refuses_it_without_max_drop(runner, cli, mlp_path, data_dir,
                                                                            tmp_path):
    repo = tmp_path / "repo"
    alone = runner.invoke(cli, ["deploy", str(mlp_path), "-p", "cortex-m", "-d", str(data_dir / "data.npz"),
                                "--confidence", "0.95", "-r", str(repo)])
    assert alone.exit_code == 2 and "needs --max-drop" in alone.output and not repo.exists()
    result = runner.invoke(cli, ["deploy", str(mlp_path), "-p", "cortex-m", "-d", str(data_dir / "data.npz"),
                                 "--max-drop", "1", "--confidence", "0.95", "--time-budget", "1s", "-r", str(repo),
                                 "--name", "digits", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "(drop + 1.6449 standard error(s))" in result.output
    assert modelpress.read_manifest(repo / "digits" / "1").version == "1"
