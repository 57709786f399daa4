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

from modelpress.converters.mcu.micro_check import MicroModel, micro_version
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


_PROBE = """
import sys
import numpy as np
from modelpress.converters.mcu.micro_check import MicroError, MicroModel
folder = sys.argv[1]
data = open(folder + "/model.tflite", "rb").read()
sample = [np.load(folder + f"/input{i}.npy") for i in range(int(sys.argv[3]))]
try:
    MicroModel(data, int(sys.argv[2])).run(sample)
except MicroError:
    sys.exit(1)
"""


def arena_works(data: bytes, sample: list[np.ndarray], arena_bytes: int) -> bool:
    """Whether TFLite Micro loads the model and runs ``sample`` within ``arena_bytes``.

    Tried in a child process: TFLite Micro's Python runtime can crash instead of raising for an arena a little
    too small (MobileNetV2 int8: a segmentation fault at 64 KB where 32 KB raises and 96 KB runs), and that
    crash took the whole press run with it. A child that crashes counts as "does not fit"::

        arena_works(data, [x_int8[:1]], 8_192)   # True / False
    """
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="modelpress-arena-") as folder:
        (Path(folder) / "model.tflite").write_bytes(data)
        for i, array in enumerate(sample):
            np.save(Path(folder) / f"input{i}.npy", np.asarray(array))
        child = subprocess.run([sys.executable, "-c", _PROBE, folder, str(int(arena_bytes)), str(len(sample))],
                               capture_output=True, timeout=600)
    return child.returncode == 0


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
