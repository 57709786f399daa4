"""Closed-loop gRPC load for the Open Inference ``ModelInfer`` call, the same pre-serialized request over and
over for ``seconds`` with ``concurrency`` calls in flight; two generators behind one call::

    body = infer_body("digits", "image", x[:1], raw=True)             # serialized ModelInferRequest
    figures = run_grpc_load("127.0.0.1:8081", body, concurrency=16, seconds=5)   # h2load when on PATH
    figures   # {"requests": 41234, "errors": 0, "rps": 8246.8, "p50_ms": 1.9, "p99_ms": 4.1,
              #  "generator": "h2load", "client_cpu_ms": 0.02}

    python benchmarks/grpc_load.py 127.0.0.1:8081 digits --concurrency 16 --seconds 5 [--generator python]

- ``h2load`` (nghttp2's HTTP/2 load generator, C; Debian ``nghttp2-client``), the default when it is on PATH:
  gRPC is HTTP/2, so it POSTs the framed request (a 0 flag byte, a 4-byte big-endian length, the message) to
  ``/inference.GRPCInferenceService/ModelInfer`` with ``content-type: application/grpc`` over 2 connections
  (as many streams each as make the concurrency). It sees HTTP 200 even for a failed call (the gRPC status is
  in the trailers), so the answers are checked by size: one Python call first gives the length of a good
  framed answer, and the DATA bytes h2load received must be that length times the calls; every call short of
  it counts as an error (a failed call has no DATA). It costs a few microseconds of CPU a call.
- ``python``: 2 grpcio client processes (one a core, like wrk's threads), threads keeping the calls in flight;
  it costs more CPU a call than the servers it measures on a 2-core machine, so it compresses ratios.

The client shares the machine with the server (as wrk does for the HTTP rows); ``client_cpu_ms`` is the
generator's own CPU time a call, so a reader sees how much of the cores it took.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from modelpress.testing.grpc import frame, infer_body, infer_outputs  # noqa: E402

INFER = "/inference.GRPCInferenceService/ModelInfer"
OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
GENERATORS = ("h2load", "python")



def probe(target: str, body: bytes) -> tuple[np.ndarray, int]:
    """One call before the load: the first output of the answer (typed or raw), to check the class, and the
    length of the framed answer on the wire, to check h2load's answers by size."""
    import grpc

    with grpc.insecure_channel(target, options=OPTIONS) as channel:
        raw = channel.unary_unary(INFER)(body, timeout=30)
    output = next(iter(infer_outputs(raw)[1].values())).ravel()
    return output, len(frame(raw))


def first_output(target: str, body: bytes) -> np.ndarray:
    """The first output of one call's answer (see :func:`probe`)."""
    return probe(target, body)[0]


def default_generator() -> str:
    return "h2load" if shutil.which("h2load") else "python"


