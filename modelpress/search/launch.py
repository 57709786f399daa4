"""Which executor runs a search's trials, from its options: Ray, local worker processes, or the driver itself.

    executor = make_executor(search)     # RayWorkers (options.ray), LocalWorkers (workers > 1) or InProcess()

Kept apart from :mod:`modelpress.search.executor` so that imports run one way: the engine picks an executor
here, the executors hand trials to :mod:`modelpress.search.worker`, and the worker gets the search's classes
passed in (in its context) instead of importing the engine back.
"""

from __future__ import annotations

from typing import Any

from modelpress.search.executor import InProcess, LocalWorkers, default_workers


def make_executor(search: Any) -> Any:
    """The executor the search's options ask for: Ray (``ray``), local processes (``workers`` > 1), or none."""
    options = search.options
    if options.ray:
        from modelpress.search.ray_executor import RayWorkers

        return RayWorkers(search, options.ray, options.trial_cpus, options.trial_gpus)
    workers = options.workers or default_workers()
    return InProcess() if workers == 1 else LocalWorkers(search, workers)
