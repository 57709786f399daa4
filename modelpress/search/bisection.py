"""Which points a gallop or a bisection visits next, and which it may batch ahead of time.

With more than one worker (local processes or a Ray cluster), the strategy submits what can run at once: every
quantization of step 1 together; in a gallop the next w points (1, 2, 4, ...); in a bisection k-ary points taken
from the sequential bisection tree below the point it needs next (the point, then both halves' midpoints, ...:
with 3 workers an interval's quartiles), so that the sequential path through them is already measured and the
search takes exactly the sequential decisions; the points off that path are measured candidates like any
other, judged by the same choice rule. Free slots in a batch carry candidates of independent branches that the
sequential search runs later whatever happens before (2:4 sparsity, the first slimming point). One worker runs
exactly the sequential order, in the driver.

    gallop_points(1, 10)                  # [1, 2, 4, 8, 10]
    tree_points(0.5, 0.0, 1.0, 2, 0.1)    # [0.75, 0.25]
    within_reach(4.2, 1.9, 2.0)           # True: one more doubling at the same gain would come within 2 points

A latency search also searches a fast point's fine-tuning length (``LENGTHS``: twice, then four times the base
epochs), climbing while :func:`within_reach` says the next rung can still get there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

LENGTHS = (2, 4)  # a fast slimming point's fine-tuning, in multiples of the base epochs, tried in this order


def within_reach(shorter_drop: float | None, longer_drop: float | None, bound: float) -> bool:
    """Whether doubling the fine-tuning once more may bring a candidate within ``bound`` points: the longer run
    recovered something, and recovering as much again would end within the bound (gains shrink as training
    grows, so this is the optimistic projection: it stops a ladder only where even that would not do)."""
    if shorter_drop is None or longer_drop is None or longer_drop >= shorter_drop:
        return False
    return longer_drop - (shorter_drop - longer_drop) <= bound


def lengthen(run: Callable[[int], Any], trial: Any, current: int, base: int, near: float,
             affords: Callable[[int], bool] = lambda epochs: True) -> tuple[Any, int]:
    """A missed candidate's fine-tuning length searched: ``run(epochs)`` at ``LENGTHS`` times ``base`` (those over
    ``current``) until one passes, the budget ends (``run`` gives None: returns None), or a doubling recovers too
    little for the next to come within ``near`` points (:func:`within_reach`). Where the time left cannot pay for
    the whole ladder (``affords(epochs)``: that many epochs of fine-tuning fit) but can for its longest rung, only
    that one runs: the shorter rungs would fail where it fails. Returns the last trial and its epochs::

        lengthen(lambda e: search.trial(make(0.5, e)), failed_at_3, 3, 3, 2.0)     # (trial at 6 or 12 ep, 6 or 12)
    """
    rungs = [factor * base for factor in LENGTHS if factor * base > current]
    if len(rungs) > 1 and not affords(sum(rungs)) and affords(rungs[-1]):
        rungs = rungs[-1:]
    shorter, epochs = None, current
    for longer in rungs:
        if shorter is not None and not within_reach(shorter.drop_points, trial.drop_points, near):
            break
        result = run(longer)
        if result is None:
            return None, epochs
        shorter, trial, epochs = trial, result, longer
        if trial.passed:
            break
    return trial, epochs


def gallop_points(k: int, n: int) -> list[int]:
    """The galloping sequence from ``k`` on: ``gallop_points(1, 10)`` is [1, 2, 4, 8, 10]."""
    points = [k]
    while points[-1] < n:
        points.append(min(2 * points[-1], n))
    return points


def gallop(probe: Callable[[Any, Callable[[], list]], Any], make: Callable[[int], Any], n: int,
           width: int) -> int | None:
    """The smallest k in [1, n] whose candidate passes, assuming more k only helps: 1, 2, 4, ... until one
    passes, then bisection between the last failure and it (log2(n) trials, not n). ``probe(settings, ahead)``
    runs the candidate (None: out of time), ``ahead()`` what may ride along on ``width - 1`` free workers."""
    failed, k, passed = 0, 1, None
    while k <= n:
        trial = probe(make(k), lambda k=k: [make(j) for j in gallop_points(k, n)[1:]])
        if trial is None:
            return None  # out of time
        if trial.passed:
            passed = k
            break
        failed = k
        if k == n:
            return None
        k = min(2 * k, n)
    if passed is None:
        return None
    while passed - failed > 1:
        mid = (failed + passed) // 2
        trial = probe(make(mid), lambda mid=mid, lo=failed, hi=passed: [
            make(int(j)) for j in tree_points(mid, lo, hi, width - 1, 1.0, discrete=True)])
        if trial is None:
            break
        if trial.passed:
            passed = mid
        else:
            failed = mid
    return passed


def _next_point(lo: float, hi: float, resolution: float, discrete: bool) -> float | None:
    """Where :meth:`modelpress.search.strategy.Strategy.bisect` goes within (lo, hi), or None where it stops."""
    if (hi - lo <= 1) if discrete else (hi - lo < resolution):
        return None
    x = (lo + hi) // 2 if discrete else round((lo + hi) / 2, 4)
    return x + 1 if discrete and x == lo else x


def tree_points(x: float, lo: float, hi: float, count: int, resolution: float, discrete: bool = False) -> list:
    """Up to ``count`` points the bisection may visit after ``x`` (interval lo..hi), nearest first: both
    outcomes' next points, then theirs (breadth first), so a batch holds the path the search will take::

        tree_points(0.5, 0.0, 1.0, 2, 0.1)      # [0.75, 0.25]: after a pass, after a failure
        tree_points(0.5, 0.0, 1.0, 6, 0.1)      # + 0.875, 0.625, 0.375, 0.125
    """
    found: list = []
    level = [(x, lo, hi)]
    while level and len(found) < count:
        below = []
        for at, low, high in level:
            for a, b in ((at, high), (low, at)):  # x passed: (x, hi); x failed: (lo, x)
                nxt = _next_point(a, b, resolution, discrete)
                if nxt is not None:
                    below.append((nxt, a, b))
        found.extend(point for point, _, _ in below)
        level = below
    return found[:count]