def run_grpc_load(target: str, body: bytes, concurrency: int, seconds: float, processes: int = 2,
                  generator: str | None = None) -> dict:
    """``concurrency`` calls in flight for ``seconds`` with ``generator`` (h2load when on PATH, else the
    Python client); the figures and the generator's own CPU time a call."""
    generator = generator or default_generator()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    if generator == "h2load":
        figures = run_h2load(target, body, concurrency, seconds, probe(target, body)[1], connections=processes)
    elif generator == "python":
        figures = run_python_load(target, body, concurrency, seconds, processes)
    else:
        raise ValueError(f"unknown generator {generator!r}: expected one of {', '.join(GENERATORS)}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {**figures, "generator": generator, "client_cpu_ms": cpu * 1000 / max(1, figures["requests"])}


# --- h2load ----------------------------------------------------------------------------------------

_DONE = re.compile(r"finished in ([\d.]+)(m?s),")
_REQUESTS = re.compile(r"requests: (\d+) total, \d+ started, \d+ done")
_DATA = re.compile(r"traffic: .*\((\d+)\) data")
_STATUS = re.compile(r"status codes: (\d+) 2xx")


def run_h2load(target: str, body: bytes, concurrency: int, seconds: float, answer_bytes: int,
               connections: int = 2) -> dict:
    """h2load over ``connections`` HTTP/2 connections (fewer when the concurrency does not split evenly)
    with the rest of the concurrency as streams on each; one h2load thread. A call counts as good when its
    answer arrived whole: the DATA bytes received are ``answer_bytes`` times the good calls."""
    connections = max(c for c in range(1, max(1, connections) + 1) if concurrency % c == 0)
    with tempfile.TemporaryDirectory(prefix="grpc-load-") as tmp:
        request, log = Path(tmp) / "request.bin", Path(tmp) / "calls.tsv"
        request.write_bytes(frame(body))
        command = ["h2load", "-t", "1", "-c", str(connections), "-m", str(concurrency // connections),
                   "-D", str(max(1, round(seconds))), "-H", "content-type: application/grpc", "-H", "te: trailers",
                   "-d", str(request), "--log-file", str(log), f"http://{target}{INFER}"]
        out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
        if out.returncode != 0 or not _REQUESTS.search(out.stdout):
            raise RuntimeError(f"h2load failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        micros = [int(fields[2]) for fields in (line.split("\t") for line in log.read_text().splitlines())
                  if len(fields) >= 3 and fields[1] == "200"]
    return h2load_figures(out.stdout, answer_bytes, micros)


def h2load_figures(report: str, answer_bytes: int, micros: list[int]) -> dict:
    """req/s of the good calls, errors (every call whose answer was not one whole good answer), p50/p99 from
    the per-call log (HTTP-level latency of the 2xx calls; a gRPC error answers fast, so with errors the
    percentiles are of every 2xx call, the good ones and the refused)."""
    value, unit = _DONE.search(report).groups()
    wall = float(value) / (1000 if unit == "ms" else 1)
    total = int(_REQUESTS.search(report).group(1))
    data = int(_DATA.search(report).group(1))
    ok_http = int(_STATUS.search(report).group(1))
    # a failed call has no DATA; bytes that are not whole good answers mean answers unlike the probe's: the
    # run cannot say which calls were good, so none counts
    good = min(ok_http, data // answer_bytes) if data % answer_bytes == 0 else 0
    errors = total - good
    if data % answer_bytes:
        print(f"grpc_load: h2load received {data} answer bytes for {total} calls, not a multiple of a good "
              f"answer's {answer_bytes}: every call counted as an error", file=sys.stderr)
    elif errors:
        print(f"grpc_load: {errors} of {total} calls had no answer (a gRPC error: status in the trailers)",
              file=sys.stderr)
    ms = np.sort(np.asarray(micros, dtype=np.float64)) / 1000
    return {"requests": total, "errors": errors, "rps": good / wall if wall else 0.0,
            "p50_ms": float(np.percentile(ms, 50)) if len(ms) else float("nan"),
            "p99_ms": float(np.percentile(ms, 99)) if len(ms) else float("nan"), "answer_bytes": answer_bytes}


# --- the Python client -----------------------------------------------------------------------------

def _client(target: str, body: bytes, concurrency: int, go, seconds: float, results) -> None:
    """``concurrency`` threads, each sending the next call when its answer came (grpcio releases the GIL
    while a call waits; its future callbacks, tried first, serialized the calls of a process here)."""
    import grpc

    channel = grpc.insecure_channel(target, options=OPTIONS)
    grpc.channel_ready_future(channel).result(timeout=60)
    call = channel.unary_unary(INFER)
    latencies: list[float] = []
    errors = [0]
    results.put("ready")
    go.wait(120)  # every process connected: the clock starts for all at once
    stop_at = time.time() + seconds

    def loop() -> None:
        while time.time() < stop_at:
            started = time.perf_counter()
            try:
                call(body, timeout=30)
            except grpc.RpcError as err:
                errors[0] += 1
                if errors[0] == 1:  # one line says why, instead of a bare count
                    print(f"grpc_load: first failed call: {err.code().name} {err.details()}", file=sys.stderr)
                continue
            latencies.append(time.perf_counter() - started)  # list.append is atomic under the GIL

    threads = [threading.Thread(target=loop) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    channel.close()
    results.put((latencies, errors[0]))


def run_python_load(target: str, body: bytes, concurrency: int, seconds: float, processes: int = 2) -> dict:
    """``concurrency`` calls in flight for ``seconds`` from ``min(processes, concurrency)`` processes."""
    context = multiprocessing.get_context("spawn")  # a forked grpc client is not safe; spawn starts clean
    results = context.Queue()
    processes = max(1, min(processes, concurrency))
    shares = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    go = context.Event()
    workers = [context.Process(target=_client, args=(target, body, share, go, seconds, results))
               for share in shares]
    for worker in workers:
        worker.start()
    for _ in workers:  # on a busy machine starting a process takes seconds: the clock waits for all of them
        results.get(timeout=120)
    go.set()
    latencies, errors = [], 0
    for _ in workers:
        got, failed = results.get(timeout=seconds + 120)
        latencies += got
        errors += failed
    for worker in workers:
        worker.join(timeout=30)
    if not latencies:
        return {"requests": errors, "errors": errors, "rps": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan")}
    ms = np.sort(np.asarray(latencies)) * 1000
    return {"requests": len(ms) + errors, "errors": errors, "rps": len(ms) / seconds,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="host:port of an Open Inference gRPC server")
    parser.add_argument("model", help="digits (the 8x8 test fixture's input) or any model taking one FP32 input")
    parser.add_argument("--input", default="image")
    parser.add_argument("--shape", type=int, nargs="+", default=[1, 8, 8, 1])
    parser.add_argument("--typed", action="store_true", help="typed fp32_contents instead of raw bytes")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--processes", type=int, default=2,
                        help="client processes (python) or HTTP/2 connections (h2load)")
    parser.add_argument("--generator", choices=GENERATORS, default=default_generator(),
                        help="h2load (default when on PATH) or the Python grpcio client")
    args = parser.parse_args()
    x = np.random.default_rng(0).random(args.shape, dtype=np.float32)
    body = infer_body(args.model, args.input, x, raw=not args.typed)
    print(json.dumps(run_grpc_load(args.target, body, args.concurrency, args.seconds, args.processes,
                                   args.generator)))


if __name__ == "__main__":
    main()
