"""A latency search on a host where int8 buys no speed goes to slimming, with the fastest passing quantization.

On an AVX2 x86 host without VNNI, XNNPACK ran a small ResNet's int8 at 1.61 ms and its float32 at 1.31 ms: there
the float fallback and quantization-aware training (which only rescue int8) cannot make a faster model, and
compressed candidates must not inherit int8 (or the smallest passer) when a float conversion is faster.
"""

from __future__ import annotations

import pytest

import modelpress
from modelpress.search.choice import fastest, int8_buys_speed
from modelpress.search.space import Settings
from modelpress.search.trial import Trial

RPI = "raspberry-pi-4"


def _quantized(quantization: str, p50: float, passed: bool = True, accuracy: float = 0.9,
               gzip: int = 10_000, spread: float = 0.01) -> Trial:
    return Trial(profile=RPI, settings=Settings("quantize", quantization=quantization), accuracy=accuracy,
                 gzip_bytes=gzip, p50_ms=p50, p50_spread_ms=spread, within_budget=passed,
                 problems=[] if passed else ["top-1 agreement with its Keras model is 91.70%, below the floor"])


def test_int8_slower_than_float32_buys_no_speed():
    trials = [_quantized("int8", 1.61), _quantized("float16", 1.35), _quantized("none", 1.31)]
    assert not int8_buys_speed(trials, RPI)


def test_int8_within_the_noise_of_float_buys_no_speed():
    """MobileNetV2 on that host: int8 0.110 ms, float32 0.118 ms, spreads overlapping."""
    trials = [_quantized("int8", 0.110, passed=False, spread=0.005), _quantized("none", 0.118, spread=0.006)]
    assert not int8_buys_speed(trials, RPI)


def test_int8_clearly_faster_buys_speed_even_when_it_misses():
    """A VNNI or Arm host: int8 twice as fast; when it misses the floor its fallback and QAT are worth trying."""
    trials = [_quantized("int8", 0.6, passed=False), _quantized("none", 1.3)]
    assert int8_buys_speed(trials, RPI)


def test_with_nothing_else_passing_int8_is_the_only_way():
    assert int8_buys_speed([_quantized("int8", 2.0, passed=False), _quantized("none", 1.0, passed=False)], RPI)
    assert int8_buys_speed([_quantized("none", 1.0)], RPI)  # no int8 trial (not searched)


def _host_where_int8_is_slow(monkeypatch) -> dict[str, int]:
    """Latency as the benchmark's AVX2 host gives it, fixed so that the strategy, not this machine's timing,
    is tested: int8 (and int4) kernels 1.25x float32's, float16 as float32, the slow ones slower. Everything else
    (conversion, fine-tuning, scoring, constraints) is real."""
    from modelpress.search.measure import Measurer
    from modelpress.tflite_graph import read_graph

    table = {"int8": 1.25, "int4": 1.6, "dynamic": 3.0, "int16x8": 8.0, "float16": 1.0, "none": 1.0}
    calls: dict[str, int] = {}

    def latency_ms(self, blob: bytes) -> tuple[float, float]:
        mode = read_graph(blob).quantization
        calls[mode] = calls.get(mode, 0) + 1
        return table[mode], 0.01

    def interleaved(blobs: list[bytes], sample, threads: int, runs: int = 0, rounds: int = 0) -> list:
        return [latency_ms(None, blob) for blob in blobs]  # the choice's re-timing: the same host, not this one

    monkeypatch.setattr(Measurer, "latency_ms", latency_ms)
    monkeypatch.setattr("modelpress.search.measure.interleaved_latency", interleaved)
    return calls


@pytest.mark.integration
def test_latency_search_skips_int8_rescue_and_slims_in_the_fastest_passing_quantization(
        loud_mlp_path, data_dir, tmp_path, monkeypatch):
    calls = _host_where_int8_is_slow(monkeypatch)
    result = modelpress.press(loud_mlp_path, RPI, data_dir / "data.npz", out=tmp_path / "out",
                              max_drop=3.0, objective="latency", epochs=1, workers=1, use_cache=False,
                              families=["quantize", "fallback", "qat", "slim"], progress=False, packages=False)
    trials = result.search.trials
    int8 = next(t for t in trials if t.settings.family == "quantize" and t.settings.quantization == "int8")
    assert not int8.passed and calls.get("int8")  # it missed, and it was timed as the slow host times it
    families = [t.settings.family for t in trials]
    # without the rule: the fallback's ranking and its trials, then two QAT lengths, all before any slimming
    assert "fallback" not in families and "qat" not in families
    assert not any("fallback ranking" in phase for phase in result.search.phases)
    slims = [t for t in trials if t.settings.family == "slim"]
    assert slims and families.index("slim") == len([f for f in families if f == "quantize"])
    # slimmed candidates convert as the fastest passer (float16 and float32 tie here; the tie goes to accuracy, then
    # size), not as the smallest passer (dynamic range int8, 3x slower on this host)
    passers = [t for t in trials if t.settings.family == "quantize" and t.passed]
    base = fastest(passers)
    assert base.settings.quantization in ("float16", "none")
    assert {t.settings.quantization for t in slims} == {base.settings.quantization}
    assert any("int8 timed no faster" in note for note in result.search.notes)


