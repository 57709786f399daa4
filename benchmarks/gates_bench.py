"""L0 gates at high sparsity on the LeNets (Fashion-MNIST), outside press: how small the shipped int4 file gets
(narrowed, stripped) and what accuracy costs, with and without distillation from the source during gate training.

Each row: a recipe (L0 gates of strength λ on weights, or on weights + hidden units + input pixels, for the gate
epochs, then one epoch on the int4 grid) run by the compressor on the baseline that ``press_bench.py`` trained
(``--baseline``; same split: the first 6,000 training images for validation, the next ``--train-samples`` to
train), converted to int4 as press converts for raspberry-pi-4, then as press ships it: narrowed
(:mod:`modelpress.compressor.narrowing`) and stripped (:mod:`modelpress.converters.stripping`). Accuracy on the
10,000 test images and the 6,000 validation images; gzip of the whole .tflite.

    .venv/bin/python benchmarks/gates_bench.py --baseline <work>/baselines/mlp-18000-40.keras \
        --strength 50 75 --groups weights --distill none 0.5 --out benchmarks/results/gates_bench.json
    # LeNet-5 (press_bench.py --models cnn --train-samples 6000): gates trained 10 epochs, a cheaper L0
    .venv/bin/python benchmarks/gates_bench.py --baseline <work>/baselines/cnn-6000-40.keras --train-samples 6000 \
        --strength 25 40 75 130 --gate-epochs 10 --groups weights --distill none --out FILE
    # after the gates: recovery with the zeros held (5 / 15 epochs at a tenth of the rate, distilled), and the int4
    # grid per output channel or per kernel (stored tensorwise); the gates train once per λ, each variant from them
    .venv/bin/python benchmarks/gates_bench.py --baseline <work>/baselines/mlp-18000-40.keras --strength 50 75 \
        --groups weights --distill none --recover 0 5 15 --granularity channel tensor --out FILE
    # on all 48k training images (press_bench.py --train-samples 48000 --max-epochs 60): press trains the gates
    # 12 epochs there (space.l0_steps: L0_SAMPLES / 48,000), at the strengths its bisection visits
    .venv/bin/python benchmarks/gates_bench.py --baseline <work>/baselines/mlp-48000-60.keras --train-samples 48000 \
        --strength 36.5174 52.3299 74.9894 --gate-epochs 12 --groups weights --distill none --granularity tensor \
        --rates 0.001 0.003 --out benchmarks/results/gates_bench_48k.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def _accuracy(predict, x: np.ndarray, y: np.ndarray) -> float:
    out = np.concatenate([np.asarray(predict(x[i:i + 500])) for i in range(0, len(x), 500)])
    return float((out.argmax(1) == y).mean())


def _shipped(model, measurer, x, xt, yt, xv, yv) -> dict:
    """Size and accuracy of ``model`` as press ships it: narrowed, int4, stripped."""
    from modelpress.compressor.narrowing import narrow_model
    from modelpress.converters.quantizer import tensor_grid_fits
    from modelpress.converters.stripping import strip_strings
    from modelpress.files import gzip_bytes
    from modelpress.tflite_interpreter import TFLiteModel

    narrow = narrow_model(model, sample=x[:64])
    wide_blob = measurer.convert(model, "int4")
    float_blob = measurer.convert(narrow.model, "none")
    blob = strip_strings(measurer.convert(narrow.model, "int4"))
    run_int4 = TFLiteModel(blob).predict
    kernels = [np.asarray(w) for w in model.get_weights()[::2]]
    return {"weights_left": int(sum(np.count_nonzero(k) for k in kernels)), "units_kept": narrow.kept,
            "tensorwise": tensor_grid_fits(float_blob), "gzip_kb_wide": gzip_bytes(wide_blob) / 1024,
            "gzip_kb": gzip_bytes(blob) / 1024, "test": _accuracy(lambda b, f=run_int4: f([b])[0], xt, yt),
            "val": _accuracy(lambda b, f=run_int4: f([b])[0], xv, yv)}


def setup(baseline: Path, train_samples: int) -> SimpleNamespace:
    """press_bench's split (the first 6,000 training images to validate, the next ``train_samples`` to train, the
    10,000 test images), the baseline and its accuracies, raspberry-pi-4's measurer and the float32 file's gzip KB."""
    import keras

    from modelpress.compressor.data import Dataset, selection_split
    from modelpress.device_profiles import load_profile
    from modelpress.files import gzip_bytes
    from modelpress.search.measure import Measurer
    from modelpress.testing.datasets import fashion_mnist

    full, _ = fashion_mnist()
    n_val = len(full["x_train"]) // 10
    x, y = full["x_train"][n_val:n_val + train_samples], full["y_train"][n_val:n_val + train_samples]
    xv, yv = full["x_train"][:n_val], full["y_train"][:n_val]
    xt, yt = full["x_val"], full["y_val"]
    source = keras.models.load_model(baseline)
    measurer = Measurer(load_profile("raspberry-pi-4"), xv, yv, x[:300])
    return SimpleNamespace(x=x, xv=xv, yv=yv, xt=xt, yt=yt, source=source, measurer=measurer,
                           base_test=_accuracy(source, xt, yt), base_val=_accuracy(source, xv, yv),
                           float_kb=gzip_bytes(measurer.convert(source, "none")) / 1024,
                           tuning=selection_split(Dataset(x, y, xv, yv)))


def scored(model, bench: SimpleNamespace) -> dict:
    """:func:`_shipped` and the drops against the baseline (test, validation) and the x smaller of the gzip."""
    row = _shipped(model, bench.measurer, bench.x, bench.xt, bench.yt, bench.xv, bench.yv)
    row["drop_test"] = round((bench.base_test - row["test"]) * 100, 2)
    row["drop_val"] = round((bench.base_val - row["val"]) * 100, 2)
    row["x_smaller"] = round(bench.float_kb / row["gzip_kb"], 1)
    return row


def run(args) -> list[dict]:
    from modelpress.compressor.finetune import FineTune
    from modelpress.compressor.pipeline import run_recipe
    from modelpress.compressor.recipe import Recipe, Step

    bench = setup(args.baseline, args.train_samples)
    source, tuning, xv, yv = bench.source, bench.tuning, bench.xv, bench.yv
    rows = []
    for strength in args.strength:
        for distill, rate in itertools.product(args.distill, args.rates):
            alpha = None if distill == "none" else float(distill)
            tune = FineTune(epochs=3, batch_size=64, learning_rate=rate,
                            distill=None if alpha is None else {"alpha": alpha})
            started = time.time()
            gated, _, _ = run_recipe(source, "keras3", Recipe(name="gates", finetune=tune, steps=[Step.from_config(
                {"type": "l0", "strength": strength, "epochs": args.gate_epochs, "groups": args.groups})]), tuning)
            gate_seconds = time.time() - started
            gated_val = _accuracy(gated, xv, yv)  # float, gates stripped: before recovery and the int4 grid
            for recover, granularity, grid_rate in itertools.product(args.recover, args.granularity, args.grid_rate):
                steps = [Step.from_config({"type": "recover", "epochs": recover, "rate": args.recover_rate,
                                           "alpha": args.recover_alpha})] if recover else []
                steps.append(Step.from_config({"type": "qat", "bits": 4, "epochs": 1, "granularity": granularity,
                                               "rate": grid_rate}))
                started = time.time()
                model, records, _ = run_recipe(gated, "keras3", Recipe(name="after", steps=steps, finetune=tune),
                                               tuning, teacher=source)
                row = {"strength": strength, "groups": args.groups, "distill_alpha": alpha, "rate": rate,
                       "gate_epochs": args.gate_epochs, "recover_epochs": recover,
                       "recover_rate": args.recover_rate if recover else None,
                       "recover_alpha": args.recover_alpha if recover else None,
                       "recover_best_epoch": records[0].get("best_epoch") if recover else None,
                       "granularity": granularity, "grid_rate": grid_rate,
                       "drop_val_gated_float": round((bench.base_val - gated_val) * 100, 2),
                       "seconds": round(gate_seconds + time.time() - started, 1), **scored(model, bench)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    return [{"baseline": str(args.baseline), "baseline_test": bench.base_test, "baseline_val": bench.base_val,
             "train_samples": args.train_samples}] + rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="press_bench.py's converged LeNet (.keras)")
    parser.add_argument("--train-samples", type=int, default=18000)
    parser.add_argument("--strength", type=float, nargs="+", default=[75.0])
    parser.add_argument("--groups", default="weights+units+inputs")
    parser.add_argument("--gate-epochs", type=int, default=30)
    parser.add_argument("--distill", nargs="+", default=["none", "0.5"], help="'none' or distillation alphas")
    parser.add_argument("--recover", type=int, nargs="+", default=[0],
                        help="epochs of recovery fine-tuning with the zeros held, after the gates (0: none)")
    parser.add_argument("--recover-rate", type=float, default=0.1, help="its peak, a share of the fine-tuning rate")
    parser.add_argument("--recover-alpha", type=float, default=0.5, help="its distillation weight (0: none)")
    parser.add_argument("--granularity", nargs="+", default=["channel"], choices=("channel", "tensor"),
                        help="the int4 grid the last epoch trains onto: a scale per output channel or per kernel")
    parser.add_argument("--grid-rate", type=float, nargs="+", default=[1.0],
                        help="the int4 grid epoch's peak rate, a share of the fine-tuning rate")
    parser.add_argument("--rates", type=float, nargs="+", default=[None],
                        help="fine-tuning's peak rate, the weights' during gate training (default: the model's own)")
    parser.add_argument("--out", type=Path, default=RESULTS / "gates_bench.json")
    args = parser.parse_args(argv)
    rows = run(args)
    text = json.dumps({"benchmark": "gates", "argv": sys.argv[1:] if argv is None else argv, "rows": rows}, indent=2)
    args.out.write_text(text.replace(str(args.baseline.parent), "<baselines>"))  # no folder of this machine
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
