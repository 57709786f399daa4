"""Bounded loopback load generation shared by the serving benchmarks (serve_bench, soak_bench) and by
tests/runtime/test_soak.py: a `modelpress serve` process that is always stopped, request bodies for both
protocols, a pool of client threads sending a fixed number of requests under a time cap, and an RSS sampler::

    with served(repo, "--threads", "8") as server:
        body, headers = v2_body(x[:1], "image", binary=True)
        url = server.url + "/v2/models/digits/infer"

        def send(session, index):               # None when the answer is right, else why it is not
            answer = session.post(url, data=body, headers=headers, timeout=30)
            return None if answer.status_code == 200 else f"status {answer.status_code}"

        load = run_load(send, concurrency=32, total=20_000, cap=300)
        print(load.summary())                   # {"requests": ..., "errors": ..., "rps": ..., "p50_ms": ...}

Every request carries a timeout and the pool stops at the count or at the cap, whichever comes first, so a
run always ends by itself; ``served`` stops the server (SIGTERM, then SIGKILL) however the block exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from modelpress.testing.server import ServerProcess, served  # noqa: E402, F401 - served: re-exported

HEADER_LENGTH = "Inference-Header-Content-Length"
Send = Callable[[requests.Session, int], "str | None"]


def percentiles(seconds: list[float] | np.ndarray) -> dict[str, float]:
    """p50 / p95 / p99 in milliseconds (NaN for no values)."""
    if len(seconds) == 0:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan")}
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99))}


# --- the server ------------------------------------------------------------------------------------

def metric_sums(server: ServerProcess, model: str, names: tuple[str, ...]) -> dict[str, float]:
    """Sums over every label set of ``modelpress_<name>{model="..."}`` on the server's /metrics."""
    text = requests.get(server.url + "/metrics", timeout=10).text
    return {name: sum(float(v) for v in re.findall(rf'^modelpress_{name}\{{model="{re.escape(model)}"[^}}]*\}} (\S+)',
                                                   text, re.M)) for name in names}


def log_problems(server: ServerProcess) -> list[str]:
    """Log lines of the server that report an error or a traceback."""
    return [line.rstrip() for line in list(server.lines) if re.search(r"\b(ERROR|CRITICAL|Traceback)\b", line)]


class RssSampler:
    """Samples the resident memory of a process and its children (a server's workers) every ``interval``
    seconds in a thread: ``samples`` holds (perf_counter time, bytes)."""

    def __init__(self, pid: int, interval: float = 0.25):
        self.process = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def now(self) -> int:
        rss = self.process.memory_info().rss
        for child in self.process.children(recursive=True):  # granian's workers hold the models
            with contextlib.suppress(psutil.Error):
                rss += child.memory_info().rss
        self.samples.append((time.perf_counter(), rss))
        return rss

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(psutil.Error):
                self.now()

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# --- request bodies and answers --------------------------------------------------------------------

def v2_body(x: np.ndarray, name: str, binary: bool) -> tuple[bytes, dict[str, str]]:
    """An Open Inference v2 infer body for one FP32 input: JSON, or the binary tensor extension (binary
    output asked for too)."""
    if not binary:
        payload = {"inputs": [{"name": name, "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]}
        return json.dumps(payload).encode(), {"Content-Type": "application/json"}
    data = x.astype("<f4").tobytes()
    head = json.dumps({"inputs": [{"name": name, "datatype": "FP32", "shape": list(x.shape),
                                   "parameters": {"binary_data_size": len(data)}}],
                       "parameters": {"binary_data_output": True}}).encode()
    return head + data, {HEADER_LENGTH: str(len(head))}


def v1_body(x: np.ndarray, name: str, columnar: bool = False) -> tuple[bytes, dict[str, str]]:
    """A TF Serving v1 ``:predict`` body: ``instances`` rows, or ``inputs`` columns."""
    payload = {"inputs": {name: x.tolist()}} if columnar else {"instances": [{name: row} for row in x.tolist()]}
    return json.dumps(payload).encode(), {"Content-Type": "application/json"}


def v2_outputs(answer: requests.Response) -> tuple[dict, dict[str, np.ndarray]]:
    """The JSON head of a v2 infer answer and its outputs as arrays (JSON data or binary tensors)."""
    content = answer.content
    length = answer.headers.get(HEADER_LENGTH)
    head = json.loads(content[: int(length)] if length else content)
    tail, offset, arrays = content[int(length):] if length else b"", 0, {}
    for item in head["outputs"]:
        dtype = {"FP32": "<f4", "UINT8": "u1", "INT8": "i1", "INT32": "<i4", "INT64": "<i8"}[item["datatype"]]
        size = (item.get("parameters") or {}).get("binary_data_size")
        if size is None:
            arrays[item["name"]] = np.asarray(item["data"], dtype=dtype).reshape(item["shape"])
        else:
            arrays[item["name"]] = np.frombuffer(tail[offset: offset + size], dtype=dtype).reshape(item["shape"])
            offset += size
    return head, arrays


# --- the client pool -------------------------------------------------------------------------------

@dataclass
class Outcome:
    index: int
    started: float      # perf_counter
    seconds: float
    error: str | None   # None: a right answer


@dataclass
class Load:
    outcomes: list[Outcome] = field(default_factory=list)
    started: float = 0.0
    wall: float = 0.0
    stopped_by: str = "count"

    @property
    def errors(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is not None]

    def summary(self) -> dict:
        """Right answers, errors, right answers a second and their latency percentiles."""
        ok = [o.seconds for o in self.outcomes if o.error is None]
        return {"requests": len(ok), "errors": len(self.outcomes) - len(ok), "rps": len(ok) / max(self.wall, 1e-9),
                **percentiles(ok)}


def run_load(send: Send, concurrency: int, total: int, cap: float,
             more: Callable[[], bool] | None = None) -> Load:
    """``concurrency`` threads (one keep-alive session each) call ``send(session, index)`` for indexes
    0, 1, ... until ``total`` were sent (and ``more()``, when given, says False) or ``cap`` seconds
    passed. ``send`` returns None for a right answer or the reason it is wrong; an exception it raises
    (connection refused, timeout, a malformed answer) counts as an error named by its type."""
    load = Load(started=time.perf_counter())
    deadline = load.started + cap
    lock = threading.Lock()
    issued = [0]

    def worker() -> None:
        with requests.Session() as session:
            while True:
                with lock:
                    if time.perf_counter() >= deadline:
                        load.stopped_by = "time cap"
                        return
                    if issued[0] >= total and (more is None or not more()):
                        return
                    index = issued[0]
                    issued[0] += 1
                started = time.perf_counter()
                try:
                    error = send(session, index)
                except Exception as err:  # noqa: BLE001 - every failure is a counted error, never a crash
                    error = f"{type(err).__name__}"
                outcome = Outcome(index, started, time.perf_counter() - started, error)
                with lock:
                    load.outcomes.append(outcome)

    threads = [threading.Thread(target=worker, name=f"load-{n}", daemon=True) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    load.wall = time.perf_counter() - load.started
    load.outcomes.sort(key=lambda o: o.started)
    return load


def machine() -> dict:
    import platform

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