class _Table:
    """A search stand-in for the bisection alone: each (slim ratio, epochs) has a fixed validation drop, as the
    ResNet's latency search measured them (budget 1 pt; margins of ~0.36 pt folded into the drops). A slimmed
    candidate times 1 - ratio ms; ``passers`` are the profile's passing trials before slimming (none by default)."""

    def __init__(self, objective: str, drops: dict[tuple[float, int], float], passers: list[Trial] = (),
                 seconds_left: float = float("inf")):
        from types import SimpleNamespace

        from modelpress.search.engine import SearchOptions

        self.options = SearchOptions(max_drop=1.0, objective=objective)
        self.epochs, self.drops, self.asked = 3, drops, []
        self.executor = SimpleNamespace(workers=1)
        self.result = SimpleNamespace(trials=list(passers))
        self.seconds_left = seconds_left

    def epoch_cost(self) -> float:
        return 20.0  # seconds, MobileNetV2's epoch on 18k images

    def time_left(self) -> float:
        return self.seconds_left

    def trial(self, profile, measurer, settings: Settings) -> Trial:
        key = (settings.steps[0]["ratio"], settings.epochs)
        self.asked.append(key)
        drop = self.drops[key]
        trial = Trial(profile=RPI, settings=settings, accuracy=0.9 - drop / 100, drop_points=drop, margin_points=0.0,
                      within_budget=drop <= 1.0, p50_ms=round(1.0 - key[0], 4), p50_spread_ms=0.001)
        self.result.trials.append(trial)
        return trial


def _slim_bisection(objective: str, drops: dict, passers: list[Trial] = (),
                    seconds_left: float = float("inf")) -> tuple[float | None, list]:
    from modelpress.device_profiles import load_profile
    from modelpress.search import space
    from modelpress.search.strategy import Strategy

    search = _Table(objective, drops, passers, seconds_left)
    strategy = Strategy(search, load_profile(RPI), measurer=None)
    strategy.quant = "none"
    best = strategy.bisect(lambda r, e: Settings("slim", space.slim_steps(r), e or 3, "none"), 0.1, 0.9, 0.5, 0.1)
    return best, search.asked


@pytest.mark.parametrize("objective, order", [
    # latency: slim 40% missed narrowly; its longer fine-tuning comes at once, before the finer step (35%); slim 50%
    # recovered 0.5 pt from 3 to 6 epochs, enough that 12 might bring it in
    ("latency", [(0.5, 3), (0.5, 6), (0.5, 12), (0.3, 3), (0.4, 3), (0.4, 6)]),
    # size: the sequential order (finer steps first, one retry of the lowest failure above the best at the end)
    ("size", [(0.5, 3), (0.3, 3), (0.4, 3), (0.35, 3), (0.4, 6)]),
])
def test_a_latency_bisection_retries_a_narrow_miss_before_finer_steps(objective, order):
    drops = {(0.5, 3): 1.9, (0.5, 6): 1.4, (0.5, 12): 1.2, (0.3, 3): 0.8, (0.4, 3): 1.01, (0.4, 6): 0.7,
             (0.35, 3): 0.9}
    best, asked = _slim_bisection(objective, drops)
    assert asked == order
    assert best == 0.4


def test_a_fast_point_that_misses_widely_gets_its_fine_tuning_length_searched_and_kept():
    """MobileNetV2's shape: distilled slim 50% 4.5 pt over at 3 epochs (not narrow, not hopeless), 1.9 at 6, within
    the budget at 12; the points above it then fine-tune 12 epochs too. Before the rule the miss at 3 epochs sent the
    bisection down to slim 30%, 20%, ... at 3 epochs, and the 1.9x point was never trained longer."""
    drops = {(0.5, 3): 4.5, (0.5, 6): 1.9, (0.5, 12): 0.9, (0.7, 12): 3.0, (0.6, 12): 1.5}
    best, asked = _slim_bisection("latency", drops)
    assert asked == [(0.5, 3), (0.5, 6), (0.5, 12), (0.7, 12), (0.6, 12)]
    assert best == 0.5


def test_with_time_for_one_rung_only_the_ladder_goes_straight_to_its_longest():
    """300 s left at 20 s an epoch: 6 + 12 epochs (360 s) do not fit, 12 do; 6 would fail where 12 fails."""
    drops = {(0.5, 3): 4.5, (0.5, 12): 0.9, (0.7, 12): 3.0, (0.6, 12): 1.5}
    assert _slim_bisection("latency", drops, seconds_left=300.0) == (0.5, [(0.5, 3), (0.5, 12), (0.7, 12),
                                                                           (0.6, 12)])


