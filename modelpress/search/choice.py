"""The choice per profile once its trials are in: the best passer for the objective, with latency ties settled
above the noise, and for a profile with none the closest candidate and what to change.

    best_trial(trials, "raspberry-pi-4", "latency")     # the fastest passer (ties broken by accuracy, then size)
    choose(search, profile)                              # result.chosen / closest / messages, each trial's why_not

Latencies are timed in rounds with their spread; before a latency choice the fastest passers are re-timed
interleaved (:func:`retime_contenders`), and latencies within their noise (or 5%) are a tie
(:func:`latency_tied`). Nothing here runs a trial: :mod:`modelpress.search.engine` does, then calls in here.
"""

from __future__ import annotations

import time
from typing import Any

from modelpress.device_profiles import DeviceProfile
from modelpress.search.trial import Trial

RETIME_WITHIN = 0.3      # passing candidates this much slower than the fastest are re-timed beside it
RETIME_AT_MOST = 6
#: latencies closer than this share of the faster one are a tie even when the spreads are narrower
TIE_FLOOR = 0.05


def latency_tied(trial: Trial, lead: Trial) -> bool:
    """Whether ``trial``'s latency is within the noise of ``lead``'s (their spreads overlap, or within 5%).
    Never when it is more than ``RETIME_WITHIN`` slower, however wide its spread: on a busy host an int16x8
    MobileNetV2 timed 2.0 ± 4.7 ms beside float32's 0.12 ms, and that spread made it a tie that won on accuracy.
    """
    a, b = trial.p50_ms or 0.0, lead.p50_ms or 0.0
    noise = (trial.p50_spread_ms or 0.0) + (lead.p50_spread_ms or 0.0)
    return a <= b * (1 + RETIME_WITHIN) and a - b <= max(noise, TIE_FLOOR * b)


def rank_key(trial: Trial, objective: str) -> tuple:
    size, latency = trial.gzip_bytes or 0, trial.p50_ms or 0.0
    if objective == "latency":
        return (latency, size, -(trial.accuracy or 0))
    return (size, latency, -(trial.accuracy or 0))


def fastest(trials: list[Trial]) -> Trial:
    """The fastest trial, where latencies that overlap within their noise count as a tie broken by accuracy,
    then size: a 2% faster model is not worth a point of accuracy when two timings of one model differ by 15%.
    """
    lead = min(trials, key=lambda t: t.p50_ms or 0.0)
    tied = [t for t in trials if latency_tied(t, lead)]
    return min(tied, key=lambda t: (-(t.accuracy or 0.0), t.gzip_bytes or 0, t.p50_ms or 0.0))


def int8_buys_speed(trials: list[Trial], profile: str) -> bool:
    """Whether the profile's post-training int8 timed faster, above the noise, than every other quantization that
    passed (the source converted as is: no training). False means int8 buys no speed on this host: its float
    fallback and quantization-aware training cannot make a faster model, and a latency search's time belongs to
    slimming. On an AVX2 x86 host without VNNI, XNNPACK's float32 kernels ran a small ResNet at 1.31 ms and its
    int8 at 1.61 ms (one thread).
    """
    plain = [t for t in trials if t.profile == profile and t.settings.family == "quantize" and t.p50_ms]
    int8 = next((t for t in plain if t.settings.quantization == "int8"), None)
    others = [t for t in plain if t.passed and t.settings.quantization != "int8"]
    if int8 is None or not others:
        return True  # nothing else runs: int8 (and what rescues it) is the only way to a package
    lead = min(others, key=lambda t: t.p50_ms or 0.0)
    return (int8.p50_ms or 0.0) < (lead.p50_ms or 0.0) and not latency_tied(lead, int8)


def faster_than_passers(trial: Trial, trials: list[Trial], profile: str) -> bool:
    """Whether ``trial`` timed faster, above the noise, than the fastest of ``profile``'s passers (True when none
    passed or it was not timed: nothing to beat)."""
    passers = [t for t in trials if t.profile == profile and t.passed and t.p50_ms]
    if not passers or trial.p50_ms is None:
        return True
    lead = fastest(passers)
    return trial.p50_ms < (lead.p50_ms or 0.0) and not latency_tied(lead, trial)


def best_trial(trials: list[Trial], profile: str, objective: str) -> Trial | None:
    """The passer ``objective`` prefers among ``profile``'s trials, or None."""
    passers = [t for t in trials if t.profile == profile and t.passed]
    if not passers:
        return None
    if objective == "latency":
        return fastest(passers)
    return min(passers, key=lambda t: rank_key(t, objective))


