"""Per-request CPU of the serving path in process (no sockets): what each door costs beyond the transport.

Three cases per model, each the code a door runs for one single-row request:
- ``grpc``: the gRPC servicer's whole ModelInfer handler (parse, token check, data plane, answer, metrics, access
  log) called with the serialized request, as grpcio calls it, without the transport;
- ``http``: the v2 infer route as one WSGI call (the fast path: JSON decode, data plane, JSON encode);
- ``plane``: ``run_inference`` alone, the data plane both doors share (checkout, checks, interpreter pool, invoke).

Each case runs ``--calls`` times per run, ``--runs`` runs; the figure is the thread CPU time per call of the
fastest run (the least disturbed on a shared machine), with the slowest beside it. Compare code side by side
by running this on two checkouts in turns. Models: the digits fixtures (float32 and int8) and, when
``artifacts/peers/fer`` exists (``benchmarks/peer_bench.py --prepare``), fer 64x64. Runtime venv (no TensorFlow)::

    .venv-runtime/bin/python benchmarks/plane_cpu_bench.py [--calls 1500] [--runs 5]

Prints a table and writes benchmarks/results/plane_cpu_bench.json.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modelpress.atomic import atomic_write_bytes  # noqa: E402
from modelpress.latency import machine_info  # noqa: E402
from modelpress.tables import text_table  # noqa: E402
from modelpress.testing.grpc import infer_body, model_infer_in_process  # noqa: E402
from modelpress.testing.repository import build_repository  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
FER = ROOT / "artifacts" / "peers" / "fer"
COLUMNS = [("case", "case"), ("model", "model"), ("us/call (best run)", "best_us", "{:.1f}"),
           ("us/call (worst run)", "worst_us", "{:.1f}")]


def cases(app) -> dict[tuple[str, str], Callable[[], object]]:
    """(case, model) -> a call answering one single-row request, each checked once before it is timed."""
    from modelpress.runtime.inference import run_inference

    runtime = app.modelpress
    model_infer = model_infer_in_process(runtime)
    rng = np.random.default_rng(0)
    found: dict[tuple[str, str], Callable[[], object]] = {}
    for model in ("digits", "int8", "fer"):
        if model not in runtime.registry.model_names():
            continue
        record = runtime.registry.lookup_model(model)
        spec = record.versions[max(record.versions)].manifest.inputs[0]
        shape = [1] + [d if d and d > 0 else 1 for d in spec.shape[1:]]
        x = rng.random(shape, dtype=np.float32)
        grpc_body = infer_body(model, spec.name, x, raw=True)
        http_body = json.dumps({"inputs": [{"name": spec.name, "shape": shape, "datatype": "FP32",
                                            "data": x.ravel().tolist()}]}).encode()

        def http(body=http_body, path=f"/v2/models/{model}/infer") -> bytes:
            status = []
            environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "CONTENT_LENGTH": str(len(body)),
                       "CONTENT_TYPE": "application/json", "wsgi.input": io.BytesIO(body),
                       "REMOTE_ADDR": "127.0.0.1", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080",
                       "wsgi.url_scheme": "http"}
            answer = b"".join(app.wsgi_app(environ, lambda code, headers, *rest: status.append(code)))
            if not status or not status[0].startswith("200"):
                raise RuntimeError(f"HTTP {status}: {answer[:300]!r}")
            return answer

        found[("grpc", model)] = lambda body=grpc_body: model_infer(body)
        found[("http", model)] = http
        found[("plane", model)] = lambda m=model, name=spec.name, x=x: run_inference(runtime, m, None, [(name, x)])
        for case in ("grpc", "http", "plane"):
            if not found[(case, model)]():
                raise RuntimeError(f"{case}/{model} gave no answer")
    return found


def timed(call: Callable[[], object], calls: int, runs: int) -> list[float]:
    """Thread CPU microseconds per call, one figure per run (after a warm-up)."""
    for _ in range(min(200, calls)):
        call()
    figures = []
    for _ in range(runs):
        started = time.thread_time_ns()
        for _ in range(calls):
            call()
        figures.append((time.thread_time_ns() - started) / calls / 1000)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1500, help="calls per run")
    parser.add_argument("--runs", type=int, default=5, help="runs per case (the best is the figure)")
    args = parser.parse_args()
    from modelpress.runtime import create_app

    with tempfile.TemporaryDirectory(prefix="plane-cpu-") as tmp:
        repo = build_repository(Path(tmp) / "repo", ROOT / "tests" / "runtime" / "fixtures" / "packages")
        if (FER / "model.tflite").is_file():
            shutil.copytree(FER, repo / "fer" / "1")
        app = create_app({"repository": str(repo), "poll_interval": 0, "interpreter_threads": 1})
        try:
            rows = []
            for (case, model), call in cases(app).items():
                figures = timed(call, args.calls, args.runs)
                rows.append({"case": case, "model": model, "best_us": min(figures), "worst_us": max(figures),
                             "runs_us": [round(f, 1) for f in figures]})
        finally:
            app.modelpress.close()
    print(text_table(rows, COLUMNS))
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "plane_cpu_bench", "calls": args.calls, "runs": args.runs,
              "figure": "thread CPU time per call of the fastest run, in process (no sockets, no transport)",
              "machine": machine_info(), "rows": rows}
    atomic_write_bytes(RESULTS / "plane_cpu_bench.json", json.dumps(result, indent=2).encode())


if __name__ == "__main__":
    main()