def test_the_length_ladder_stops_where_a_doubling_recovers_too_little():
    # 3 -> 6 epochs recovered 0.5 of 5.0 pt: 12 would not come within 2 pt even at that gain, so no 12-epoch trial
    drops = {(0.5, 3): 5.0, (0.5, 6): 4.5, (0.3, 3): 0.8, (0.4, 3): 2.5, (0.4, 6): 0.9}
    best, asked = _slim_bisection("latency", drops)
    assert asked == [(0.5, 3), (0.5, 6), (0.3, 3), (0.4, 3), (0.4, 6)]
    assert best == 0.4


def test_no_longer_fine_tuning_for_a_point_no_faster_than_a_passer():
    """A passer already times 0.45 ms: slim 50% (0.5 ms) cannot win however long it trains; nor can a hopeless miss
    (8 pt over at 3 epochs, as undistilled slim 50% was)."""
    drops = {(0.5, 3): 4.5, (0.3, 3): 0.8, (0.4, 3): 2.5, (0.35, 3): 3.0}
    passer = _quantized("none", 0.45, spread=0.001)
    best, asked = _slim_bisection("latency", drops, [passer])
    assert asked == [(0.5, 3), (0.3, 3), (0.4, 3), (0.35, 3)]
    assert best == 0.3
    drops = {(0.5, 3): 8.0, (0.3, 3): 0.8, (0.4, 3): 0.9}
    assert _slim_bisection("latency", drops, seconds_left=200.0) == (0.4, [(0.5, 3), (0.3, 3), (0.4, 3)])


def test_a_latency_search_retries_no_narrow_miss_that_cannot_beat_a_passer():
    """A passer already times 0.1 ms, faster than any slimming level here: slim 40% missing by 1.2 pt is not worth
    a longer fine-tuning (it retried MobileNetV2's slim 75% at 6 epochs after it had missed at 12)."""
    drops = {(0.5, 3): 1.5, (0.3, 3): 0.8, (0.4, 3): 1.2, (0.35, 3): 0.9, (0.4, 6): 0.5}
    passer = _quantized("none", 0.1, spread=0.001)
    assert _slim_bisection("latency", drops, [passer]) == (0.35, [(0.5, 3), (0.3, 3), (0.4, 3), (0.35, 3)])
    assert _slim_bisection("size", drops) == (0.4, [(0.5, 3), (0.3, 3), (0.4, 3), (0.35, 3), (0.4, 6)])  # one retry


def test_time_left_after_the_bisection_goes_to_the_lowest_miss_trained_longer():
    """MobileNetV2's second run: slim 50% lost 9.3 pt at 3 distilled epochs (hopeless at that length, so not trained
    longer before the finer steps), slim 30% and 40% passed at 6, and the search ended with 10 of its 20 minutes
    unused at 1.40x; in the first run the same point passed at 12 epochs. With the time left, slim 50% gets the
    ladder's longest rung, passes, and the bisection goes on above it at 12 epochs."""
    drops = {(0.5, 3): 9.3, (0.3, 3): 3.75, (0.3, 6): 0.5, (0.4, 6): 0.6, (0.5, 12): 0.5, (0.7, 12): 0.8,
             (0.8, 12): 3.0, (0.75, 12): 1.5}
    best, asked = _slim_bisection("latency", drops)
    assert asked == [(0.5, 3), (0.3, 3), (0.3, 6), (0.4, 6), (0.5, 12), (0.7, 12), (0.8, 12), (0.75, 12)]
    assert best == 0.7
    # 200 s left at 20 s an epoch do not pay for 12 epochs: the search ends where it closed
    assert _slim_bisection("latency", drops, seconds_left=200.0) == (0.4, [(0.5, 3), (0.3, 3), (0.3, 6), (0.4, 6)])
    # a miss that stays hopeless when trained longer leaves the best where it was
    drops[(0.5, 12)] = 7.0
    assert _slim_bisection("latency", drops) == (0.4, [(0.5, 3), (0.3, 3), (0.3, 6), (0.4, 6), (0.5, 12)])
    # a size search has no use for the time: its bisection is the sequential one
    assert _slim_bisection("size", {(0.5, 3): 9.3, (0.3, 3): 0.8, (0.4, 3): 0.9}) == (0.4, [(0.5, 3), (0.3, 3),
                                                                                          (0.4, 3)])


