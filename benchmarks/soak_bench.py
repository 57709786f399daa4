"""Soak benchmark: a `modelpress serve` process under steady concurrent load for a fixed number of requests,
with a new version of a model published in the middle of the run.

Three models built from the committed digits packages (tests/runtime/fixtures: float32, int8 and the
Edge-TPU-ready int8 with its fixed batch of 1) take a round-robin mix of TF Serving v1 (rows and columns)
and Open Inference v2 (JSON and binary) requests over HTTP and Open Inference ``ModelInfer`` calls over
gRPC (raw and typed contents; the server's --grpc-port door, one shared grpcio channel), of 1 to 8 real
held-out digits, from --concurrency keep-alive clients on loopback; the swap happens under both. Bounded:
a fixed request count and a time cap; the server is always stopped.

    .venv-runtime/bin/python benchmarks/soak_bench.py [--requests 20000] [--concurrency 32] [--time-cap 300]
    .venv-runtime/bin/python benchmarks/soak_bench.py --quick        # 2,000 requests, writes soak_bench_quick.json

Every answer is checked: status 200, output shape [rows, 10] and, row by row, the values that row got from
a single-row request before the load (so rows mixed up between concurrent requests count as errors).
At --publish-at of the run the digits model gets its next version, staged in a hidden folder beside and
renamed into place by modelpress.converters.publish, as a deploy does; the run goes on until the new version
has answered. Reported (table, then benchmarks/results/soak_bench.json): errors by reason and by protocol
(must be 0), p50 /
p99 per window and their drift (last window against the first), server RSS at start, after warm-up and at
the end, and the swap: failed requests while it happened (must be 0) and seconds until the new version served.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.loadgen import (  # noqa: E402
    Load,
    RssSampler,
    log_problems,
    machine,
    percentiles,
    run_load,
    served,
    v1_body,
    v2_body,
    v2_outputs,
)
from modelpress.atomic import atomic_write_bytes  # noqa: E402
from modelpress.converters.publish import next_version, publish_package, staging  # noqa: E402
from modelpress.tables import text_table  # noqa: E402
from modelpress.testing.grpc import grpc_target, infer_body, infer_outputs  # noqa: E402
from modelpress.testing.repository import add_version as _add_version  # noqa: E402

FIXTURES = ROOT / "tests" / "runtime" / "fixtures"  # the committed packages (data files, not test code)
PACKAGES = FIXTURES / "packages"


def add_version(repo: Path, model: str, version: int, package: str) -> Path:
    return _add_version(repo, model, version, package, PACKAGES)

RESULTS = ROOT / "benchmarks" / "results"
MB = 1024 * 1024
MODELS = {"digits": "float32", "int8": "int8", "edgetpu": "edgetpu"}  # model name -> fixture package
SWAP_MODEL = "digits"
INPUT, OUTPUT = "image", "output_0"


@dataclass(frozen=True)
class Target:
    """One kind of request in the mix."""

    model: str
    protocol: str   # v1 | v2 | grpc
    payload: str    # v1: row | columnar; v2: json | binary; grpc: raw | typed
    rows: int

    @property
    def name(self) -> str:
        return f"{self.model} {self.protocol} {self.payload} x{self.rows}"


TARGETS = [Target("digits", "v2", "json", 1), Target("digits", "v2", "binary", 8), Target("digits", "v1", "row", 2),
           Target("int8", "v2", "binary", 1), Target("int8", "v1", "columnar", 4), Target("int8", "v2", "json", 2),
           Target("edgetpu", "v2", "json", 1), Target("edgetpu", "v1", "row", 1),
           Target("digits", "grpc", "raw", 4), Target("int8", "grpc", "typed", 2), Target("digits", "grpc", "typed", 1),
           Target("edgetpu", "grpc", "raw", 1)]


@dataclass
class SoakOptions:
    requests: int = 20_000       # measured requests (the run goes on past them until the new version answered)
    concurrency: int = 32
    time_cap: float = 300.0      # seconds for the measured run at most
    threads: int = 8             # server threads
    poll_interval: float = 1.0   # the server's repository scan period
    batching: bool = False       # the server's dynamic batching
    publish_at: float = 0.5      # fraction of the requests after which the new version is published
    windows: int = 10
    warmup: int = 1000           # unmeasured requests first
    rows: int = 100              # distinct inputs (each model's answer to each is fetched alone first)
    after_swap: int = 50         # answers from the new version before the run may end
    tolerance: float = 0.02      # largest difference from a row's own answer (a quantization step is 0.004)


class Swap:
    """The publish of the next version of SWAP_MODEL while the load runs, and what clients saw of it."""

    def __init__(self, after: int):
        self.after = after
        self.trigger, self.done, self.lock = threading.Event(), threading.Event(), threading.Lock()
        self.old: int | None = None
        self.version: int | None = None
        self.published: float | None = None   # perf_counter of the rename
        self.first_new: float | None = None   # perf_counter of the first answer from the new version
        self.last_old: float | None = None    # perf_counter of the last answer from the old one, after the publish
        self.new_answers = 0
        self.status_available: float | None = None  # seconds after the publish: v1 status says AVAILABLE
        self.old_ended: float | None = None          # seconds after the publish: the old version reached END
        self.error: str | None = None

    def seen(self, version: str, at: float) -> None:
        with self.lock:
            if self.published is None:
                return
            if int(version) == self.version:
                self.new_answers += 1
                self.first_new = at if self.first_new is None else min(self.first_new, at)
            else:
                self.last_old = at if self.last_old is None else max(self.last_old, at)
            self._check()

    def _check(self) -> None:
        if self.error or (self.new_answers >= self.after and self.old_ended is not None):
            self.done.set()

    def publish(self, repo: Path, url: str, wait: float, deadline: float) -> None:
        """Wait for the trigger (or ``wait`` seconds), publish, then watch the v1 status until the new
        version is AVAILABLE and the old one has ended."""
        try:
            self.trigger.wait(wait)
            with staging(repo, SWAP_MODEL) as folder:
                self.old = next_version(repo / SWAP_MODEL) - 1
                package = Path(shutil.copytree(PACKAGES / MODELS[SWAP_MODEL], folder / "package"))
                with self.lock:
                    self.version, self.published = self.old + 1, time.perf_counter()
                publish_package(package, repo, SWAP_MODEL, self.version)
            with requests.Session() as session:
                while time.perf_counter() < deadline and self.old_ended is None:
                    rows = session.get(f"{url}/v1/models/{SWAP_MODEL}", timeout=10).json()["model_version_status"]
                    states = {int(r["version"]): r["state"] for r in rows}
                    after = time.perf_counter() - self.published
                    if self.status_available is None and states.get(self.version) == "AVAILABLE":
                        self.status_available = after
                    if self.status_available is not None and all(s == "END" for v, s in states.items()
                                                                  if v != self.version):
                        self.old_ended = after
                    time.sleep(0.01)
        except Exception as err:  # noqa: BLE001 - reported, and it ends the run
            self.error = f"{type(err).__name__}: {err}"
        with self.lock:
            self._check()


class Checker:
    """Request bodies for every target and the check of every answer against each row's own answer."""

    def __init__(self, url: str, x: np.ndarray, reference: dict[str, np.ndarray], tolerance: float, swap: Swap,
                 grpc_target: str):
        import grpc

        self.reference, self.tolerance, self.swap = reference, tolerance, swap
        self.examples: dict[str, str] = {}
        self.bodies = {}
        self.grpc = grpc
        self.channel = grpc.insecure_channel(grpc_target)  # one HTTP/2 connection, calls multiplexed
        self.infer = self.channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        for t in TARGETS:
            if t.protocol == "grpc":
                starts = sorted({(k * 7) % (len(x) - t.rows + 1) for k in range(25)})
                self.bodies[t] = [(None, infer_body(t.model, INPUT, x[s: s + t.rows], t.payload == "raw"), None, s)
                                  for s in starts]
                continue
            route = f"/v1/models/{t.model}:predict" if t.protocol == "v1" else f"/v2/models/{t.model}/infer"
            starts = sorted({(k * 7) % (len(x) - t.rows + 1) for k in range(25)})
            made = [v1_body(x[s: s + t.rows], INPUT, t.payload == "columnar") if t.protocol == "v1"
                    else v2_body(x[s: s + t.rows], INPUT, t.payload == "binary") for s in starts]
            self.bodies[t] = [(url + route, body, headers, s) for s, (body, headers) in zip(starts, made)]

    def send(self, session: requests.Session, index: int) -> str | None:
        target = TARGETS[index % len(TARGETS)]
        choices = self.bodies[target]
        url, body, headers, start = choices[(index // len(TARGETS)) % len(choices)]
        if target.protocol == "grpc":
            try:
                version, outputs = infer_outputs(self.infer(body, timeout=30))
            except self.grpc.RpcError as err:
                return self._error(f"{target.name}: {err.code().name}", (err.details() or "")[:300])
            if target.model == SWAP_MODEL:
                self.swap.seen(version, time.perf_counter())
            return self._check(target, outputs[OUTPUT], start)
        answer = session.post(url, data=body, headers=headers, timeout=30)
        if answer.status_code != 200:
            return self._error(f"{target.name}: status {answer.status_code}", answer.text[:300])
        if target.protocol == "v2":
            head, outputs = v2_outputs(answer)
            out = outputs[OUTPUT]
            if target.model == SWAP_MODEL:
                self.swap.seen(head["model_version"], time.perf_counter())
        else:
            out = np.asarray(answer.json()["predictions" if target.payload == "row" else "outputs"], np.float32)
        return self._check(target, out, start)

    def _check(self, target: Target, out: np.ndarray, start: int) -> str | None:
        if out.shape != (target.rows, 10):
            return self._error(f"{target.name}: output shape", f"{list(out.shape)}, expected [{target.rows}, 10]")
        gap = float(np.abs(out - self.reference[target.model][start: start + target.rows]).max())
        if gap > self.tolerance:
            return self._error(f"{target.name}: values", f"rows {start}..: off by {gap:.4f} from their own answers")
        return None

    def _error(self, reason: str, example: str) -> str:
        self.examples.setdefault(reason, example)
        return reason


def reference_answers(url: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """Each model's answer to each row, one row a request (also the warm-up of every interpreter path)."""
    out = {}
    with requests.Session() as session:
        for model in MODELS:
            rows = []
            for i in range(len(x)):
                body, headers = v2_body(x[i: i + 1], INPUT, binary=False)
                answer = session.post(f"{url}/v2/models/{model}/infer", data=body, headers=headers, timeout=30)
                answer.raise_for_status()
                rows.append(v2_outputs(answer)[1][OUTPUT][0])
            out[model] = np.stack(rows)
    return out


def windows(load: Load, count: int, samples: list[tuple[float, int]], published: float | None) -> list[dict]:
    """p50 / p99, throughput, errors and peak RSS per slice of the run (equal request counts, by start)."""
    rows = []
    for n, chunk in enumerate(np.array_split(np.arange(len(load.outcomes)), count)):
        part = [load.outcomes[i] for i in chunk]
        if not part:
            continue
        begin, end = part[0].started, max(o.started + o.seconds for o in part)
        rss = [b for t, b in samples if begin <= t <= end]
        rows.append({"window": n + 1, "from_s": begin - load.started, "to_s": end - load.started,
                     "requests": len(part), "errors": sum(o.error is not None for o in part),
                     "rps": len(part) / max(end - begin, 1e-9),
                     **percentiles([o.seconds for o in part if o.error is None]),
                     "rss_mb": max(rss) / MB if rss else None,
                     "publish": "<-" if published is not None and begin <= published <= end else ""})
    return rows


def run_soak(options: SoakOptions, workdir: Path, say=print) -> dict:
    """Build a repository in ``workdir``, serve it, soak it with a publish in the middle; the figures."""
    repo = workdir / "repo"
    for model, package in MODELS.items():
        (repo / model).mkdir(parents=True)
        add_version(repo, model, 1, package)
    x = np.load(FIXTURES / "x_test.npy")[: options.rows].astype(np.float32)
    flags = ["--threads", str(options.threads), "--poll-interval", str(options.poll_interval),
             "--batching" if options.batching else "--no-batching"]
    with served(repo, *flags, "--grpc-port", "0") as server, RssSampler(server.proc.pid) as rss:
        rss_start = rss.now()
        reference = reference_answers(server.url, x)
        swap = Swap(options.after_swap)
        checker = Checker(server.url, x, reference, options.tolerance, swap, grpc_target(server))
        say(f"serving {repo} on {server.url}; warm-up: {options.warmup} requests at concurrency {options.concurrency}")
        warm = run_load(checker.send, options.concurrency, options.warmup, options.time_cap)
        rss_warm = rss.now()
        trigger_at = int(options.requests * options.publish_at)

        def send(session: requests.Session, index: int) -> str | None:
            if index >= trigger_at:
                swap.trigger.set()
            return checker.send(session, index)

        say(f"soak: {options.requests} requests at concurrency {options.concurrency} (cap {options.time_cap:.0f} s); "
            f"publishing {SWAP_MODEL} version 2 after {trigger_at}")
        deadline = time.perf_counter() + options.time_cap
        publisher = threading.Thread(target=swap.publish, daemon=True, name="publisher",
                                     args=(repo, server.url, options.time_cap * options.publish_at, deadline))
        publisher.start()
        load = run_load(send, options.concurrency, options.requests, options.time_cap,
                        more=lambda: not swap.done.is_set())
        publisher.join(timeout=15)
        rss_end = rss.now()
        served_after = requests.get(f"{server.url}/v2/models/{SWAP_MODEL}", timeout=10).json()
        status_after = requests.get(f"{server.url}/v1/models/{SWAP_MODEL}", timeout=10).json()
        problems = log_problems(server)
        checker.channel.close()
        samples = list(rss.samples)
    return report(options, load, warm, swap, checker, samples, (rss_start, rss_warm, rss_end),
                  served_after, status_after, problems)


def report(options: SoakOptions, load: Load, warm: Load, swap: Swap, checker: Checker, samples: list, marks: tuple,
           served_after: dict, status_after: dict, problems: list[str]) -> dict:
    errors = Counter(o.error for o in load.errors)
    ok = [o.seconds for o in load.outcomes if o.error is None]
    per_window = windows(load, options.windows, samples, swap.published)
    first, last = per_window[0], per_window[-1]
    during = []
    if swap.published is not None:  # from the publish until the old version ended and each was last heard
        spans = [swap.old_ended or 0.0] + [at - swap.published for at in (swap.first_new, swap.last_old) if at]
        ends = swap.published + max(spans)
        during = [o for o in load.outcomes if o.started + o.seconds >= swap.published and o.started <= ends]
    run_samples = [(t, b) for t, b in samples if load.started <= t <= load.started + load.wall]
    slope = (float(np.polyfit([t for t, _ in run_samples], [b for _, b in run_samples], 1)[0]) * 60 / MB
             if len(run_samples) > 2 else None)
    start, warm_rss, end = (m / MB for m in marks)
    before, after = warm_rss, end  # RSS just before the publish and once the old version ended
    if swap.published is not None and swap.old_ended is not None:
        before = max([b for t, b in samples if t <= swap.published] or [marks[1]]) / MB
        after = min([b for t, b in samples if t >= swap.published + swap.old_ended] or [marks[2]]) / MB

    def since(at: float | None) -> float | None:
        return None if at is None or swap.published is None else at - swap.published

    versions = [int(v) for v in served_after.get("versions", [])]
    swap_figures = {
        "model": SWAP_MODEL, "from_version": swap.old, "to_version": swap.version,
        "published_at_s": None if swap.published is None else swap.published - load.started,
        "seconds_to_first_new_answer": since(swap.first_new),
        "seconds_to_status_available": swap.status_available, "seconds_to_old_version_end": swap.old_ended,
        "last_old_answer_after_s": since(swap.last_old), "new_version_answers": swap.new_answers,
        "requests_during_swap": len(during), "failed_requests": sum(o.error is not None for o in during),
        "served_after": versions, "new_version_served": swap.version is not None and versions == [swap.version],
        "status_after": status_after.get("model_version_status"), "error": swap.error,
    }
    return {
        "benchmark": "soak_bench", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(),
        "settings": asdict(options), "models": MODELS, "targets": [t.name for t in TARGETS],
        "totals": {"requests": len(load.outcomes), "ok": len(ok), "errors": len(load.errors),
                   "errors_by_reason": dict(errors), "error_examples": checker.examples, "wall_s": load.wall,
                   "rps": len(load.outcomes) / max(load.wall, 1e-9), "stopped_by": load.stopped_by,
                   **percentiles(ok), "warmup_requests": len(warm.outcomes), "warmup_errors": len(warm.errors)},
        "windows": per_window,
        "drift": {"p50_first_ms": first["p50_ms"], "p50_last_ms": last["p50_ms"],
                  "p50_ratio": last["p50_ms"] / first["p50_ms"], "p99_first_ms": first["p99_ms"],
                  "p99_last_ms": last["p99_ms"], "p99_ratio": last["p99_ms"] / first["p99_ms"]},
        "rss": {"start_mb": start, "after_warmup_mb": warm_rss, "end_mb": end,
                "peak_mb": max(b for _, b in samples) / MB if samples else end, "growth_mb": end - warm_rss,
                "growth_pct": 100 * (end - warm_rss) / warm_rss, "slope_mb_per_min": slope,
                "before_publish_mb": before, "after_swap_mb": after, "swap_step_mb": after - before,
                "growth_outside_swap_mb": (before - warm_rss) + (end - after)},
        "swap": swap_figures,
        "by_protocol": by_protocol(load.outcomes, during),
        "server_log_problems": problems[:20],
    }


def by_protocol(outcomes: list, during: list) -> dict:
    """Requests, errors and latency over HTTP (v1 and v2) and over gRPC, and during the swap."""
    figures = {}
    def door(o) -> str:
        return "grpc" if TARGETS[o.index % len(TARGETS)].protocol == "grpc" else "http"

    for name in ("http", "grpc"):
        part = [o for o in outcomes if door(o) == name]
        swapping = [o for o in during if door(o) == name]
        figures[name] = {"requests": len(part), "errors": sum(o.error is not None for o in part),
                         **percentiles([o.seconds for o in part if o.error is None]),
                         "requests_during_swap": len(swapping),
                         "failed_during_swap": sum(o.error is not None for o in swapping)}
    return figures


COLUMNS = [("window", "window"), ("from s", "from_s", "{:.1f}"), ("to s", "to_s", "{:.1f}"),
           ("requests", "requests"), ("errors", "errors"), ("req/s", "rps", "{:.0f}"), ("p50 ms", "p50_ms", "{:.2f}"),
           ("p99 ms", "p99_ms", "{:.2f}"), ("RSS MB", "rss_mb", "{:.1f}"), ("publish", "publish")]


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.3f} s"


def show(result: dict) -> None:
    totals, drift, rss, swap = result["totals"], result["drift"], result["rss"], result["swap"]
    print()
    print(text_table(result["windows"], COLUMNS))
    print(f"\nrequests {totals['requests']} in {totals['wall_s']:.1f} s ({totals['rps']:.0f} req/s, stopped by "
          f"{totals['stopped_by']}), errors {totals['errors']} {totals['errors_by_reason'] or ''}")
    print(f"latency p50 {totals['p50_ms']:.2f} ms, p99 {totals['p99_ms']:.2f} ms; drift last/first window: p50 "
          f"{drift['p50_first_ms']:.2f} -> {drift['p50_last_ms']:.2f} ms (x{drift['p50_ratio']:.2f}), p99 "
          f"{drift['p99_first_ms']:.2f} -> {drift['p99_last_ms']:.2f} ms (x{drift['p99_ratio']:.2f})")
    print(f"server RSS: start {rss['start_mb']:.1f} MB, after warm-up {rss['after_warmup_mb']:.1f} MB, end "
          f"{rss['end_mb']:.1f} MB, peak {rss['peak_mb']:.1f} MB; growth {rss['growth_mb']:+.1f} MB "
          f"({rss['growth_pct']:+.1f} %): {rss['swap_step_mb']:+.1f} MB at the swap, "
          f"{rss['growth_outside_swap_mb']:+.1f} MB over the rest of the run")
    print(f"swap {swap['model']} {swap['from_version']} -> {swap['to_version']}: failed {swap['failed_requests']} of "
          f"{swap['requests_during_swap']} requests during it; new version answered after "
          f"{seconds(swap['seconds_to_first_new_answer'])} (status AVAILABLE after "
          f"{seconds(swap['seconds_to_status_available'])}, old version END after "
          f"{seconds(swap['seconds_to_old_version_end'])}); served after: {swap['served_after']}"
          + (f"; error: {swap['error']}" if swap["error"] else ""))
    for door, figures in result["by_protocol"].items():
        print(f"{door}: {figures['requests']} requests, {figures['errors']} errors, p50 {figures['p50_ms']:.2f} ms, "
              f"p99 {figures['p99_ms']:.2f} ms; {figures['failed_during_swap']} of "
              f"{figures['requests_during_swap']} failed during the swap")
    if result["server_log_problems"]:
        print("server log problems:\n  " + "\n  ".join(result["server_log_problems"]))


def main() -> None:
    defaults = SoakOptions()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=defaults.requests, help="measured requests")
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency, help="client connections")
    parser.add_argument("--time-cap", type=float, default=defaults.time_cap, help="seconds for the run at most")
    parser.add_argument("--threads", type=int, default=defaults.threads, help="server threads")
    parser.add_argument("--poll-interval", type=float, default=defaults.poll_interval, help="server scan period")
    parser.add_argument("--batching", action="store_true", help="serve with dynamic batching on")
    parser.add_argument("--quick", action="store_true", help="2,000 requests, a 60 s cap (soak_bench_quick.json)")
    args = parser.parse_args()
    options = SoakOptions(requests=args.requests, concurrency=args.concurrency, time_cap=args.time_cap,
                          threads=args.threads, poll_interval=args.poll_interval, batching=args.batching)
    if args.quick:
        options.requests, options.warmup, options.time_cap = min(options.requests, 2000), 200, min(options.time_cap, 60)
    workdir = Path(tempfile.mkdtemp(prefix="soak-bench-"))
    try:
        result = run_soak(options, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    show(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("soak_bench_quick.json" if args.quick else "soak_bench.json")
    atomic_write_bytes(out, (json.dumps(result, indent=2) + "\n").encode())
    print(f"\nwrote {out}")
    failed = result["totals"]["errors"] or result["swap"]["failed_requests"] or not result["swap"]["new_version_served"]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
