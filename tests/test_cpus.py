"""Cores are counted as this process may use them (its affinity), not as the machine has them: press timed
candidates with 2 interpreter threads on the 1 core ``taskset`` gave it, every call 20-25% slower."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, os
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
import numpy as np
from modelpress.cpus import threads_for, usable_cpus
from modelpress.device_profiles import load_profile
from modelpress.search.executor import default_workers, threads_per_worker
from modelpress.search.measure import Measurer
profile = load_profile("raspberry-pi-4")
x = np.zeros((4, 8), np.float32)
measurer = Measurer(profile, x, np.zeros(4, np.int64), x)
print(json.dumps({"cpus": usable_cpus(), "machine": os.cpu_count(), "profile_threads": profile.threads,
                  "timing_threads": measurer.threads, "workers": default_workers(gpus=0),
                  "threads_per_worker": threads_per_worker(1),
                  "profile_capped": threads_for(profile.threads)}))
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2,
                    reason="needs Linux CPU affinity and at least 2 cores to pin to one")
def test_press_times_and_shares_out_the_cores_the_process_may_use_not_the_machines():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["machine"] >= 2 and seen["profile_threads"] >= 2           # the profile asks for more than 1 ...
    assert seen["cpus"] == 1 and seen["timing_threads"] == 1               # ... pinned to 1 core, 1 thread times
    assert seen["workers"] == 1 and seen["threads_per_worker"] == 1
    assert seen["profile_capped"] == 1  # what the converters verify with
