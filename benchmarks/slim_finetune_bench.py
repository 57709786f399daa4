"""Slimming's fine-tuning length and distillation: what a slimmed model recovers with more epochs, and with the
source model's soft targets, against the speed the removed channels buy (float32 TFLite, one thread, XNNPACK).

press's latency search slims with the search's base fine-tuning (3 epochs in press_bench's modern rows); on
MobileNetV2 (alpha 0.35) that lost 5.7 pt at slim 30% and 7.0 pt at slim 50%. This bench trains the same candidates
outside press, by press's own fine-tuning (``run_recipe`` on ``selection_split``: the best epoch picked on training
samples set aside, never on the validation split that scores it) and reports, per (ratio, epochs, distillation):
top-1 on press's validation split (what press would judge) and on the test set, the drop against the baseline on
each, the speed-up over the baseline timed in interleaved rounds, and the seconds of fine-tuning::

    .venv/bin/python benchmarks/slim_finetune_bench.py --baseline <work>/baselines/mobilenet-18000-24.keras \
        --train-samples 18000 --ratios 0.5 0.4 --epochs 6 12 --distill off on \
        --out benchmarks/results/slim_finetune_mobilenet.json

The data split is press_bench's (validation = the first 6,000 training images, then ``--train-samples`` images to
train on); each configuration's row is saved as soon as it is measured, so a run cut short keeps what it did.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from modelpress.atomic import atomic_write_bytes  # noqa: E402
from modelpress.latency import machine_info  # noqa: E402
from modelpress.tables import text_table  # noqa: E402

RESULTS = Path(__file__).parent / "results"
DISTILL = {"alpha": 0.5, "temperature": 4.0}
COLUMNS = [("ratio", "ratio", "{:.0%}"), ("epochs", "epochs"), ("distill", "distill"),
           ("best epoch", "best_epoch"), ("val top-1", "val_accuracy", "{:.2%}"),
           ("val drop", "val_drop", "{:+.2f}"), ("test top-1", "test_accuracy", "{:.2%}"),
           ("test drop", "test_drop", "{:+.2f}"), ("speed-up", "speedup", "{:.2f}x"),
           ("p50 ms", "p50_ms", "{:.4f}"), ("fine-tune s", "seconds", "{:.0f}")]


def _top1(model, x: np.ndarray, y: np.ndarray) -> float:
    out = np.concatenate([np.asarray(model(x[i:i + 500], training=False)) for i in range(0, len(x), 500)])
    return float((out.argmax(1) == y).mean())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="the float32 baseline (.keras), read only")
    parser.add_argument("--train-samples", type=int, default=18000)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.5, 0.4])
    parser.add_argument("--epochs", type=int, nargs="+", default=[6, 12])
    parser.add_argument("--distill", nargs="+", choices=("off", "on"), default=["off", "on"])
    parser.add_argument("--configs", nargs="*", metavar="RATIO:EPOCHS:DISTILL",
                        help="explicit configurations instead of the grid, such as 0.5:12:on 0.4:6:off")
    parser.add_argument("--controls", type=int, nargs="*", default=[], metavar="EPOCHS",
                        help="also the control: the baseline fine-tuned this many epochs, no slimming, undistilled "
                             "(press_bench's control)")
    parser.add_argument("--append", action="store_true", help="keep the rows already in --out")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved timing rounds")
    parser.add_argument("--out", type=Path, default=RESULTS / "slim_finetune.json")
    args = parser.parse_args(argv)

    import keras

    from modelpress.compressor.data import Dataset, selection_split
    from modelpress.compressor.finetune import FineTune, finetune
    from modelpress.compressor.flavors import clone_model
    from modelpress.compressor.pipeline import run_recipe
    from modelpress.compressor.recipe import Recipe, Step
    from modelpress.converters.tflite import to_tflite_bytes
    from modelpress.search.measure import interleaved_latency
    from modelpress.testing.modern_models import fashion_mnist_32

    full, name = fashion_mnist_32()
    n_val = len(full["x_train"]) // 10
    x_val, y_val = full["x_train"][:n_val], full["y_train"][:n_val]
    x_train = full["x_train"][n_val:n_val + args.train_samples]
    y_train = full["y_train"][n_val:n_val + args.train_samples]
    test = (full["x_val"], full["y_val"])
    model = keras.models.load_model(args.baseline)
    base = {"val_accuracy": _top1(model, x_val, y_val), "test_accuracy": _top1(model, *test)}
    base_blob = to_tflite_bytes(model, "none")
    tuning = selection_split(Dataset(x_train, y_train, x_val, y_val))
    batch = 64 if len(x_train) > 10000 else 32  # press's fine-tuning batch
    print(f"baseline {args.baseline.name}: val {base['val_accuracy']:.2%}, test {base['test_accuracy']:.2%}; {name}",
          flush=True)
    rows: list[dict] = json.loads(args.out.read_text())["rows"] if args.append and args.out.is_file() else []
    document = {"benchmark": "slim_finetune_bench",  # this machine's folders are no reader's business
                "argv": [a.replace(str(args.baseline.parent), "<baselines>") for a in sys.argv[1:]],
                "machine": machine_info(),
                "data": f"{name}; trained on {len(tuning.x_train)} (+{len(tuning.x_val)} set aside to pick the "
                        f"epoch), validation {len(x_val)}, test {len(test[0])}",
                "baseline": base, "rows": rows}
    grid = [(r, e, d) for r in args.ratios for e in args.epochs for d in args.distill]
    if args.configs is not None:
        grid = [(float(r), int(e), d) for r, e, d in (c.split(":") for c in args.configs)]
    for ratio, epochs, distill in grid:
        recipe = Recipe(name=f"slim {ratio:.0%}", steps=[Step.from_config(
            {"type": "slim", "ratio": ratio, "criterion": "l2"})],
            finetune=FineTune(epochs=epochs, batch_size=batch, distill=DISTILL if distill == "on" else None))
        started = time.perf_counter()
        slim, records, _ = run_recipe(model, "keras3", recipe, tuning)
        seconds = time.perf_counter() - started
        blob = to_tflite_bytes(slim, "none")
        (f32, f32_spread), (p50, spread) = interleaved_latency([base_blob, blob], test[0][:1], 1,
                                                               rounds=args.rounds)
        val, acc = _top1(slim, x_val, y_val), _top1(slim, *test)
        row = {"ratio": ratio, "epochs": epochs, "distill": distill, "best_epoch": records[-1].get("best_epoch"),
               "selection_history": records[-1].get("val_accuracy"),
               "val_accuracy": val, "val_drop": (base["val_accuracy"] - val) * 100,
               "test_accuracy": acc, "test_drop": (base["test_accuracy"] - acc) * 100,
               "f32_p50_ms": f32, "f32_spread_ms": f32_spread, "p50_ms": p50, "p50_spread_ms": spread,
               "speedup": f32 / p50, "seconds": seconds, "params": int(slim.count_params())}
        rows.append(row)
        print(text_table([row], COLUMNS), flush=True)
        document["table"] = text_table(rows, COLUMNS)
        atomic_write_bytes(args.out, json.dumps(document, indent=1, default=float).encode())
    for epochs in args.controls:
        copy = clone_model(model, "keras3")
        started = time.perf_counter()
        history = finetune(copy, tuning, FineTune(epochs=epochs, batch_size=batch).for_model(model), "keras3")
        val, acc = _top1(copy, x_val, y_val), _top1(copy, *test)
        rows.append({"ratio": 0.0, "epochs": epochs, "distill": "control", "best_epoch": history["best_epoch"],
                     "selection_history": history["val_accuracy"], "val_accuracy": val,
                     "val_drop": (base["val_accuracy"] - val) * 100, "test_accuracy": acc,
                     "test_drop": (base["test_accuracy"] - acc) * 100, "speedup": 1.0,
                     "seconds": time.perf_counter() - started, "params": int(copy.count_params())})
        print(text_table(rows[-1:], COLUMNS), flush=True)
        document["table"] = text_table(rows, COLUMNS)
        atomic_write_bytes(args.out, json.dumps(document, indent=1, default=float).encode())
    print(document.get("table", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