def retime_contenders(search: Any, profile: DeviceProfile) -> None:
    """Re-time the passing candidates within reach of the fastest, interleaved, before the latency choice."""
    from modelpress.search.measure import interleaved_latency

    passers = [t for t in search.result.trials if t.profile == profile.name and t.passed and t.p50_ms]
    if len(passers) < 2:
        return
    lead = min(t.p50_ms for t in passers)
    contenders = sorted((t for t in passers if t.p50_ms <= lead * (1 + RETIME_WITHIN)), key=lambda t: t.p50_ms)
    contenders = contenders[:RETIME_AT_MOST]
    blobs = [search.cache.artifact(t.artifact_key) for t in contenders]
    if len(contenders) < 2 or any(b is None for b in blobs):
        return
    started = time.perf_counter()
    search.progress.phase(f"re-timing the {len(contenders)} fastest passing candidates, interleaved")
    threads = search.measurer(profile).threads
    for trial, (p50, spread) in zip(contenders, interleaved_latency(blobs, search.data.x_val[:1], threads,
                                                                     runs=4 * search.options.latency_runs,
                                                                     rounds=8)):
        trial.p50_ms, trial.p50_spread_ms = p50, spread
    search.record_phase(f"{profile.name}: interleaved re-timing", time.perf_counter() - started)
    search.result.notes.append(
        f"{profile.name}: the {len(contenders)} fastest passing candidates re-timed interleaved (8 rounds): "
        + ", ".join(f"#{t.id} {t.p50_ms:.4f} ± {t.p50_spread_ms:.4f} ms" for t in contenders))


def choose(search: Any, profile: DeviceProfile) -> None:
    """Record ``profile``'s choice in ``search.result`` (chosen, closest, messages) and each trial's why_not."""
    name = profile.name
    if search.options.objective == "latency":
        retime_contenders(search, profile)
    chosen = best_trial(search.result.trials, name, search.options.objective)
    search.result.chosen[name] = chosen
    mine = [t for t in search.result.trials if t.profile == name]
    for trial in mine:
        trial.why_not = why_not(trial, chosen, search.options)
    if chosen is not None:
        search.result.closest[name] = chosen
        return
    measured = [t for t in mine if t.drop_points is not None]
    clean = [t for t in measured if not t.problems] or measured
    closest = min(clean, key=lambda t: (t.drop_points, t.gzip_bytes or 0)) if clean else None
    search.result.closest[name] = closest
    budget = f"a drop of at most {search.options.max_drop:g} point(s)"
    if closest is None:
        search.result.messages.append(f"{name}: no candidate could be built and measured ({len(mine)} tried); "
                                    "see the errors in press.json")
        return
    needed = closest.drop_points + (closest.margin_points or 0.0)
    z = search.result.reference.get("margin_z", 1.0)
    errors = ("one standard error" if z == 1.0 else
              f"{z:g} standard errors at --confidence {search.options.confidence:g}")
    fix = (f"loosen --max-drop to {needed:.2f} or more (its drop plus a margin of "
           f"{closest.margin_points or 0.0:.2f} pt, {errors})" if not closest.problems else
           f"it breaks the profile's constraints ({'; '.join(closest.problems)}); pick a larger device profile")
    stopped = "" if not search.result.stopped else " The search was interrupted; a rerun continues from the cache." \
        if search.result.stopped.startswith("interrupted") else \
        " The time budget ended the search early; a larger --time-budget may find more."
    search.result.messages.append(
        f"{name}: none of {len(mine)} candidates kept {budget} against the source's "
        f"{search.reference_accuracy:.2%} on {len(search.data.x_val)} held-out samples. The closest was "
        f"'{closest.describe()}' ({closest.accuracy:.2%}, drop {closest.drop_points:.2f} pt, "
        f"{(closest.gzip_bytes or 0) / 1024:.1f} KB gzip): {fix}.{stopped}")


def why_not(trial: Trial, chosen: Trial | None, options: Any) -> str:
    """Why ``trial`` lost to ``chosen`` (or 'chosen'), as press.json and the report say it."""
    if trial is chosen:
        return "chosen"
    if trial.error is not None:
        return trial.error
    if trial.problems:
        return "breaks the profile: " + "; ".join(trial.problems)
    if not trial.within_budget:
        return (f"over budget: drop {trial.drop_points:.2f} + margin {trial.margin_points or 0.0:.2f} pt > "
                f"{options.max_drop:g} pt")
    if chosen is None:
        return ""
    if options.objective == "latency":
        return f"slower: {trial.p50_ms:.3f} ms vs {chosen.p50_ms:.3f} ms p50"
    if (trial.gzip_bytes or 0) > (chosen.gzip_bytes or 0):
        return f"larger: {trial.gzip_bytes / 1024:.1f} KB vs {chosen.gzip_bytes / 1024:.1f} KB gzip"
    return f"same size, slower: {trial.p50_ms:.3f} ms vs {chosen.p50_ms:.3f} ms p50"
