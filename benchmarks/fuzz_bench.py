"""Fuzz campaign: 10,000 hostile requests against a real `modelpress serve` process on loopback, seeded and
time-capped, over a repository built from the committed fixture packages (no TensorFlow needed).

First schemathesis generates positive and negative requests for every operation of the served
/openapi.json; then the hostile generator of tests/runtime/fuzzing.py fills the rest of the budget (wrong
types, shapes and dtypes; huge and deeply nested JSON; broken Inference-Header-Content-Length; invalid
base64; unknown and tricky names; wrong methods, content types and tokens). Every answer must be below
500 and every error a JSON object with a message; the server must still be alive and answer
/v2/health/live at the end, with its memory bounded.

The same server listens for Open Inference gRPC, and --grpc-cases hostile calls go to it after the HTTP
ones (modelpress/testing/grpc.py): random bytes to every RPC; ModelInferRequests that parse but are wrong
(datatypes, shapes contents do not fill, huge and negative dimensions, unknown models, versions and
outputs, raw and typed contents mixed or missing) and near-valid ones with one thing wrong; the other RPCs
with hostile names and parameters; missing and wrong tokens (non-ASCII ones sent raw); messages over the
cap; and broken framing sent with h2 (a length prefix that lies, a compressed flag with no encoding, two
messages, none). Every answer must be a gRPC status a bad request may get (INVALID_ARGUMENT, NOT_FOUND,
RESOURCE_EXHAUSTED, UNAUTHENTICATED...), never the servicer's INTERNAL; broken framing may also get grpc's
own transport answer (INTERNAL "Compression bit set but no encoding configured", as the gRPC spec says,
counted apart); then ServerLive and a correct ModelInfer must answer. Prints tables and writes
benchmarks/results/fuzz_bench.json.
The same seed sends the same requests (for the same code): they are drawn before any is sent, in a child process
with PYTHONHASHSEED and hypothesis's storage pinned (see repeatable()).

    .venv-runtime/bin/python benchmarks/fuzz_bench.py [--cases 10000] [--time-cap 600] [--seed 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modelpress.atomic import atomic_write_bytes  # noqa: E402
from modelpress.tables import text_table  # noqa: E402
from modelpress.testing.fuzz_driver import Tally, alive, http_sender, plan, run_campaign, run_schemathesis  # noqa: E402
from modelpress.testing.fuzzing import Targets, hostile_requests, routes_of  # noqa: E402
from modelpress.testing.grpc import grpc_target  # noqa: E402
from modelpress.testing.grpc_fuzzing import GrpcTargets, hostile_grpc  # noqa: E402
from modelpress.testing.repository import build_repository  # noqa: E402
from modelpress.testing.server import ServerProcess  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TOKEN = "fuzz-bench-token"
PINNED = "MODELPRESS_FUZZ_BENCH_PINNED"
STATUS_COLUMNS = ["200", "308", "400", "401", "404", "405", "413", "503", "none"]


class MemoryWatch:
    """The server process's resident memory, sampled every ``every`` requests from the sending thread itself (a
    sampling thread would shift hypothesis's draws and so the requests a seed gives)."""

    def __init__(self, pid: int, every: int = 20):
        self.process, self.every, self.count = psutil.Process(pid), every, 0
        self.start_mib = self.peak_mib = self._rss()

    def _rss(self) -> float:
        total = self.process.memory_info().rss
        for child in self.process.children(recursive=True):  # granian's workers hold the models
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total / 2**20

    def watch(self, send):
        def watched(request):
            answer = send(request)
            self.count += 1
            if self.count % self.every == 0 and self.process.is_running():
                self.peak_mib = max(self.peak_mib, self._rss())
            return answer
        return watched

    def stop(self) -> dict:
        end = self._rss()
        self.peak_mib = max(self.peak_mib, end)
        return {"rss_start_mib": round(self.start_mib, 1), "rss_peak_mib": round(self.peak_mib, 1),
                "rss_end_mib": round(end, 1)}


def rows_of(counts: dict, key: str) -> list[dict]:
    rows = []
    for name, statuses in sorted(counts.items()):
        row = {key: name, "cases": sum(statuses.values()), **{s: statuses.get(s, 0) for s in STATUS_COLUMNS},
               "5xx": sum(n for s, n in statuses.items() if s.isdigit() and int(s) >= 500)}
        rows.append(row)
    return rows


