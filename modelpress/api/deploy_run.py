"""What a ``deploy`` with data measured: each published artifact's accuracy on held-out data and its
single-sample latency, kept in a run folder (``deploy.json``) and rendered as a report with plots.

    held = held_out("train.npz")                 # x_test / y_test, else x_val / y_val, else the 10% set aside
    row = measure_artifact(Path("repo/digits/3"), held)
    row["accuracy"], row["p50_ms"]                # e.g. 0.967, 0.021
    paths = write_run(deploy_result, "runs/deploy-1")   # runs/deploy-1/deploy.json, runs/deploy-1/report/

Latency is single-sample p50 on this host, one thread (:mod:`modelpress.latency`): it compares artifacts
with each other; it is not the device's own latency. Only TFLite artifacts are run here; other formats are
recorded with ``accuracy: null`` and the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

LATENCY_RUNS = 100
EVAL_BATCH = 256


@dataclass
class HeldOut:
    x: np.ndarray
    y: np.ndarray
    source: str


def held_out(data: Any) -> HeldOut:
    """The samples to score published artifacts on: an npz's x_test / y_test, else x_val / y_val, else the
    10% of the training data that fine-tuning and calibration do not use::

        held_out("digits.npz").source        # 'digits.npz x_test/y_test'
    """
    from modelpress.compressor.data import _pair, load_data

    if isinstance(data, (str, Path)) and Path(data).suffix.lower() == ".npz" and Path(data).is_file():
        with np.load(data, allow_pickle=False) as arrays:
            for xk, yk in (("x_test", "y_test"), ("x_val", "y_val")):
                if {xk, yk} <= set(arrays.files):
                    x, y = _pair(arrays[xk], arrays[yk], f"{data} {xk}/{yk}")
                    return HeldOut(x, y, f"{Path(data).name} {xk}/{yk}")
    dataset = load_data(data)
    return HeldOut(dataset.x_val, dataset.y_val, f"{dataset.source}: {dataset.val_source}")


def measure_artifact(package: Path, held: HeldOut, runs: int = LATENCY_RUNS) -> dict[str, Any]:
    """Top-1 accuracy of a published package on ``held`` and its single-sample latency (one thread)::

        measure_artifact(Path("repo/digits/1"), held_out("digits.npz"))   # {"accuracy": 0.97, "p50_ms": 0.02, ...}
    """
    from modelpress.compressor.report import accuracy
    from modelpress.errors import DataError
    from modelpress.latency import measure_latency
    from modelpress.manifest import read_manifest
    from modelpress.tflite_interpreter import TFLiteModel

    manifest = read_manifest(package)
    row: dict[str, Any] = {"accuracy": None, "samples": int(len(held.x)), "eval_data": held.source}
    if manifest.model_format != "tflite":
        row["not_measured"] = f"{manifest.model_format} artifacts are not run here; only TFLite ones are"
        return row
    interpreter = TFLiteModel(package / manifest.model_file, threads=1)
    shape = list(interpreter.input_details[0].get("shape_signature", interpreter.input_details[0]["shape"]))[1:]
    if len(shape) != held.x.ndim - 1 or any(w > 0 and w != g for w, g in zip(shape, held.x.shape[1:])):
        raise DataError(f"{held.source} has samples of shape {list(held.x.shape[1:])}, but the published model "
                        f"takes {shape}; pass --data with held-out arrays the model takes")
    step = 1 if interpreter.fixed_batch else EVAL_BATCH
    outputs = np.concatenate([interpreter.predict([held.x[i:i + step]])[0] for i in range(0, len(held.x), step)])
    sample = held.x[:1]
    timing = measure_latency(lambda: interpreter.predict([sample]), runs=runs, warmup=5, max_seconds=2.0)
    row.update(accuracy=accuracy(held.y, outputs), p50_ms=timing.p50_ms, p95_ms=timing.p95_ms,
               latency_runs=timing.runs, latency_threads=1)
    return row


def write_run(result: Any, out: str | Path) -> Any:
    """Write ``deploy.json`` (every published artifact with its measurements) into the run folder ``out`` and
    render ``out/report/`` (Markdown, HTML, size and latency vs accuracy plots); returns the report paths::

        paths = write_run(modelpress.deploy(..., data="train.npz"), "runs/deploy-1")
        print(paths.html)
    """
    from modelpress.atomic import atomic_write_bytes
    from modelpress.latency import machine_info
    from modelpress.report import render_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    document = result.to_dict()
    document["info"] = {"machine": machine_info(), "latency": "single-sample p50 on this host, one thread",
                        "accuracy": "top-1 on held-out data: " + ", ".join(
                            sorted({str(r.get("eval_data")) for r in document["rows"] if r.get("eval_data")}))}
    atomic_write_bytes(out / "deploy.json", json.dumps(document, indent=2, default=str).encode("utf-8"))
    return render_report(out)
