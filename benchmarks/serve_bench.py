"""Serving benchmark: the runtime over real HTTP on loopback against a raw interpreter loop, in one run.

A bounded load generator (concurrency 1, 4 and 16; a fixed request count and a time cap per cell)
sends Open Inference v2 requests with JSON and with binary payloads to a `modelpress serve` process
(waitress), with dynamic batching off and on, on the committed digits CNN (tests/runtime/fixtures). In
the same run it times a raw `TFLiteModel.predict` loop on the same model, one row and batched. Prints a
table and writes benchmarks/results/serve_bench.json.

    .venv-runtime/bin/python benchmarks/serve_bench.py [--requests 400] [--time-cap 15]

Reported against the targets: p50 overhead over a raw invoke (end to end at concurrency 1, and inside
the app from the server's own request-minus-compute time sums), and batched throughput against a raw
batched-invoke loop. Client and server share this machine's cores, so the HTTP numbers include the
client's own cost.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.loadgen import machine, metric_sums, percentiles, run_load, served, v2_body  # noqa: E402
from modelpress.atomic import atomic_write_bytes  # noqa: E402
from modelpress.manifest import read_manifest  # noqa: E402
from modelpress.tables import text_table  # noqa: E402
from modelpress.tflite_interpreter import TFLiteModel  # noqa: E402

NAME = ["image"]  # the served model's input name
FIXTURES = ROOT / "tests" / "runtime" / "fixtures"
RESULTS = ROOT / "benchmarks" / "results"
COLUMNS = [("batching", "batching"), ("payload", "payload"), ("conc", "concurrency"), ("rows/req", "rows"),
           ("requests", "requests"), ("errors", "errors"), ("req/s", "rps", "{:.0f}"), ("rows/s", "rows_s", "{:.0f}"),
           ("p50 ms", "p50_ms", "{:.3f}"), ("p95 ms", "p95_ms", "{:.3f}"), ("p99 ms", "p99_ms", "{:.3f}"),
           ("mean batch", "mean_batch", "{:.1f}"), ("in-app ms/req", "app_overhead_ms", "{:.3f}")]


def raw_loop(path: Path, x: np.ndarray, batch: int, runs: int) -> dict:
    model = TFLiteModel(path, threads=1)
    sample = x[:batch]
    for _ in range(20):
        model.predict([sample])
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        model.predict([sample])
        times.append(time.perf_counter() - started)
    return {"batch": batch, "runs": runs, **percentiles(times), "rows_s": batch * runs / sum(times)}


SUMS = ("request_duration_seconds_sum", "request_duration_seconds_count", "compute_duration_seconds_sum",
        "batch_size_sum", "batch_size_count")


def load(url: str, payload: bytes, headers: dict, concurrency: int, total: int, cap: float) -> dict:
    def send(session, index):
        answer = session.post(url, data=payload, headers=headers, timeout=30)
        return None if answer.status_code == 200 else f"status {answer.status_code}"

    return run_load(send, concurrency, total, cap).summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per cell")
    parser.add_argument("--time-cap", type=float, default=15.0, help="seconds per cell at most")
    parser.add_argument("--threads", type=int, default=16, help="server threads")
    parser.add_argument("--package", type=Path, default=FIXTURES / "packages" / "float32",
                        help="a float32 model package to serve (default: the digits CNN; other packages get "
                             "uniform random inputs of their input shape)")
    args = parser.parse_args()
    package = args.package
    manifest = read_manifest(package)
    NAME[0] = manifest.inputs[0].name
    if package == FIXTURES / "packages" / "float32":
        x = np.load(FIXTURES / "x_test.npy")
    else:
        x = np.random.default_rng(0).uniform(size=[100, *manifest.inputs[0].shape[1:]]).astype(np.float32)
    workdir = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    shutil.copytree(package, workdir / "repo" / "digits" / "1")  # served under the name digits
    model_path = package / "model.tflite"
    raw = {"batch_1": raw_loop(model_path, x, 1, 2000), "batch_16": raw_loop(model_path, x, 16, 500),
           "batch_64": raw_loop(model_path, x, 64, 300)}
    rows = []
    for batching in (False, True):
        flags = ["--threads", str(args.threads), "--interpreter-threads", "1"]
        flags += (["--batching", "--max-batch-size", "64", "--max-queue-delay-ms", "1"] if batching
                  else ["--no-batching"])
        with served(workdir / "repo", "--poll-interval", "0", *flags) as server:
            url = server.url + "/v2/models/digits/infer"
            for payload_kind in ("json", "binary"):
                for concurrency, rows_per_request in ((1, 1), (4, 1), (16, 1), (4, 16)):
                    payload, headers = v2_body(x[:rows_per_request], NAME[0], payload_kind == "binary")
                    load(url, payload, headers, concurrency, 30, 5)  # warm up connections and interpreters
                    before = metric_sums(server, "digits", SUMS)
                    cell = load(url, payload, headers, concurrency, args.requests, args.time_cap)
                    after = metric_sums(server, "digits", SUMS)
                    delta = {k: after[k] - before[k] for k in after}
                    count = max(delta["request_duration_seconds_count"], 1)
                    cell.update(batching="on" if batching else "off", payload=payload_kind, concurrency=concurrency,
                                rows=rows_per_request, rows_s=cell["rps"] * rows_per_request,
                                mean_batch=delta["batch_size_sum"] / max(delta["batch_size_count"], 1),
                                app_overhead_ms=1000 * (delta["request_duration_seconds_sum"]
                                                        - delta["compute_duration_seconds_sum"]) / count)
                    rows.append(cell)
                    print(text_table([cell], COLUMNS).splitlines()[-1], flush=True)
    shutil.rmtree(workdir, ignore_errors=True)

    def pick(batching, payload, conc, nrows):
        return next(r for r in rows if (r["batching"], r["payload"], r["concurrency"], r["rows"]) ==
                    (batching, payload, conc, nrows))

    single = pick("off", "binary", 1, 1)
    best_batched = max((r for r in rows if r["batching"] == "on"), key=lambda r: r["rows_s"])
    summary = {
        "raw_invoke_p50_ms": raw["batch_1"]["p50_ms"],
        "end_to_end_overhead_p50_ms_binary": single["p50_ms"] - raw["batch_1"]["p50_ms"],
        "end_to_end_overhead_p50_ms_json": pick("off", "json", 1, 1)["p50_ms"] - raw["batch_1"]["p50_ms"],
        "in_app_overhead_ms_binary": single["app_overhead_ms"],
        "target_overhead_ms": 1.0,
        "raw_batched_rows_s": raw["batch_64"]["rows_s"],
        "best_served_rows_s": best_batched["rows_s"],
        "best_served_cell": {k: best_batched[k] for k in ("payload", "concurrency", "rows")},
        "batched_throughput_ratio": best_batched["rows_s"] / raw["batch_64"]["rows_s"],
        "batched_ratio_at_16_rows_per_request": pick("on", "binary", 4, 16)["rows_s"] / raw["batch_16"]["rows_s"],
        "target_ratio": 0.8,
    }
    print()
    print(text_table(rows, COLUMNS))
    print()
    print("raw invoke loop: " + ", ".join(f"batch {v['batch']}: p50 {v['p50_ms']:.3f} ms, {v['rows_s']:.0f} rows/s"
                                          for v in raw.values()))
    for key, value in summary.items():
        print(f"  {key:40s} {value:.3f}" if isinstance(value, float) else f"  {key:40s} {value}")
    result = {"benchmark": "serve_bench", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": machine(),
              "model": str(package), "input_shape": manifest.inputs[0].shape,
              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "raw": raw, "cells": rows, "summary": summary}
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "serve_bench.json" if package == FIXTURES / "packages" / "float32" else f"serve_bench_{manifest.name}.json"
    atomic_write_bytes(RESULTS / name, (json.dumps(result, indent=2) + "\n").encode())
    print(f"\nwrote {RESULTS / name}")


if __name__ == "__main__":
    main()
