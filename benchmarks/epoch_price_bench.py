"""How well press prices a fine-tuning trial before it has timed one: the inference-time guess it used to start
from, the price timed on a few real training steps (:mod:`modelpress.search.pricing`, what a time-budgeted search
uses now: an epoch, and what a trial pays once for copying and tracing), and what real trials then cost: a slim
50% candidate fine-tuned distilled (what a latency search tries first) and a prune 50% candidate (a size search's
first; its masks add work every step that the price leaves out), each ``--epochs`` by ``run_recipe``, whole
seconds as the search itself records them.

All are measured one after the other in the same process, per model, so the host's load is shared by them;
each model starts from its random initial weights (cost does not depend on the weights)::

    .venv/bin/python benchmarks/epoch_price_bench.py [--models lenet5 resnet mobilenet] [--train-samples 3000] \
        [--epochs 3] [--out benchmarks/results/epoch_price_bench.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

RESULTS = Path(__file__).parent / "results"


def measure(kind: str, train_samples: int, epochs: int) -> dict:
    from modelpress.compressor.data import Dataset, selection_split
    from modelpress.compressor.pipeline import run_recipe
    from modelpress.device_profiles import load_profile
    from modelpress.search import space
    from modelpress.search.engine import TRAINING_COST_FACTOR, Search, SearchOptions
    from modelpress.search.space import Settings
    from modelpress.testing.datasets import fashion_mnist
    from modelpress.testing.modern_models import fashion_mnist_32, mobilenet_v2, small_resnet
    from modelpress.testing.reference_models import lenet5

    full, _ = (fashion_mnist if kind == "lenet5" else fashion_mnist_32)()
    data = Dataset(full["x_train"][6000:6000 + train_samples], full["y_train"][6000:6000 + train_samples],
                   full["x_train"][:2000], full["y_train"][:2000])
    model = {"lenet5": lenet5, "resnet": small_resnet, "mobilenet": mobilenet_v2}[kind]()
    search = Search(model, "keras3", data, [load_profile("raspberry-pi-4")],
                    SearchOptions(time_budget=10**6, progress=False, epochs=epochs))
    inference_guess = TRAINING_COST_FACTOR * search.inference_seconds * len(data.x_train) * epochs
    started = time.perf_counter()
    priced = search.epoch_cost() * epochs + search.trial_overhead()
    pricing_seconds = time.perf_counter() - started
    row = {"model": kind, "train_samples": train_samples, "epochs": epochs,
           "inference_guess_s": round(inference_guess, 1), "priced_s": round(priced, 1),
           "priced_once_s": search.result.priced_trial_seconds, "pricing_cost_s": round(pricing_seconds, 1)}
    for name, settings in (("slim", Settings("slim", space.slim_steps(0.5), epochs, batch_size=search.batch_size,
                                             distill=True)),
                           ("prune", Settings("prune", ({"type": "prune", "sparsity": 0.5},), epochs=epochs,
                                              batch_size=search.batch_size))):
        started = time.perf_counter()
        run_recipe(model, "keras3", settings.recipe(), selection_split(data))
        row[f"{name}_s"] = round(time.perf_counter() - started, 1)
        row[f"guess_over_{name}"] = round(inference_guess / row[f"{name}_s"], 2)
        row[f"priced_over_{name}"] = round(priced / row[f"{name}_s"], 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["lenet5", "resnet", "mobilenet"],
                        choices=["lenet5", "resnet", "mobilenet"])
    parser.add_argument("--train-samples", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "epoch_price_bench.json")
    args = parser.parse_args()
    rows = []
    for kind in args.models:
        rows.append(measure(kind, args.train_samples, args.epochs))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n| model ({args.epochs} epochs a trial) | inference guess | timed price (of which once; cost of "
          "pricing) | slim 50% distilled | prune 50% | price / slim | price / prune | guess / slim |\n"
          "|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} ({r['train_samples']} images) | {r['inference_guess_s']:.0f} s | {r['priced_s']:.0f} s "
              f"({r['priced_once_s']:.0f} s; {r['pricing_cost_s']:.0f} s) | {r['slim_s']:.0f} s | {r['prune_s']:.0f} s "
              f"| {r['priced_over_slim']:.2f} | {r['priced_over_prune']:.2f} | {r['guess_over_slim']:.2f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "epoch_price_bench", "load_average": os.getloadavg(),
                                    "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
