"""press scaling: trials per hour with 1 and 2 local workers and on a two-node loopback Ray cluster.

The same search (a digits MLP, ``--profile`` raspberry-pi-4, every quantization then global pruning by
bisection, 2 fine-tuning epochs) runs three times side by side in one run, each with an empty trial cache so
every trial really trains, converts and measures: in the driver (``workers=1``), in two local worker processes
(``workers=2``), and as Ray tasks on a head and a second node started on 127.0.0.1 (1 CPU each). For each it
reports the search's wall time, the trials run, trials per hour, the per-trial seconds (median, as the workers
measured them: fine-tune + convert + measure), the parallelism the strategy offered (trials submitted per batch)
and the nodes / processes that ran trials, with the load average beside them.

Projecting N machines: a search offers ``mean batch`` trials at a time, so with c trial slots per machine it
runs about 3600 * min(N * c, mean batch) / per-trial seconds trials per hour, less the driver's serial phases
(reference, sensitivity ranking, packaging) and the worker start-up (once per worker process). The JSON has
these figures per configuration and the projection for 1, 2, 4 and 8 machines of one slot each.

    .venv/bin/python benchmarks/press_scale_bench.py [--profile raspberry-pi-4] [--epochs 2] [--rounds 2] [--no-ray]

Prints a table and writes benchmarks/results/press_scale_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from modelpress.latency import machine_info  # noqa: E402
from modelpress.tables import text_table  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def _digits_mlp(folder: Path) -> tuple[Path, Path]:
    from modelpress.demo.example import digits_data
    from modelpress.testing.reference_models import digits_mlp

    data = digits_data(seed=0)
    model = digits_mlp(data.x_train, data.y_train)
    model.save(folder / "digits_mlp.keras")
    data.save_npz(folder / "data.npz")
    return folder / "digits_mlp.keras", folder / "data.npz"


def _run(label: str, model: Path, data: Path, folder: Path, args: argparse.Namespace, **execution) -> dict:
    import modelpress

    folder = folder / label.replace(" ", "_").replace(",", "").replace("#", "r").replace("(", "").replace(")", "")

    load_before = os.getloadavg()
    started = time.perf_counter()
    result = modelpress.press(model, [args.profile], data, out=folder / "out", max_drop=1.0,
                              epochs=args.epochs, families=["quantize", "prune"], cache=folder / "cache",
                              progress=False, **execution)
    wall = time.perf_counter() - started
    document = json.loads(result.press_json.read_text())
    ran = [t for t in document["trials"] if not t["cached"]]
    seconds = [t["seconds"] for t in ran]
    search_s = document["seconds"]
    info = document["execution"]
    batches = info.get("batches") or len(ran)
    per_trial = statistics.median(seconds) if seconds else None
    mean_batch = (info.get("trials_submitted") or len(ran)) / max(batches, 1)
    return {"config": label, "execution": info, "trials": len(ran), "search_s": search_s,
            "press_wall_s": round(wall, 1),
            "trials_per_hour": round(3600 * len(ran) / search_s, 1) if search_s else None,
            "per_trial_median_s": round(per_trial, 2) if per_trial else None,
            "per_trial_mean_s": round(statistics.mean(seconds), 2) if seconds else None,
            "trial_seconds_sum": round(sum(seconds), 1), "mean_batch": round(mean_batch, 2),
            "workers_seen": sorted({t["worker"] or "driver" for t in ran}),
            "nodes_seen": sorted({(t["worker"] or "").partition(" node ")[2] for t in ran} - {""}),
            "chosen": result.chosen[args.profile].describe() if result.chosen.get(args.profile) else None,
            "projected_trials_per_hour": {str(n): round(3600 * min(n, mean_batch) / per_trial, 1)
                                          for n in (1, 2, 4, 8)} if per_trial else None,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="raspberry-pi-4")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true", help="skip the loopback Ray cluster")
    parser.add_argument("--rounds", type=int, default=1, help="run every configuration this many times, in turn")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="press-scale-") as scratch:
        folder = Path(scratch)
        model, data = _digits_mlp(folder)
        for round_ in range(1, args.rounds + 1):  # rounds alternate the configurations: a busy spell hits them all
            tag = f" #{round_}" if args.rounds > 1 else ""
            rows.append(_run(f"1 worker (in-process){tag}", model, data, folder, args, workers=1))
            rows.append(_run(f"2 local workers{tag}", model, data, folder, args, workers=2))
            if not args.no_ray:
                from modelpress.testing.ray_cluster import loopback_cluster

                up = time.perf_counter()
                with loopback_cluster(nodes=2, cpus_per_node=1) as address:
                    cluster_s = time.perf_counter() - up
                    row = _run(f"Ray, 2 loopback nodes{tag}", model, data, folder, args, ray=address, trial_cpus=1)
                    row["cluster_start_s"] = round(cluster_s, 1)
                    rows.append(row)
    columns = [("config", "config"), ("trials", "trials"), ("search s", "search_s", "{:.1f}"),
               ("trials/h", "trials_per_hour", "{:.0f}"), ("per-trial med s", "per_trial_median_s", "{:.2f}"),
               ("mean batch", "mean_batch", "{:.2f}"), ("processes", "processes"), ("nodes", "nodes"),
               ("load avg after", "load_average_after", "{}"), ("chosen", "chosen")]
    for row in rows:
        row["processes"], row["nodes"] = len(row["workers_seen"]), len(row["nodes_seen"]) or 1
    print(text_table(rows, columns))
    for row in rows:
        print(f"{row['config']}: projected trials/h on N one-slot machines {row['projected_trials_per_hour']}")
    document = {"machine": machine_info(), "load_average_end": os.getloadavg(), "rounds": args.rounds,
                "note": "the machine's 2 cores were shared with several other jobs during this run; the load "
                        "average is beside each configuration. Trials per hour count trials that trained, converted "
                        "and measured (empty cache each time) over the search's wall time.",
                "profile": args.profile, "epochs": args.epochs, "families": ["quantize", "prune"], "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "press_scale_bench.json").write_text(json.dumps(document, indent=2, default=str), encoding="utf-8")
    print(f"wrote {RESULTS / 'press_scale_bench.json'}")


if __name__ == "__main__":
    main()
