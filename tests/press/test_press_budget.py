"""press shares its time budget across profiles: no profile ends with no trial while another had minutes."""

from __future__ import annotations

import json
import time

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


def test_a_profile_after_an_overrun_still_gets_its_post_training_int8(mlp_path, data_dir, tmp_path):
    """A 1-second budget is spent by the first profile's first conversion: the second profile's share is
    nothing, yet it still gets its post-training int8 candidate (the floor), and nothing that trains runs."""
    result = modelpress.press(mlp_path, ["raspberry-pi-4", "cortex-m"], data_dir / "data.npz", out=tmp_path / "out",
                              max_drop=5.0, epochs=1, families=["prune"], time_budget=1,
                              use_cache=False, progress=False)
    trials = result.search.trials
    for profile in ("raspberry-pi-4", "cortex-m"):
        assert [t.settings.quantization for t in trials if t.profile == profile and t.settings.family == "quantize"
                and t.settings.quantization == "int8"] == ["int8"], profile
    assert not [t for t in trials if t.settings.compressed]
    assert result.chosen["cortex-m"] is not None and result.packages["cortex-m"].is_dir()
    assert "time budget" in result.search.stopped


def test_a_fine_tuning_is_priced_before_the_search_has_timed_one(mlp_path, data_dir, monkeypatch):
    """The first fine-tuning is not started blind: until one is timed, under a time budget an epoch is priced
    once from a few real training steps of a copy of the source, so a first trial that cannot fit its share is
    not started; without a budget nothing is timed, and a pricing that fails falls back to inference time."""
    import numpy as np

    from modelpress.compressor.data import load_data
    from modelpress.model_io import load_model
    from modelpress.search import pricing
    from modelpress.search.engine import TRAINING_COST_FACTOR, Search, SearchOptions
    from modelpress.search.space import Settings

    source = load_model(mlp_path)
    data = load_data(data_dir / "data.npz")
    weights = [w.copy() for w in source.model.get_weights()]

    def search_with(budget):
        return Search(source.model, source.flavor, data, [modelpress.load_profile("cortex-m")],
                      SearchOptions(time_budget=budget, progress=False))

    search = search_with(10**7)
    assert search.epoch_seconds is None
    per_epoch = search.epoch_cost()
    assert per_epoch > 0 and search.result.priced_epoch_seconds == pytest.approx(per_epoch, abs=0.01)
    spent = search.result.phases["pricing fine-tuning"]
    assert search.epoch_cost() == per_epoch and search.result.phases["pricing fine-tuning"] == spent  # timed once
    assert all(np.array_equal(a, b) for a, b in zip(weights, source.model.get_weights()))  # a copy trained
    roomy = search_with(10**7)  # a trial far within the budget even at 4x its inference guess: nothing timed
    roomy.start = time.perf_counter()
    assert roomy.affordable(Settings("prune", ({"type": "prune", "sparsity": 0.5},), epochs=1))
    assert roomy.priced_epoch is None and "pricing fine-tuning" not in roomy.result.phases
    tight = search_with(10**7)  # one whose guess is close to the time left: timed before it is started
    tight.start = time.perf_counter()
    tight.slice_end = tight.start + 2 * tight.epoch_cost(price=False)
    tight.affordable(Settings("prune", ({"type": "prune", "sparsity": 0.5},), epochs=1))
    assert tight.priced_epoch is not None and tight.result.phases["pricing fine-tuning"] > 0
    search.priced_epoch = 3600.0  # a slow model: an epoch priced at an hour, so the check below has room to spare
    search.start = time.perf_counter()
    search.slice_end = search.start + 3600.0 * 1.5  # room for one epoch, not for two
    prune = Settings("prune", ({"type": "prune", "sparsity": 0.5},), epochs=2)
    assert not search.affordable(prune) and search.result.stopped
    assert search.affordable(Settings("prune", ({"type": "prune", "sparsity": 0.5},), epochs=1))

    unbudgeted = search_with(None)
    guess = TRAINING_COST_FACTOR * unbudgeted.inference_seconds * len(data.x_train)
    assert unbudgeted.epoch_cost() == pytest.approx(guess)
    assert "pricing fine-tuning" not in unbudgeted.result.phases and unbudgeted.priced_epoch is None

    def broken(*args, **kwargs):
        raise RuntimeError("no training here")

    monkeypatch.setattr(pricing, "epoch_seconds", broken)
    failed = search_with(10**7)
    assert failed.epoch_cost() == pytest.approx(TRAINING_COST_FACTOR * failed.inference_seconds * len(data.x_train))
    assert any("timing training steps failed (RuntimeError: no training here)" in n for n in failed.result.notes)
