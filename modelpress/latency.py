"""Single-call latency, measured the same way everywhere (benchmarks, the demo, reports).

    stats = measure_latency(lambda: model.predict([x1]), runs=200)
    stats.p50_ms, stats.p95_ms
    machine_info()   # where it was measured: record it beside the numbers


Warm-up calls run first (first invokes allocate and pack weights); then ``runs`` timed calls, stopped
early after ``max_seconds`` so a slow model cannot stall a benchmark.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class LatencyStats:
    runs: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def measure_latency(call: Callable[[], object], runs: int = 200, warmup: int = 10,
                    max_seconds: float = 10.0) -> LatencyStats:
    """Time ``call()`` ``runs`` times after ``warmup`` untimed calls; percentiles in milliseconds."""
    for _ in range(warmup):
        call()
    times = []
    deadline = time.perf_counter() + max_seconds
    for _ in range(runs):
        start = time.perf_counter()
        call()
        end = time.perf_counter()
        times.append(end - start)
        if end > deadline:
            break
    ms = np.asarray(times) * 1000.0
    return LatencyStats(runs=len(ms), p50_ms=float(np.percentile(ms, 50)), p95_ms=float(np.percentile(ms, 95)),
                        p99_ms=float(np.percentile(ms, 99)), mean_ms=float(ms.mean()))


def machine_info() -> dict[str, object]:
    """The machine a timing was taken on: OS, CPU model, core count and the SIMD features that decide which
    int8 / float kernels XNNPACK picks (an int8 model can be faster or slower than float32 depending on them)."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and cpu in ("", platform.machine(), platform.processor()):
                    cpu = value.strip()
                elif key.strip() in ("flags", "Features"):
                    flags = set(value.split())
                    break
    except OSError:
        pass
    simd = sorted(f for f in flags if f in {"avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16",
                                            "asimd", "asimddp", "i8mm", "sve"})
    return {"platform": platform.platform(), "cpu": cpu, "cpus": os.cpu_count(), "simd": simd,
            "python": platform.python_version()}
