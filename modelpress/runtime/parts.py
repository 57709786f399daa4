"""The one place the runtime's parts are built and wired, one direction only::

    table  ◄── loader ◄── budget ◄── control ◄── registry (the face the data plane and app use)

    parts = build_parts(config, metrics, backends)
    parts.control.load("digits")

Every part gets the ones below it passed in; none reaches back up, none reaches another's private names.
The pre-load checks every version passes before it is served are chosen here too (``checks``): a later
trust step adds its signature check to this list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modelpress.runtime.backends import BACKENDS, Backend
from modelpress.runtime.budget import MemoryBudget
from modelpress.runtime.config import RuntimeConfig
from modelpress.runtime.load_metrics import LoadMetrics
from modelpress.runtime.loader import PreloadCheck, VersionLoader, model_file_inside
from modelpress.runtime.model_control import ModelControl
from modelpress.runtime.records import RecordTable
from modelpress.signing import trust_check


@dataclass
class RuntimeParts:
    """The table of records, the version loader, the memory budget and model control of one runtime."""

    table: RecordTable
    loader: VersionLoader
    budget: MemoryBudget
    control: ModelControl


def build_parts(config: RuntimeConfig, metrics=None, backends: dict[str, type[Backend]] | None = None,
                checks: Sequence[PreloadCheck] = ()) -> RuntimeParts:
    """Build and wire the parts for ``config``; ``metrics`` (a :class:`~modelpress.runtime.metrics.Metrics`)
    gets the load counters and the budget gauges; ``backends`` add to or replace the built-in ones;
    ``checks`` run after the built-in pre-load check (the model file lies inside the repository)::

        parts = build_parts(config, checks=[my_check])     # my_check(folder, manifest) raises ArtifactError
    """
    table = RecordTable()
    counters = LoadMetrics(metrics.registry) if metrics is not None else None
    # --trust-key / --trust-identity: a version whose signature does not verify never becomes served
    trust = trust_check(config.trust_keys, config.trust_identities)
    loader = VersionLoader(config, table, metrics, dict(BACKENDS, **(backends or {})),
                           checks=[model_file_inside(config.repository), *([trust] if trust else []), *checks])
    budget = MemoryBudget(config, table, loader, counters)
    if metrics is not None:
        metrics.registry.register(budget)
    control = ModelControl(config, table, loader, budget, counters)
    return RuntimeParts(table, loader, budget, control)
