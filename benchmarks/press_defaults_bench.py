"""press as a user first runs it: `modelpress press MODEL -p PROFILE -d DATA -o OUT` and no other flag (the
default 1-point budget, size objective, every branch, no time budget, the default worker count), on a
converged Fashion-MNIST baseline of ``press_bench.py``, scored the way press_bench scores its rows.

press_bench's own rows pass flags (a time budget, branch limits, a 0.5-point budget for LeNet-300-100); this
bench says what the settings a user starts with give, and how long they take. The trial cache is a fresh folder
(``MODELPRESS_CACHE`` under --work), as on a new machine; the command line itself has no option beyond the three
required ones.

    .venv/bin/python benchmarks/press_defaults_bench.py --baseline <work>/baselines/mlp-18000-40.keras \
        --model mlp --train-samples 18000 --work /tmp/press_defaults --out benchmarks/results/press_defaults_mlp.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from press_bench import COLUMNS, Reference, _split  # noqa: E402

from modelpress.latency import machine_info  # noqa: E402
from modelpress.tables import text_table  # noqa: E402

RESULTS = Path(__file__).parent / "results"
MARKER = ".press_defaults_bench"


def run(args) -> dict:
    import keras

    from modelpress.testing.datasets import fashion_mnist

    full, name = fashion_mnist()
    data = _split(full, train_samples=args.train_samples)
    work = args.work
    if work.exists() and any(work.iterdir()):
        if not (work / MARKER).is_file():  # never empty a folder this bench did not make
            raise SystemExit(f"{work} holds files this bench did not write; pass an empty or new --work folder")
        shutil.rmtree(work)  # a fresh cache and output: nothing carried over from an earlier run
    work.mkdir(parents=True, exist_ok=True)
    (work / MARKER).write_text("press_defaults_bench.py empties this folder on its next run\n")
    np.savez(work / "data.npz", **data)
    baseline = keras.models.load_model(args.baseline)
    ref = Reference(baseline, (full["x_val"], full["y_val"]), args.runs)
    command = [str(Path(sys.executable).parent / "modelpress"), "press", str(args.baseline), "-p", args.profile,
               "-d", str(work / "data.npz"), "-o", str(work / "out")]
    print("$", " ".join(command), flush=True)
    started = time.time()
    done = subprocess.run(command, env={**os.environ, "MODELPRESS_CACHE": str(work / "cache")})
    seconds = time.time() - started
    if done.returncode != 0:
        raise SystemExit(f"modelpress press exited with {done.returncode} after {seconds:.0f} s")
    document = json.loads((work / "out" / "press.json").read_text())
    chosen = (work / "out" / args.profile / "model.tflite").read_bytes()
    chosen_trial = document["profiles"][args.profile]["chosen"]
    trials = sum(1 for t in document["trials"] if t.get("profile") == args.profile)
    row = ref.row(baseline.name, args.profile, f"press, no flags: {chosen_trial['variant']}", chosen,
                  seconds=round(seconds, 1), trials=trials, val_budget_points=chosen_trial["drop_points"] +
                  chosen_trial["margin_points"])
    baseline_row = {"model": baseline.name, "profile": "-", "variant": "float32 baseline", "accuracy": ref.accuracy,
                    "drop_points": 0.0, "gzip_kb": ref.gzip / 1024, "ratio": 1.0, "speedup": 1.0}
    return {"benchmark": "press_defaults", "argv": sys.argv[1:], "command": command[1:], "data": name,
            "train_samples": len(data["x_train"]), "validation": len(data["x_val"]), "test": len(full["x_val"]),
            "machine": machine_info(), "press_seconds": round(seconds, 1), "rows": [baseline_row, row],
            "press_json": document}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="a converged .keras baseline of press_bench.py")
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    parser.add_argument("--train-samples", type=int, default=18000, help="as the baseline was trained")
    parser.add_argument("--profile", default="raspberry-pi-4")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--work", type=Path, default=Path("/tmp/press_defaults"),
                        help="emptied first (only if this bench made it)")
    parser.add_argument("--out", type=Path, default=RESULTS / "press_defaults.json")
    args = parser.parse_args(argv)
    result = run(args)
    print(text_table(result["rows"], [c for c in COLUMNS if c[1] not in ("drop_vs_control", "control_ref",
                                                                           "drop_vs_stronger")]))
    print(f"press with no flags: {result['press_seconds']:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=1, default=str)  # this machine's folders are no reader's business
    text = text.replace(str(args.work), "<work>").replace(str(args.baseline.parent), "<baselines>")
    args.out.write_text(text)
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