def columns(key: str) -> list[tuple]:
    return [(key, key), ("cases", "cases")] + [(s, s) for s in STATUS_COLUMNS] + [("5xx", "5xx")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000, help="requests in all (default 10000)")
    parser.add_argument("--time-cap", type=float, default=600, help="seconds in all (default 600)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--schemathesis-examples", type=int, default=60, help="examples per operation and mode")
    parser.add_argument("--max-body-bytes", type=int, default=1 << 20)
    parser.add_argument("--grpc-cases", type=int, default=3000, help="hostile gRPC calls after the HTTP ones")
    args = parser.parse_args()

    targets = Targets(token=TOKEN, max_body=args.max_body_bytes)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fuzz-bench-") as tmp:
        repo = build_repository(Path(tmp) / "repo", ROOT / "tests" / "runtime" / "fixtures" / "packages")
        server = ServerProcess(repo, "--poll-interval", "0", "--max-body-bytes", str(args.max_body_bytes),
                               "--grpc-port", "0", env={"MODELPRESS_TOKENS": TOKEN, "MODELPRESS_ACCESS_LOG": "false"})
        try:
            memory = MemoryWatch(server.proc.pid)
            routes = routes_of(requests.get(server.url + "/openapi.json", timeout=10).json())
            hostile = plan(hostile_requests(routes, targets), args.cases, args.seed)  # drawn first: repeatable
            grpc_cases = plan(hostile_grpc(GrpcTargets(token=TOKEN, max_body=args.max_body_bytes)),
                              args.grpc_cases, args.seed) if args.grpc_cases else []
            tally = Tally()
            run_schemathesis(server.url, targets, max_examples=args.schemathesis_examples,
                             time_cap=args.time_cap / 2, seed_value=args.seed, tally=tally)
            schema_cases, schema_seconds = tally.cases, tally.seconds
            send = memory.watch(http_sender(server.url, requests.Session(), timeout=30))
            run_campaign(hostile[:max(0, args.cases - tally.cases)], send, tally=tally,
                         time_cap=max(1.0, args.time_cap - (time.monotonic() - started)))
            reloaded = reload_models(server.url, targets.models)  # the HTTP campaign unloads some, at random
            grpc_leg = run_grpc_leg(grpc_target(server), grpc_cases, memory,
                                    time_cap=max(1.0, args.time_cap - (time.monotonic() - started)))
            liveness = alive(send)
            metrics_lines = requests.get(server.url + "/metrics", timeout=10).text.count("\n")
            running = server.proc.poll() is None
            server_memory = memory.stop() if running else {}
        finally:
            log = server.stop()
    seconds = time.monotonic() - started

    print(text_table(rows_of(tally.by_route, "route"), columns("route")))
    print()
    print(text_table(rows_of(tally.by_category, "category"), columns("category")))
    print()
    print(text_table(grpc_rows(grpc_leg["by_category"]), grpc_columns()))
    grpc_ok = not grpc_leg["failures"] and not grpc_leg["liveness_problems"]
    passed = not tally.failure_count and not liveness and running and grpc_ok
    print(f"\n{tally.cases} cases ({schema_cases} schemathesis in {schema_seconds:.0f} s, {tally.cases - schema_cases} "
          f"hostile) in {seconds:.0f} s; statuses {dict(sorted(tally.statuses.items()))}; 5xx {tally.server_errors}; "
          f"failures {tally.failure_count}; server alive {running and not liveness}; server RSS "
          f"{server_memory.get('rss_start_mib')} -> peak {server_memory.get('rss_peak_mib')} MiB; "
          f"{'PASS' if passed else 'FAIL'}")
    print(f"gRPC: {grpc_leg['cases']} hostile calls in {grpc_leg['seconds']:.0f} s; statuses {grpc_leg['statuses']}; "
          f"failures {grpc_leg['failure_count']}; answered a correct call after: {not grpc_leg['liveness_problems']}")
    for failure in [*tally.failures[:5], *grpc_leg["failures"][:5]]:
        print("\nFAILURE", failure["problems"][0][:600], "\n   ", failure["case"][:600])
    result = {
        "benchmark": "fuzz_bench", "passed": passed,
        "config": {"cases": args.cases, "time_cap_s": args.time_cap, "seed": args.seed,
                   "schemathesis_examples_per_operation_and_mode": args.schemathesis_examples,
                   "max_body_bytes": args.max_body_bytes, "routes": len(routes)},
        "totals": {"cases": tally.cases, "schemathesis_cases": schema_cases,
                   "hostile_cases": tally.cases - schema_cases, "seconds": round(seconds, 1),
                   "statuses": dict(sorted(tally.statuses.items())),
                   "server_errors_5xx": tally.server_errors, "failures": tally.failure_count},
        "server": {"alive_after": running and not liveness, "liveness_problems": liveness,
                   "metrics_lines_after": metrics_lines, **server_memory,
                   "internal_errors_logged": log.count("unexpected error on")},
        "grpc": {"models_reloaded_before": reloaded, **grpc_leg},
        "by_route": {k: dict(v) for k, v in sorted(tally.by_route.items())},
        "by_category": {k: dict(v) for k, v in sorted(tally.by_category.items())},
        "failures": tally.failures,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(RESULTS / "fuzz_bench.json", (json.dumps(result, indent=2) + "\n").encode())
    print(f"wrote {RESULTS / 'fuzz_bench.json'}")
    return 0 if passed else 1


def reload_models(url: str, models: tuple) -> dict:
    """Load every model again through the repository API (the hostile HTTP calls unload some with the right
    token) and wait until each is ready, so the gRPC calls reach the models; each model's load status."""
    statuses = {}
    for model in models:
        answer = requests.post(f"{url}/v2/repository/models/{model}/load", timeout=60,
                               headers={"Authorization": f"Bearer {TOKEN}"})
        statuses[model] = answer.status_code
        deadline = time.monotonic() + 60
        ready = f"{url}/v2/models/{model}/ready"
        while time.monotonic() < deadline and requests.get(ready, timeout=10).status_code != 200:
            time.sleep(0.1)
    return statuses


def run_grpc_leg(target: str, cases: list, memory: MemoryWatch, time_cap: float) -> dict:
    """Send the hostile gRPC ``cases`` in order (stopping at ``time_cap`` seconds), judge every answer, then
    check that the door still answers ServerLive and a correct ModelInfer."""
    from modelpress.testing.grpc import GrpcSender, grpc_alive, grpc_problems

    statuses, by_category, by_rpc, failures, count = Counter(), defaultdict(Counter), defaultdict(Counter), [], 0
    transport = Counter()  # wire cases that grpc's transport answered before modelpress code ran
    sender = GrpcSender(target, timeout=30)
    send = memory.watch(sender)
    started = time.monotonic()
    try:
        for case in cases:
            if time.monotonic() - started > time_cap:
                break
            answer = send(case)
            code = answer.code or "none"
            statuses[code] += 1
            by_category[case.category][code] += 1
            by_rpc[case.rpc][code] += 1
            if case.wire and code in ("INTERNAL", "UNIMPLEMENTED", "RESET"):
                transport[f"{code}: {answer.message[:80]}"] += 1
            found = grpc_problems(case, answer)
            if found:
                count += 1
                if len(failures) < 50:
                    failures.append({"case": repr(case), "problems": found})
        seconds = time.monotonic() - started
        liveness = grpc_alive(sender, TOKEN)
    finally:
        sender.close()
    return {"cases": sum(statuses.values()), "seconds": round(seconds, 1), "statuses": dict(sorted(statuses.items())),
            "failure_count": count, "failures": failures, "liveness_problems": liveness,
            "transport_answers_to_broken_framing": dict(transport.most_common()),
            "by_category": {k: dict(v) for k, v in sorted(by_category.items())},
            "by_rpc": {k: dict(v) for k, v in sorted(by_rpc.items())}}


GRPC_CODES = ["OK", "INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED", "UNAUTHENTICATED", "UNIMPLEMENTED",
              "INTERNAL", "none"]


def grpc_rows(by_category: dict) -> list[dict]:
    return [{"gRPC category": name, "cases": sum(codes.values()), **{c: codes.get(c, 0) for c in GRPC_CODES},
             "other": sum(n for c, n in codes.items() if c not in GRPC_CODES)} for name, codes in by_category.items()]


def grpc_columns() -> list[tuple]:
    return [("gRPC category", "gRPC category"), ("cases", "cases"), *((c, c) for c in GRPC_CODES), ("other", "other")]


def repeatable() -> int:
    """Run this script again with what hypothesis's draws depend on pinned: PYTHONHASHSEED, and an empty
    storage directory (it caches the constants it collects from local modules, and a cached run draws
    differently from a fresh one)."""
    with tempfile.TemporaryDirectory(prefix="fuzz-bench-hypothesis-") as storage:
        env = {**os.environ, "PYTHONHASHSEED": "0", "HYPOTHESIS_STORAGE_DIRECTORY": storage, PINNED: "1"}
        return subprocess.call([sys.executable, *sys.argv], env=env)


if __name__ == "__main__":
    sys.exit(main() if os.environ.get(PINNED) == "1" else repeatable())
