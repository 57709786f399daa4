"""press's latency choice stays above the noise: overlapping latencies tie, and ties go to accuracy, then size."""

from __future__ import annotations

import json

import pytest

import modelpress
from modelpress.search.choice import latency_tied
from modelpress.search.engine import Search
from modelpress.search.space import Settings
from modelpress.search.trial import Trial


def _trial(id_: int, p50: float, spread: float, accuracy: float, gzip: int) -> Trial:
    return Trial(profile="raspberry-pi-4", settings=Settings("slim", label=f"#{id_}"), accuracy=accuracy,
                 gzip_bytes=gzip, p50_ms=p50, p50_spread_ms=spread, id=id_, within_budget=True)


def test_a_two_percent_faster_candidate_within_the_noise_does_not_buy_a_point_of_accuracy():
    """The LeNet-5 case: slim 70% at 0.02153 ms / 88.85% against slim 50% at 0.02195 ms / 89.80%."""
    slim70 = _trial(1, 0.02153, 0.0006, 0.8885, 30_000)
    slim50 = _trial(2, 0.02195, 0.0005, 0.8980, 40_000)
    assert latency_tied(slim50, slim70)
    assert Search.fastest([slim70, slim50]) is slim50


def test_a_clearly_faster_candidate_still_wins():
    fast = _trial(1, 0.015, 0.0005, 0.880, 30_000)
    slow = _trial(2, 0.022, 0.0005, 0.898, 40_000)
    assert not latency_tied(slow, fast)
    assert Search.fastest([slow, fast]) is fast


def test_a_wide_spread_does_not_tie_a_candidate_many_times_slower():
    """The MobileNetV2 case on a busy host: int16x8 at 2.0 +- 4.7 ms beside float32 at 0.12 +- 0.016 ms."""
    float32 = _trial(1, 0.1198, 0.0162, 0.664, 1_490_000)
    int16x8 = _trial(2, 1.9962, 4.7333, 0.6703, 520_000)
    assert not latency_tied(int16x8, float32)
    assert Search.fastest([int16x8, float32]) is float32


def test_ties_in_latency_and_accuracy_go_to_the_smaller_file():
    a = _trial(1, 0.0200, 0.0001, 0.9, 50_000)
    b = _trial(2, 0.0203, 0.0001, 0.9, 20_000)  # 1.5% slower, inside the 5% floor
    assert Search.fastest([a, b]) is b


@pytest.mark.integration
def test_latency_press_retimes_contenders_interleaved_and_records_the_spread(mlp_path, data_dir, tmp_path):
    result = modelpress.press(mlp_path, "raspberry-pi-4", data_dir / "data.npz", out=tmp_path / "out",
                              max_drop=2.0, objective="latency", families=["quantize"], use_cache=False,
                              progress=False)
    trials = [t for t in result.search.trials if t.passed]
    assert len(trials) >= 2 and all(t.p50_ms > 0 and t.p50_spread_ms >= 0 for t in trials)
    assert any("re-timed interleaved" in note for note in result.search.notes)
    chosen = result.chosen["raspberry-pi-4"]
    assert chosen is Search.fastest(trials)  # the rule above, applied to what was measured
    doc = json.loads(result.press_json.read_text())
    assert all("p50_spread_ms" in t for t in doc["trials"])
    assert any(name.endswith("interleaved re-timing") for name in doc["phases_s"])
