"""The tensor arena a model needs, measured on TFLite Micro: the smallest arena it loads and runs in.

    arena = measure_arena(data, sample)      # sample: one integer input, batch 1
    arena.minimum_bytes                      # smallest that works (16-byte steps)
    arena.recommended_bytes                  # + HEADROOM, rounded up to 16: what model_data.h defines

Bisection between an arena that fails and one that works; "works" means the interpreter allocates
its tensors and one real sample runs. Measured with the host build of TFLite Micro, which is 64-bit:
its bookkeeping structs (pointers) are larger than on a 32-bit Cortex-M, so the figure is on the safe
side for a microcontroller.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from modelpress.converters.mcu.micro_check import MicroError, MicroModel, micro_version
from modelpress.errors import ConstraintError

ALIGN = 16
HEADROOM = 0.10
START_BYTES = 16 * 1024
LIMIT_BYTES = 64 * 1024 * 1024


@dataclass
class ArenaSize:
    minimum_bytes: int
    recommended_bytes: int
    headroom: float
    head_bytes: int | None
    tail_bytes: int | None
    measured_on: str

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def comment(self) -> str:
        return (f"measured minimum {self.minimum_bytes:,} B on TFLite Micro ({self.measured_on}, 64-bit host) "
                f"+ {self.headroom:.0%} headroom")


def _round_up(n: float) -> int:
    return int(-(-int(np.ceil(n)) // ALIGN) * ALIGN)


def arena_works(data: bytes, sample: list[np.ndarray], arena_bytes: int) -> bool:
    """Whether TFLite Micro loads the model and runs ``sample`` within ``arena_bytes``.

        arena_works(data, [x_int8[:1]], 8_192)   # True / False
    """
    try:
        MicroModel(data, arena_bytes).run(sample)
    except MicroError:
        return False
    return True


def measure_arena(data: bytes, sample: list[np.ndarray], headroom: float = HEADROOM) -> ArenaSize:
    """The smallest working arena (to 16 bytes) and the recommended size with ``headroom``.

        measure_arena(data, [x_int8[:1]]).recommended_bytes
    """
    high = START_BYTES
    MicroModel(data, LIMIT_BYTES)  # raises at once for a model TFLite Micro cannot load at any size
    while not arena_works(data, sample, high):
        if high >= LIMIT_BYTES:
            raise ConstraintError(f"TFLite Micro cannot run the model even with a {LIMIT_BYTES:,}-byte arena")
        high = min(high * 2, LIMIT_BYTES)
    low = 0  # known to fail
    while high - low > ALIGN:
        middle = _round_up((low + high) / 2)
        if middle >= high:
            break
        if arena_works(data, sample, middle):
            high = middle
        else:
            low = middle
    usage = MicroModel(data, high)
    usage.run(sample)
    parts = usage.allocations()
    return ArenaSize(minimum_bytes=high, recommended_bytes=_round_up(high * (1 + headroom)), headroom=headroom,
                     head_bytes=parts.get("head_bytes"), tail_bytes=parts.get("tail_bytes"),
                     measured_on=f"tflite-micro {micro_version()}")
