"""press shares its time budget across profiles: no profile ends with no trial while another had minutes."""

from __future__ import annotations

import json

import pytest

import modelpress

pytestmark = pytest.mark.integration


def test_every_profile_gets_a_share_of_the_time_budget(mlp_path, data_dir, tmp_path):
    """Pruning bisection alone could use any budget on the first profile; each profile is given an equal share of
    what is left when it starts, so the second one still gets its trials."""
    result = modelpress.press(mlp_path, ["raspberry-pi-4", "cortex-m"], data_dir / "data.npz", out=tmp_path / "out",
                              max_drop=1.0, epochs=1, families=["prune"], time_budget=30,
                              use_cache=False, progress=False)
    trials = result.search.trials
    for profile in ("raspberry-pi-4", "cortex-m"):
        assert any(t.profile == profile for t in trials), f"{profile} got no trial"
    doc = json.loads(result.press_json.read_text())
    slices = doc["time_slices_s"]
    assert set(slices) == {"raspberry-pi-4", "cortex-m"}
    assert slices["raspberry-pi-4"] == pytest.approx(15, abs=2)  # half of the budget, given at the start
    assert slices["cortex-m"] > 0  # whatever the first profile left: all of it goes to the last one
