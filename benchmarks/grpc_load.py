"""A small closed-loop gRPC load generator for the Open Inference ``ModelInfer`` call: ``processes`` client
processes (one a core, like wrk's threads) keep ``concurrency`` calls in flight between them, each sending
the same pre-serialized request (bytes in, bytes out: no message work on the client's side) for ``seconds``;
latencies are measured per call and merged::

    body = infer_request("digits", "image", x[:1], raw=True)          # serialized ModelInferRequest
    figures = run_grpc_load("127.0.0.1:8081", body, concurrency=16, seconds=5)
    figures   # {"requests": 41234, "errors": 0, "rps": 8246.8, "p50_ms": 1.9, "p99_ms": 4.1}

    python benchmarks/grpc_load.py 127.0.0.1:8081 digits --concurrency 16 --seconds 5

The client shares the machine with the server (as wrk does for the HTTP rows), so the figures are
end-to-end on a shared machine. Python's grpcio client: it costs more CPU a call than wrk, which makes the
gRPC rows conservative for both servers alike.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

INFER = "/inference.GRPCInferenceService/ModelInfer"
OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


def infer_request(model: str, input_name: str, x: np.ndarray, raw: bool) -> bytes:
    """A serialized ``ModelInferRequest`` for one FP32 input: raw bytes or typed ``fp32_contents``."""
    from modelpress.runtime.grpc import messages

    request = messages.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name=input_name, datatype="FP32", shape=list(x.shape))
    if raw:
        request.raw_input_contents.append(x.astype("<f4").tobytes())
    else:
        tensor.contents.fp32_contents.extend(x.ravel().tolist())
    return request.SerializeToString()


def first_output(target: str, body: bytes) -> np.ndarray:
    """One call before the load: the first output of the answer (typed or raw), to check the class."""
    import grpc

    from modelpress.runtime.grpc import messages

    with grpc.insecure_channel(target, options=OPTIONS) as channel:
        answer = messages.ModelInferResponse.FromString(channel.unary_unary(INFER)(body, timeout=30))
    if answer.raw_output_contents:
        return np.frombuffer(answer.raw_output_contents[0], dtype="<f4")
    return np.asarray(answer.outputs[0].contents.fp32_contents, dtype=np.float32)


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


def run_grpc_load(target: str, body: bytes, concurrency: int, seconds: float, processes: int = 2) -> dict:
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
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    x = np.random.default_rng(0).random(args.shape, dtype=np.float32)
    body = infer_request(args.model, args.input, x, raw=not args.typed)
    print(json.dumps(run_grpc_load(args.target, body, args.concurrency, args.seconds, args.processes)))


if __name__ == "__main__":
    main()
