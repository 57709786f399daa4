"""Sparsity schedules: how much of a layer is pruned at each fine-tuning step (tfmot's two schedules).

    schedule = PolynomialDecay(initial_sparsity=0.0, final_sparsity=0.8, begin_step=0, end_step=500)
    schedule.sparsity_at(250)                      # 0.7
    PolynomialDecay.from_config(schedule.get_config()) == schedule
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from modelpress.errors import RecipeError


def check_sparsity(value: Any, what: str = "sparsity") -> float:
    """A fraction in [0, 1); RecipeError otherwise."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise RecipeError(f"{what} {value!r} is not a number; use a fraction such as 0.8") from None
    if not 0.0 <= value < 1.0:
        raise RecipeError(f"{what} {value} must be at least 0 and below 1 (0.8 prunes 80% of the weights)")
    return value


@dataclass(frozen=True)
class ConstantSparsity:
    """Prune to ``target_sparsity`` from ``begin_step`` on, every ``frequency`` steps.

        ConstantSparsity(0.8).sparsity_at(0)   # 0.8
    """

    target_sparsity: float
    begin_step: int = 0
    frequency: int = 100

    def __post_init__(self):
        check_sparsity(self.target_sparsity, "target_sparsity")

    @property
    def final_sparsity(self) -> float:
        return self.target_sparsity

    @property
    def end_step(self) -> int:
        return self.begin_step

    def sparsity_at(self, step: int) -> float | None:
        """Target sparsity at ``step``, or None when the mask is not updated at this step."""
        if step < self.begin_step or (step - self.begin_step) % max(self.frequency, 1):
            return None
        return self.target_sparsity

    def get_config(self) -> dict[str, Any]:
        return {"class_name": "ConstantSparsity", "config": asdict(self)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ConstantSparsity:
        return cls(**config.get("config", config))


@dataclass(frozen=True)
class PolynomialDecay:
    """Sparsity that rises from ``initial_sparsity`` to ``final_sparsity`` as a cubic (``power``) curve
    between ``begin_step`` and ``end_step`` (Zhu & Gupta 2017), updated every ``frequency`` steps.

        PolynomialDecay(0.0, 0.8, 0, 100).sparsity_at(100)   # 0.8
    """

    initial_sparsity: float
    final_sparsity: float
    begin_step: int
    end_step: int
    power: float = 3.0
    frequency: int = 100

    def __post_init__(self):
        check_sparsity(self.initial_sparsity, "initial_sparsity")
        check_sparsity(self.final_sparsity, "final_sparsity")
        if self.end_step < self.begin_step:
            raise RecipeError(f"end_step {self.end_step} is before begin_step {self.begin_step}")

    def sparsity_at(self, step: int) -> float | None:
        if step < self.begin_step:
            return None
        if step >= self.end_step:
            return self.final_sparsity if step == self.end_step or (step - self.begin_step) % self.frequency == 0 \
                else None
        if (step - self.begin_step) % max(self.frequency, 1):
            return None
        span = max(self.end_step - self.begin_step, 1)
        frac = (step - self.begin_step) / span
        return self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * (1.0 - frac) ** self.power

    def get_config(self) -> dict[str, Any]:
        return {"class_name": "PolynomialDecay", "config": asdict(self)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PolynomialDecay:
        return cls(**config.get("config", config))


SCHEDULES = {"constant": ConstantSparsity, "polynomial": PolynomialDecay}


def make_schedule(kind: str, sparsity: float, total_steps: int, frequency: int | None = None):
    """The schedule a recipe step names, spread over ``total_steps`` fine-tuning steps.

    Polynomial decay reaches its final sparsity at 2/3 of the steps, leaving the rest to recover.
    """
    sparsity = check_sparsity(sparsity)
    if kind not in SCHEDULES:
        raise RecipeError(f"schedule {kind!r} is not one of {', '.join(SCHEDULES)}")
    total_steps = max(int(total_steps), 1)
    if kind == "constant":
        return ConstantSparsity(sparsity, 0, frequency or max(total_steps // 10, 1))
    end = max(int(total_steps * 2 / 3), 1)
    return PolynomialDecay(0.0, sparsity, 0, end, 3.0, frequency or max(end // 10, 1))
