"""press: search what modelpress can do for the smallest (or fastest) model that fits a device within an
accuracy budget, measured on held-out data.

    from modelpress.press import Search, SearchOptions
    result = Search(source, dataset, [profile], SearchOptions(max_drop=0.5)).run()
    result.chosen[profile.name]          # the winning Trial, or None with result.messages saying why

Modules: ``space`` (candidate settings and the recipes they make), ``trial`` (one measured candidate and its
verdicts), ``cache`` (trials and compressed models on disk), ``measure`` (convert, check, time, score),
``fallback`` (int8 with per-layer float fallback), ``sensitivity`` (per-layer pruning levels), ``search``
(the order of trials, bisection, time budget), ``package`` (write the chosen artifact as a model package).
The user-facing entry point is :func:`modelpress.press`.
"""

from modelpress.press.search import Search, SearchOptions, SearchResult
from modelpress.press.space import Settings
from modelpress.press.trial import Trial

__all__ = ["Search", "SearchOptions", "SearchResult", "Settings", "Trial"]
