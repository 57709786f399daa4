"""Fallback ranking cost: one instrumented pass against one conversion per layer, on a MobileNetV2.

press keeps the int8 layers that cost the most in float when full int8 misses the budget. It used to rank
them by reverting each layer alone to float, converting and scoring (a conversion and an evaluation per
layer: about five of a six-minute search on a MobileNetV2); it now ranks them from one debug pass
(:func:`modelpress.search.fallback.rank_layers`). This benchmark trains a MobileNetV2 (alpha 0.35, 32x32x3)
briefly on Fashion-MNIST (`make data`), then times both rankings side by side in one run and compares their
orders: the per-layer cost is measured on ``--sample-layers`` layers and multiplied by the layer count (the
full old ranking takes many minutes; the JSON says which figures are measured and which projected).

    .venv/bin/python benchmarks/fallback_bench.py [--sample-layers 8] [--rank-samples 300] [--epochs 2]

Prints a table and writes benchmarks/results/fallback_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from modelpress.latency import machine_info  # noqa: E402
from modelpress.tables import text_table  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def _accuracy(blob: bytes, x: np.ndarray, y: np.ndarray) -> float:
    from modelpress.tflite_interpreter import TFLiteModel

    model = TFLiteModel(blob, threads=1)
    step = 1 if model.fixed_batch else 100
    out = np.concatenate([model.predict([x[i:i + step]])[0] for i in range(0, len(x), step)])
    return float(np.mean(out.argmax(-1) == y))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample-layers", type=int, default=8, help="layers timed with the old per-layer way")
    parser.add_argument("--rank-samples", type=int, default=300, help="held-out samples the old way scores on")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train", type=int, default=6000, help="training images")
    args = parser.parse_args()

    from modelpress.search.fallback import _debugger, _quiet, rank_layers, selective_int8
    from modelpress.testing.modern_models import fashion_mnist_32, mobilenet_v2

    data, name = fashion_mnist_32(quick=True)
    model = mobilenet_v2(alpha=0.35)
    started = time.perf_counter()
    model.fit(data["x_train"][:args.train], data["y_train"][:args.train], epochs=args.epochs, batch_size=64,
              verbose=0)
    train_s = time.perf_counter() - started
    calibration = data["x_train"][:200]
    x, y = data["x_val"][:args.rank_samples], data["y_val"][:args.rank_samples]
    float_accuracy = float(np.mean(np.asarray(model.predict(x, verbose=0)).argmax(-1) == y))

    started = time.perf_counter()
    ranked = rank_layers(model, calibration)
    new_s = time.perf_counter() - started

    # the old way: the debugger's layer list (one pass), full int8 scored once, then per layer: revert, convert, score
    started = time.perf_counter()
    with _quiet():
        debugger = _debugger(model, calibration)
        debugger.run()
    base = _accuracy(selective_int8(model, calibration, []), x, y)
    old_fixed_s = time.perf_counter() - started
    sample = [r.name for r in ranked[:args.sample_layers]]
    effect, per_layer = {}, []
    for layer in sample:
        t0 = time.perf_counter()
        effect[layer] = _accuracy(selective_int8(model, calibration, [layer]), x, y) - base
        per_layer.append(time.perf_counter() - t0)
    old_projected_s = old_fixed_s + float(np.mean(per_layer)) * len(ranked)
    agreement = None  # Spearman correlation of the two orders; undefined when every revert changed nothing
    values = np.array([effect[k] for k in sample])
    if len(sample) > 1 and np.ptp(values) > 0:
        old_rank = np.argsort(np.argsort(-values, kind="stable"))
        agreement = float(np.corrcoef(old_rank, np.arange(len(sample)))[0, 1])

    row = {"model": f"MobileNetV2 alpha 0.35, 32x32x3 ({model.count_params():,} parameters)",
           "layers": len(ranked), "one_pass_s": round(new_s, 1),
           "per_layer_s": round(float(np.mean(per_layer)), 2), "old_projected_s": round(old_projected_s, 1),
           "ratio": round(old_projected_s / new_s, 1)}
    print(text_table([row], [("model", "model"), ("int8 layers", "layers"), ("one pass s", "one_pass_s"),
                             ("old: s per layer", "per_layer_s"), ("old: projected s", "old_projected_s"),
                             ("old / new", "ratio", "{:.1f}x")]))
    print("top of the one-pass ranking: "
          + ", ".join(f"{r.short} {r.relative_error:.1%}" for r in ranked[:8]))
    print(f"float32 Keras {float_accuracy:.2%}, full int8 {base:.2%} on {len(x)} held-out images")
    if agreement is not None:
        print(f"rank correlation of the old order with the new one over the {len(sample)} sampled layers: "
              f"{agreement:+.2f}")
    else:
        print(f"the old way could not rank the {len(sample)} sampled layers: reverting each alone changed the "
              f"accuracy on {len(x)} images by {values.min() * 100:+.2f} to {values.max() * 100:+.2f} pt")
    RESULTS.mkdir(exist_ok=True)
    document = {"machine": machine_info(), "data": name, "train_seconds": round(train_s, 1),
                "training_images": args.train, "epochs": args.epochs, "rank_samples": args.rank_samples,
                "result": row, "measured": ["one_pass_s", "per_layer_s (mean over sampled layers)"],
                "projected": "old_projected_s = the debugger pass + int8 scored once + per_layer_s x layers",
                "sampled_layer_effects_points": {k: round(v * 100, 2) for k, v in effect.items()},
                "one_pass_ranking": [{"layer": r.name, "relative_error": r.relative_error,
                                      "rmse_per_scale": r.rmse_per_scale} for r in ranked],
                "rank_correlation_sampled": agreement, "float_accuracy": float_accuracy, "int8_accuracy": base,
                "load_average": os.getloadavg()}
    (RESULTS / "fallback_bench.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
    print(f"wrote {RESULTS / 'fallback_bench.json'}")


if __name__ == "__main__":
    main()
