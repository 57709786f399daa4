"""Fleet benchmark: 20 models served under a memory budget that fits 5, with a skewed request mix.

Twenty models built from the committed digits packages (float32 and int8, alternating) in one repository;
`modelpress serve --max-memory B` where B is five times the largest model's package estimate, so five fit
at once. --concurrency keep-alive clients send Open Inference v2 binary requests of real held-out digits
to a model drawn from a Zipf distribution (exponent --zipf: a few models take most of the traffic, a long
tail the rest), for --duration seconds. The same run without a budget (all 20 loaded) is the baseline.

    .venv/bin/python benchmarks/fleet_bench.py [--duration 60] [--concurrency 4] [--zipf 1.1]
    .venv/bin/python benchmarks/fleet_bench.py --quick           # 15 s per run, writes fleet_bench_quick.json

Every answer is checked (status 200, values equal to the package's own interpreter). A request is cold
when the server reports an on-demand load in its ``Server-Timing`` header, warm otherwise. Reported
(table, then benchmarks/results/fleet_bench.json and a plot fleet_bench_rss.png of RSS over time): hit
rate (warm share), warm and cold p50 / p99, loads and evictions per minute, on-demand waits that timed
out, RSS (min / max / end) against the budget.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.loadgen import RssSampler, log_problems, machine, percentiles, run_load, served, v2_body, v2_outputs  # noqa: E402,I001
from modelpress.atomic import atomic_write_bytes  # noqa: E402
from modelpress.manifest import read_manifest  # noqa: E402
from modelpress.runtime.memory import package_estimate  # noqa: E402
from modelpress.tables import text_table  # noqa: E402
from modelpress.testing.server import serving_pid  # noqa: E402
from modelpress.tflite_interpreter import TFLiteModel  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
FIXTURES = ROOT / "tests" / "runtime" / "fixtures"  # the committed packages (data files, not test code)
PACKAGES = FIXTURES / "packages"
MB = 1024 * 1024
MODELS = 20
FITS = 5
THREADS = 4  # server threads = interpreters per model


def build_repository(root: Path, pool_size: int) -> dict[str, str]:
    """m00..m19, float32 and int8 packages alternating, each with ``pool_size`` interpreters (the digits
    models are tiny: a pool makes each weigh a few MiB, closer to a real model); returns model -> package."""
    packages = {}
    for i in range(MODELS):
        name, package = f"m{i:02d}", ("float32", "int8")[i % 2]
        shutil.copytree(PACKAGES / package, root / name / "1")
        (root / name / "config.yaml").write_text(f"pool_size: {pool_size}\n")
        packages[name] = package
    return packages


def budget_for(root: Path, packages: dict[str, str], pool_size: int) -> int:
    """Five times the largest package estimate: five models fit, a sixth does not."""
    sizes = [package_estimate(root / name / "1", read_manifest(root / name / "1"), pool_size) for name in packages]
    return FITS * max(sizes)


def zipf_mix(count: int, exponent: float, seed: int = 0) -> np.ndarray:
    """Model indexes 0..19 drawn with probability proportional to 1 / rank**exponent (rank 1 = m00)."""
    weights = 1.0 / np.arange(1, MODELS + 1) ** exponent
    return np.random.default_rng(seed).choice(MODELS, size=count, p=weights / weights.sum())


def lru_hit_rate(exponent: float, count: int = 100_000) -> float:
    """The hit rate an ideal LRU cache of FITS models gets on the same mix, one request at a time."""
    cache: OrderedDict[int, None] = OrderedDict()
    hits = 0
    for model in zipf_mix(count, exponent, seed=1):
        if model in cache:
            hits += 1
            cache.move_to_end(model)
        else:
            cache[model] = None
            if len(cache) > FITS:
                cache.popitem(last=False)
    return hits / count


def metric_total(url: str, name: str, **labels: str) -> float:
    text = requests.get(url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()))


def run(repo: Path, packages: dict[str, str], budget: int | None, args, x: np.ndarray) -> dict:
    names = sorted(packages)
    mix = zipf_mix(1_000_000, args.zipf)
    expected = {p: TFLiteModel(PACKAGES / p / "model.tflite").predict([x])[0] for p in set(packages.values())}
    body, headers = v2_body(x, "image", binary=True)
    cold: dict[int, bool] = {}
    extra = ["--max-memory", str(budget)] if budget else []
    with served(repo, "--poll-interval", "0", "--threads", str(THREADS), "--server", args.server, *extra) as server:
        def send(session: requests.Session, index: int) -> str | None:
            name = names[mix[index % len(mix)]]
            answer = session.post(f"{server.url}/v2/models/{name}/infer", data=body, headers=headers, timeout=60)
            cold[index] = "Server-Timing" in answer.headers
            if answer.status_code != 200:
                return f"status {answer.status_code}"
            _, outputs = v2_outputs(answer)
            if not np.allclose(outputs["output_0"], expected[packages[name]], rtol=1e-5, atol=1e-6):
                return "wrong values"
            return None

        with RssSampler(serving_pid(server.proc.pid), interval=0.5) as rss:
            start_rss = rss.now()
            load = run_load(send, concurrency=args.concurrency, total=10**9, cap=args.duration)
            end_rss = rss.now()
        minutes = load.wall / 60
        loads = metric_total(server.url, "modelpress_model_loads_total")
        evictions = metric_total(server.url, "modelpress_model_evictions_total")
        timeouts = metric_total(server.url, "modelpress_on_demand_waits_total", outcome="timeout")
        resident = sum(1 for r in requests.post(server.url + "/v2/repository/index", timeout=10).json()
                       if r["state"] == "READY")
        problems = log_problems(server)
    ok = [o for o in load.outcomes if o.error is None]
    warm = [o.seconds for o in ok if not cold.get(o.index)]
    cold_s = [o.seconds for o in ok if cold.get(o.index)]
    errors: dict[str, int] = {}
    for o in load.errors:
        errors[o.error] = errors.get(o.error, 0) + 1
    samples = [(t - load.started, b) for t, b in rss.samples]
    return {
        "budget": "fits 5" if budget else "none (all 20)", "budget_mb": budget / MB if budget else None,
        "requests": len(load.outcomes), "ok": len(ok), "errors": errors, "rps": len(ok) / load.wall,
        "hit_rate": len(warm) / max(len(ok), 1), "warm": percentiles(warm), "cold": percentiles(cold_s),
        "cold_requests": len(cold_s), "loads_per_min": loads / minutes, "evictions_per_min": evictions / minutes,
        "loads": loads, "evictions": evictions, "wait_timeouts": timeouts, "resident_at_end": resident,
        "rss_start_mb": start_rss / MB, "rss_min_mb": min(b for _, b in samples) / MB,
        "rss_max_mb": max(b for _, b in samples) / MB, "rss_end_mb": end_rss / MB,
        "rss_samples": [(round(t, 2), b) for t, b in samples], "server_log_problems": problems[:10],
        "seconds": load.wall,
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for result in results:
        t = [s[0] for s in result["rss_samples"]]
        ax.plot(t, [s[1] / MB for s in result["rss_samples"]], label=f"budget {result['budget']}")
    budgeted = next((r for r in results if r["budget_mb"]), None)
    if budgeted is not None:
        base = budgeted["rss_start_mb"]
        ax.axhline(base + budgeted["budget_mb"], color="grey", linestyle="--",
                   label=f"RSS at start + budget ({budgeted['budget_mb']:.1f} MiB)")
    ax.set_xlabel("seconds")
    ax.set_ylabel("server RSS (MiB)")
    ax.set_title(f"{MODELS} models, skewed requests: RSS over time")
    ax.legend()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    tmp.replace(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per run")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of the model mix")
    parser.add_argument("--server", default="auto", help="HTTP server: auto (granian when installed), waitress")
    parser.add_argument("--pool-size", type=int, default=16, help="interpreters per model (its weight)")
    parser.add_argument("--quick", action="store_true", help="15 s per run")
    args = parser.parse_args()
    if args.quick:
        args.duration = 15.0
    x = np.load(FIXTURES / "x_test.npy")[:2]
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        repo = Path(tmp) / "repo"
        packages = build_repository(repo, args.pool_size)
        budget = budget_for(repo, packages, args.pool_size)
        results = [run(repo, packages, budget, args, x), run(repo, packages, None, args, x)]
    from modelpress.runtime.config import RuntimeConfig
    from modelpress.runtime.server import server_name

    server = server_name(RuntimeConfig(server=args.server))
    weights = 1.0 / np.arange(1, MODELS + 1) ** args.zipf
    top5 = float(weights[:FITS].sum() / weights.sum())
    rows = [{**r, "warm_p50": r["warm"]["p50_ms"], "warm_p99": r["warm"]["p99_ms"], "cold_p50": r["cold"]["p50_ms"],
             "cold_p99": r["cold"]["p99_ms"], "hit": 100 * r["hit_rate"], "errs": sum(r["errors"].values())}
            for r in results]
    print(f"{MODELS} models of {args.pool_size} interpreters, Zipf {args.zipf} (top {FITS} take {100 * top5:.0f}% "
          f"of requests; an ideal LRU of {FITS} hits {100 * lru_hit_rate(args.zipf):.0f}%), {args.concurrency} "
          f"clients, {args.duration:.0f} s a run, budget {budget / MB:.1f} MiB, {server}")
    print(text_table(rows, [
        ("budget", "budget"), ("requests", "ok"), ("errors", "errs"), ("req/s", "rps", "{:.0f}"),
        ("hit %", "hit", "{:.1f}"), ("warm p50 ms", "warm_p50", "{:.2f}"), ("warm p99 ms", "warm_p99", "{:.2f}"),
        ("cold p50 ms", "cold_p50", "{:.1f}"), ("cold p99 ms", "cold_p99", "{:.1f}"),
        ("loads/min", "loads_per_min", "{:.0f}"), ("evictions/min", "evictions_per_min", "{:.0f}"),
        ("wait timeouts", "wait_timeouts", "{:.0f}"), ("RSS min MiB", "rss_min_mb", "{:.1f}"),
        ("RSS max MiB", "rss_max_mb", "{:.1f}"), ("RSS end MiB", "rss_end_mb", "{:.1f}")]))
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "fleet_bench_quick" if args.quick else "fleet_bench"
    plot(results, RESULTS / f"{name}_rss.png")
    report = {"machine": machine(), "models": MODELS, "fits": FITS, "zipf": args.zipf, "top5_share": top5,
              "ideal_lru_hit_rate": lru_hit_rate(args.zipf), "pool_size": args.pool_size, "server": server,
              "concurrency": args.concurrency, "duration_s": args.duration, "runs": results}
    atomic_write_bytes(RESULTS / f"{name}.json", json.dumps(report, indent=1).encode())
    print(f"wrote {RESULTS / (name + '.json')} and {name}_rss.png")


if __name__ == "__main__":
    main()
