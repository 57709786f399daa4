"""One measured candidate: its settings, what it measured on held-out data, and its verdicts.

    trial = Trial(profile="cortex-m", settings=Settings("quantize"), accuracy=0.97, drop_points=0.4,
                  bytes=14_000, gzip_bytes=9_000, p50_ms=0.02)
    trial.passed                      # True when no constraint failed and drop + margin fits the budget
    trial.to_dict()["verdict"]        # 'passed', 'over budget', 'constraints' or 'failed'

The budget is checked with a safety margin: the drop measured on n held-out samples is itself a sample
estimate, so a candidate passes only if ``drop + margin <= max_drop``, the margin being z standard errors of
the drop (:func:`drop_margin`): one by default (about 84% sure that the drop on unseen data fits, per
candidate), more at a higher ``confidence`` (:func:`margin_z`: 0.95 -> 1.645).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from modelpress.search.space import Settings

MARGIN_FORMULA = ("margin = z * 100 * sqrt(((w + b)/n - ((w - b)/n)^2) / n): z standard errors of the paired accuracy "
                  "difference on the n held-out samples, w = samples the source gets right and the candidate wrong, "
                  "b = the reverse (binomial SE sqrt((p1(1-p1) + p2(1-p2))/n) when those counts are unknown); "
                  "z = 1 by default, else the normal quantile of the confidence asked for")
#: the confidences press accepts: 0.5 adds no margin at all; beyond 0.999 no held-out split is large enough
CONFIDENCE_RANGE = (0.5, 0.999)


def margin_z(confidence: float | None = None) -> float:
    """Standard errors in the margin: 1 when ``confidence`` is None (one-sided, about 0.84), else its normal
    quantile (one-sided: the chance that the drop on unseen data is no larger than the budget allows)::

        margin_z()        # 1.0
        margin_z(0.95)    # 1.6449
    """
    if confidence is None:
        return 1.0
    from statistics import NormalDist

    return round(NormalDist().inv_cdf(float(confidence)), 4)


def drop_margin(n: int, worse: int | None = None, better: int | None = None, p_source: float | None = None,
                p_candidate: float | None = None, z: float = 1.0) -> float:
    """``z`` standard errors (in accuracy points; one by default) of a drop measured on ``n`` held-out samples.

    Each sample's difference (source right - candidate right) is -1, 0 or 1; the drop is their mean, so its
    standard error is sqrt(var / n) with var = (w + b)/n - ((w - b)/n)^2 (``worse`` = w, ``better`` = b).
    Without the per-sample counts (an old cache record), the unpaired binomial form is used::

        drop_margin(6000, worse=150, better=90)                  # 0.25 (points)
        drop_margin(6000, p_source=0.90, p_candidate=0.89)       # 0.55
        drop_margin(6000, worse=150, better=90, z=margin_z(0.95))  # 0.42
    """
    if n <= 0:
        return 0.0
    if worse is not None and better is not None:
        variance = (worse + better) / n - ((worse - better) / n) ** 2
    else:
        a, c = p_source or 0.0, p_candidate or 0.0
        variance = a * (1 - a) + c * (1 - c)
    return round(z * 100 * math.sqrt(max(variance, 0.0) / n), 4)



def is_floor(settings: Settings) -> bool:
    """The candidate every profile gets whatever the time budget says: post-training int8 (a conversion)."""
    return settings.family == "quantize" and settings.quantization == "int8" and not settings.compressed

@dataclass
class Trial:
    profile: str
    settings: Settings
    accuracy: float | None = None
    drop_points: float | None = None
    bytes: int | None = None
    gzip_bytes: int | None = None
    p50_ms: float | None = None
    p50_spread_ms: float | None = None                  # half the range of p50 over repeated rounds: the noise
    problems: list[str] = field(default_factory=list)  # the profile's constraints this artifact breaks
    error: str | None = None                            # compression or conversion failed
    within_budget: bool | None = None                   # drop + margin <= max_drop
    margin_points: float | None = None                  # z standard errors of the drop (drop_margin)
    worse: int | None = None                            # held-out samples the source gets right, this one wrong
    better: int | None = None                           # ... and the reverse
    seconds: float = 0.0                                # time it took (0 when read from the cache)
    cached: bool = False
    artifact_key: str = ""                              # where its .tflite is in the cache
    model_key: str = ""                                 # where its fine-tuned Keras model is (compressed only)
    id: int = 0
    ops: list[str] = field(default_factory=list)
    why_not: str = ""                                   # filled when the search ends: why it was not chosen
    worker: str = ""                                    # where it ran when not in the driver: host:pid (Ray node)
    epoch_seconds: float | None = None                  # a worker's fine-tuning time per epoch, for the budget
    narrowed: dict[str, int] = field(default_factory=dict)  # layer -> units left after dead ones were removed

    @property
    def passed(self) -> bool:
        return self.error is None and not self.problems and bool(self.within_budget)

    @property
    def verdict(self) -> str:
        if self.error is not None:
            return "failed"
        if self.problems:
            return "constraints"
        return "passed" if self.within_budget else "over budget"

    def describe(self) -> str:
        return self.settings.describe()

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "profile": self.profile, "variant": self.describe(), "verdict": self.verdict,
                "settings": self.settings.to_dict(), "accuracy": self.accuracy, "drop_points": self.drop_points,
                "margin_points": self.margin_points, "worse": self.worse, "better": self.better,
                "bytes": self.bytes, "gzip_bytes": self.gzip_bytes, "p50_ms": self.p50_ms,
                "p50_spread_ms": self.p50_spread_ms,
                "constraints": {"passed": not self.problems and self.error is None, "problems": self.problems},
                "within_budget": self.within_budget, "error": self.error, "seconds": round(self.seconds, 2),
                "cached": self.cached, "ops": self.ops, "why_not": self.why_not,
                "worker": self.worker or None, "narrowed": self.narrowed or None}

    def record(self) -> dict[str, Any]:
        """What the cache keeps (measurements, not the profile-specific verdict on the budget)."""
        data = self.to_dict()
        data.update(artifact_key=self.artifact_key, model_key=self.model_key)
        return data

    @classmethod
    def from_record(cls, data: dict[str, Any], settings: Settings) -> Trial:
        keep = ("profile", "accuracy", "drop_points", "bytes", "gzip_bytes", "p50_ms", "p50_spread_ms", "error",
                "artifact_key", "model_key", "ops", "worse", "better")
        trial = cls(settings=settings, **{k: data.get(k) for k in keep if k != "profile"},
                    profile=data["profile"])
        trial.problems = list(data.get("constraints", {}).get("problems", []))
        trial.ops = list(data.get("ops") or [])
        trial.narrowed = dict(data.get("narrowed") or {})
        return trial
