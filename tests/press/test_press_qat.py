"""press tries quantization-aware training where int8 post-training quantization misses on an int8-only device."""

from __future__ import annotations

import pytest

import modelpress

pytestmark = pytest.mark.integration


def test_int8_missing_on_cortex_m_leads_to_qat_trials_of_two_lengths(loud_mlp_path, data_dir, tmp_path):
    """The loud MLP (conftest): one fc1 unit 1000x louder, so int8's activation scale for fc1 wipes out the rest."""
    result = modelpress.press(loud_mlp_path, "cortex-m", data_dir / "data.npz", out=tmp_path / "out",
                              max_drop=1.0, epochs=1, families=["qat"], use_cache=False, progress=False)
    trials = result.search.trials
    int8 = trials[0]
    assert int8.settings.family == "quantize" and not int8.passed
    qat = [t for t in trials if t.settings.family == "qat"]
    assert [t.settings.epochs for t in qat] == [1, 2]  # its length searched: the base, then twice as long
    assert all(t.settings.steps == ({"type": "qat"},) and t.settings.quantization == "int8" for t in qat)
    assert all(t.accuracy is not None and t.error is None for t in qat)  # trained, converted and measured
    # weight fake-quantization cannot repair an activation range that one unit blew up: nothing fits, and press
    # says so instead of passing something
    assert not result.met and result.messages

