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
"""

from __future__ import annotations


def gallop_points(k: int, n: int) -> list[int]:
    """The galloping sequence from ``k`` on: ``gallop_points(1, 10)`` is [1, 2, 4, 8, 10]."""
    points = [k]
    while points[-1] < n:
        points.append(min(2 * points[-1], n))
    return points


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
