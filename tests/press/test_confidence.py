"""``--confidence``: how many standard errors of its measured drop a candidate must leave inside the budget."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from modelpress.errors import UsageError
from modelpress.search.trial import drop_margin, margin_z


def test_the_margin_is_z_standard_errors_of_the_paired_drop():
    assert margin_z() == 1.0 and margin_z(0.5) == 0.0
    assert margin_z(0.95) == pytest.approx(1.6449, abs=1e-4) and margin_z(0.99) == pytest.approx(2.3263, abs=1e-4)
    one = drop_margin(6000, worse=150, better=90)
    assert drop_margin(6000, worse=150, better=90, z=margin_z(0.95)) == pytest.approx(1.6449 * one, abs=1e-3)


@pytest.mark.parametrize("confidence", [0.3, 1.0, 95, "high"])
def test_a_confidence_that_is_no_probability_is_refused_with_the_fix(confidence):
    from modelpress.search import SearchOptions

    with pytest.raises(UsageError, match="probability from 0.5 to 0.999"):
        SearchOptions(confidence=confidence)


def test_a_candidate_inside_one_standard_error_is_refused_at_95_percent(mlp_path, data_dir, tmp_path):
    """The same heavily pruned copy (one fine-tuning, then from the cache) against a budget between its drop plus
    one standard error and its drop plus 1.645: it passes at the default and is refused when 0.95 is asked for."""
    from modelpress.compressor.data import load_data
    from modelpress.device_profiles import load_profile
    from modelpress.model_io import load_model
    from modelpress.search import Search, SearchOptions, Settings
    from modelpress.search.cache import TrialCache
    from modelpress.search.space import prune_steps

    model, data = load_model(mlp_path).model, load_data(data_dir / "data.npz")
    profile = load_profile("cortex-m")
    settings = Settings("prune", prune_steps(0.97), epochs=1)

    def trial(max_drop: float, confidence: float | None):
        options = SearchOptions(max_drop=max_drop, progress=False, confidence=confidence)
        search = Search(model, "keras3", data, [profile], options, TrialCache(tmp_path / "cache"))
        return search.trial(profile, search.measurer(profile), settings), search

    one, _ = trial(100.0, None)
    assert one.drop_points > 0 and one.margin_points > 0
    budget = one.drop_points + 1.3 * one.margin_points
    assert trial(budget, None)[0].passed
    sure, search = trial(budget, 0.95)
    assert sure.drop_points == one.drop_points
    assert sure.margin_points == pytest.approx(1.6449 * one.margin_points, abs=2e-3)
    assert not sure.passed and sure.verdict == "over budget"
    reference = search.result.reference
    assert reference["margin_z"] == pytest.approx(1.6449) and reference["confidence"] == 0.95
    from modelpress.search.choice import choose

    choose(search, profile)
    assert search.result.chosen["cortex-m"] is None
    assert "1.6449 standard errors at --confidence 0.95" in search.result.messages[0]
    assert f"loosen --max-drop to {sure.drop_points + sure.margin_points:.2f}" in search.result.messages[0]


def test_the_cli_takes_confidence_records_it_and_names_it_in_the_fix(loud_mlp_path, data_dir, tmp_path):
    """Through the CLI, on the model whose int8 misses: press.json keeps the confidence and every trial's margin
    at z = 2.326; the progress line says what a candidate must leave inside the budget."""
    from modelpress.cli.main import cli

    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["press", str(loud_mlp_path), "-p", "cortex-m", "-d", str(data_dir / "data.npz"),
                                      "--max-drop", "1", "--confidence", "0.99", "--only", "quantize", "--no-cache",
                                      "-o", str(out)])
    assert result.exit_code not in (0, 1), result.output          # a budget not met: a usage-level exit, no crash
    assert "budget 1 pt (drop + 2.3263 standard error(s))" in result.output and "Traceback" not in result.output
    doc = json.loads((out / "press.json").read_text())
    assert doc["options"]["confidence"] == 0.99 and doc["reference"]["margin_z"] == pytest.approx(2.3263)
    n = doc["reference"]["samples"]
    for row in doc["trials"]:
        if row["worse"] is None:
            continue
        var = (row["worse"] + row["better"]) / n - ((row["worse"] - row["better"]) / n) ** 2
        assert row["margin_points"] == pytest.approx(2.3263 * 100 * np.sqrt(var / n), abs=1e-3)


def test_the_cli_refuses_a_confidence_out_of_range(mlp_path, data_dir, tmp_path):
    from modelpress.cli.main import cli

    result = CliRunner().invoke(cli, ["press", str(mlp_path), "-p", "cortex-m", "-d", str(data_dir / "data.npz"),
                                      "--confidence", "1.5", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "--confidence" in result.output and "0.5<=x<=0.999" in result.output
    assert not (tmp_path / "out").exists()