def test_time_left_skips_a_lowest_miss_that_cannot_win_for_one_above_it_that_can():
    """MobileNetV2 at --confidence 0.95 on a busy host: slim 30% and 20% timed within the noise of float32 (a passer),
    slim 50% lost 9.3 pt at 3 epochs but ran 1.8x faster; the bisection closed on slim 15% with 10 of 20 minutes
    unused, because the time left went only to the lowest miss (20%), which could not win. Now it goes to slim 50%,
    the lowest miss that could."""
    drops = {(0.5, 3): 9.3, (0.3, 3): 3.75, (0.2, 3): 1.58, (0.15, 3): 0.5, (0.5, 6): 4.0, (0.5, 12): 0.5,
             (0.7, 12): 0.8, (0.8, 12): 3.0, (0.75, 12): 1.5}
    passer = _quantized("none", 0.72, spread=0.001)   # slim 30% (0.70 ms) ties with it, 20% (0.80) is slower
    best, asked = _slim_bisection("latency", drops, [passer])
    assert asked == [(0.5, 3), (0.3, 3), (0.2, 3), (0.15, 3), (0.5, 6), (0.5, 12), (0.7, 12), (0.8, 12), (0.75, 12)]
    assert best == 0.7


@pytest.mark.integration
def test_a_latency_search_spends_nothing_on_families_that_keep_every_channel(mlp_path, data_dir, tmp_path,
                                                                               monkeypatch):
    """Pruning, L0 gates, clustering and 2:4 sparsity leave every channel in place, and TFLite runs their zeros,
    shared values and int4 codes with the dense kernels (MobileNetV2's prune 90% + int4 trial took 191 s of its 600 s
    latency budget to time 0.245 ms against float32's 0.112). Slimming, the one family that changes the computation,
    fine-tunes distilled from the source."""
    from modelpress.search.strategy import SAME_SPEED

    _host_where_int8_is_slow(monkeypatch)
    result = modelpress.press(mlp_path, RPI, data_dir / "data.npz", out=tmp_path / "all", max_drop=3.0,
                              objective="latency", epochs=1, workers=1, use_cache=False, progress=False,
                              packages=False)
    families = {t.settings.family for t in result.search.trials}
    assert "slim" in families and not families & set(SAME_SPEED)
    assert any("skipped for latency" in note for note in result.search.notes)
    slims = [t for t in result.search.trials if t.settings.family == "slim"]
    assert all(t.settings.distill and "distilled" in t.describe() for t in slims)
    # named in --families, they run all the same
    named = modelpress.press(mlp_path, RPI, data_dir / "data.npz", out=tmp_path / "named", max_drop=3.0,
                             objective="latency", epochs=1, workers=1, use_cache=False, progress=False,
                             packages=False, families=["quantize", "prune"])
    assert "prune" in {t.settings.family for t in named.search.trials}
    assert not any(t.settings.distill for t in named.search.trials)


@pytest.mark.integration
def test_a_latency_search_scores_no_quantization_slower_than_float32(mlp_path, data_dir, tmp_path, monkeypatch):
    """float32 is timed first; every other quantization is timed before it is scored, and one slower than float32
    even at its fastest is not scored (a latency search cannot choose it: scoring the ResNet's int16x8 on 6,000
    samples took 234 s of a 10-minute budget). A size search scores them all."""
    from modelpress.search.measure import Measurer
    from modelpress.tflite_graph import read_graph

    _host_where_int8_is_slow(monkeypatch)
    scored: list[str] = []
    outputs = Measurer.outputs

    def counting(self, blob: bytes, x):
        scored.append(read_graph(blob).quantization)
        return outputs(self, blob, x)

    monkeypatch.setattr(Measurer, "outputs", counting)
    result = modelpress.press(mlp_path, RPI, data_dir / "data.npz", out=tmp_path / "lat", max_drop=3.0,
                              objective="latency", workers=1, cache=tmp_path / "cache", progress=False,
                              packages=False, families=["quantize"])
    quantized = [t for t in result.search.trials if t.settings.family == "quantize"]
    assert quantized[0].settings.quantization == "none"
    slow = {t.settings.quantization: t for t in quantized if t.settings.quantization in ("int8", "int4", "dynamic",
                                                                                         "int16x8")}
    assert slow and all(t.accuracy is None and t.error.startswith("not scored") and t.p50_ms for t in slow.values())
    assert not set(scored) & set(slow) and {"none", "float16"} <= set(scored)
    assert result.search.chosen["raspberry-pi-4"].settings.quantization in ("none", "float16")
    scored.clear()
    sized = modelpress.press(mlp_path, RPI, data_dir / "data.npz", out=tmp_path / "size", max_drop=3.0,
                             objective="size", workers=1, cache=tmp_path / "cache", progress=False, packages=False,
                             families=["quantize"])
    # the size search scores every quantization: none of the latency search's unscored trials came from the cache
    assert set(slow) <= set(scored) and all(t.accuracy is not None for t in sized.search.trials)
