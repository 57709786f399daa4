"""The search behind ``modelpress press``: what modelpress can do, tried for the smallest (or fastest) model
that fits a device within an accuracy budget, measured on held-out data.

    from modelpress.search import Search, SearchOptions
    result = Search(keras_model, "keras3", dataset, [profile], SearchOptions(max_drop=0.5)).run()
    result.chosen[profile.name]          # the winning Trial, or None with result.messages saying why

Modules: ``space`` (candidate settings and the recipes they make), ``trial`` (one measured candidate and its
verdicts), ``cache`` (trials and compressed models on disk), ``measure`` (convert, check, time, score),
``fallback`` (int8 with per-layer float fallback), ``sensitivity`` (per-layer pruning levels), ``engine``
(runs trials, time budget, choice), ``strategy`` (the order of trials, bisection, what can run at once),
``executor`` / ``worker`` / ``ray_executor`` (trials in the driver, local worker processes or Ray tasks),
``package`` (write the chosen artifact as a model package).
The user-facing entry point is :func:`modelpress.press` (the package is not named ``press``: a
submodule would shadow that function on the ``modelpress`` namespace).
"""

from modelpress.search.engine import Search, SearchOptions, SearchResult
from modelpress.search.space import Settings
from modelpress.search.trial import Trial

__all__ = ["Search", "SearchOptions", "SearchResult", "Settings", "Trial"]
