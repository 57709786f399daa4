"""How many cores this process may use: what the runtime's interpreters and press's timings are sized by.

``os.cpu_count()`` counts the machine's cores, not this process's: under ``taskset``, a cpuset or a container's
``--cpus`` it oversubscribes (press timed MobileNetV2 candidates with 2 interpreter threads on the 1 core
``taskset`` gave it: every call 20-25% slower, 0.106-0.111 ms for float32 against 0.086-0.090 with 1 thread).
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def usable_cpus() -> int:
    """The cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (a container's
    ``--cpus``) when one is set::

        usable_cpus()   # 2 on a 2-core machine, or in a container limited to 2 CPUs
    """
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        count = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return count


def threads_for(wanted: int) -> int:
    """A device profile's interpreter threads, capped by the usable cores (at least one): what press times
    candidates with and the converters verify with, so neither oversubscribes a pinned or limited process::

        threads_for(4)   # 2 on a 2-core machine, 1 under `taskset -c 0`
    """
    return max(1, min(int(wanted), usable_cpus()))
