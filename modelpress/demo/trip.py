"""The main job: the whole trip on the built-in example, with nothing to remember.

    result = run_trip(TripOptions(out=Path("runs/demo")))
    print(result.table())

Steps: train the example CNN on real digits (seeded), convert it for several device profiles, measure
every artifact on the held-out digits (accuracy, agreement with the source, single-sample latency)
and print one comparison table; results go to ``OUT/results.json``. ``quick=True`` is the same code
with fewer epochs and timing runs, for the test suite.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelpress.errors import excerpt
from modelpress.latency import machine_info
from modelpress.tables import text_table, times

DEFAULT_PROFILES = ("server-cpu", "raspberry-pi-4", "coral-edgetpu", "cortex-m")
DEFAULT_RECIPES = ("prune-80", "slim-50")

COLUMNS = [
    ("model", "variant"), ("profile", "profile"), ("format", "format"), ("quant", "quantization"),
    ("size KB", "kb", "{:.1f}"), ("gzip KB", "gzip_kb", "{:.1f}"), ("x smaller", "ratio", "{:.1f}x"),
    ("accuracy", "accuracy", "{:.2%}"), ("agreement", "agreement", "{:.2%}"),
    ("p50 ms", "p50_ms", "{:.3f}"), ("speed-up vs f32 TFLite", "speedup", times),
    ("arena KB", "arena_kb", "{:.1f}"), ("ms (est.)", "est_ms", "{:.3f}"),
]


@dataclass
class TripOptions:
    out: Path = Path("runs/demo")
    profiles: tuple[str, ...] = DEFAULT_PROFILES
    recipes: tuple[str, ...] = DEFAULT_RECIPES
    epochs: int = 15
    latency_runs: int = 300
    quick: bool = False
    report: bool = True
    serve: bool = True

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.quick:
            self.epochs = min(self.epochs, 3)
            self.latency_runs = min(self.latency_runs, 20)


@dataclass
class TripResult:
    out: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        return text_table(self.rows, COLUMNS)

    def save(self) -> Path:
        path = self.out / "results.json"
        path.write_text(json.dumps({"kind": "trip", "info": self.info, "rows": self.rows}, indent=2, default=str))
        return path


def _row(variant: str, profile: str, fmt: str, quant: str, size: int, gzip_size: int, accuracy: float,
         agreement: float | None, p50_ms: float, base: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    row = {"variant": variant, "profile": profile, "format": fmt, "quantization": quant, "bytes": size,
           "gzip_bytes": gzip_size, "kb": size / 1024, "gzip_kb": gzip_size / 1024, "accuracy": accuracy,
           "agreement": agreement, "p50_ms": p50_ms, **extra}
    row["ratio"] = base["bytes"] / size if base else 1.0
    row["speedup"] = base["p50_ms"] / p50_ms if base and p50_ms else 1.0
    return row


def _measure_source(model_path: Path, data, runs: int, variant: str = "example",
                    base: dict[str, Any] | None = None) -> tuple[dict[str, Any], np.ndarray]:
    from modelpress.files import gzip_bytes, raw_bytes
    from modelpress.latency import measure_latency
    from modelpress.model_io import load_model

    source = load_model(model_path)
    probs = source.predict(data.x_test)
    one = data.x_test[:1]
    keras_model = source.model
    latency = measure_latency(lambda: keras_model(one, training=False), runs=runs)
    row = _row(variant, "keras (source)", "keras", "none", raw_bytes(model_path), gzip_bytes(model_path),
               float(np.mean(probs.argmax(1) == data.y_test)), 1.0, latency.p50_ms, base)
    return row, probs


def _float32_tflite_row(model_path: Path, data, runs: int, variant: str, base: dict[str, Any] | None,
                        source_probs: np.ndarray) -> dict[str, Any]:
    """The source as plain float32 TFLite, one thread: the reference every speed-up is measured against
    (a Keras eager call costs far more than any interpreter call, so it would flatter every artifact)."""
    from modelpress.converters.tflite import to_tflite_bytes
    from modelpress.files import gzip_bytes
    from modelpress.latency import measure_latency
    from modelpress.tflite_interpreter import TFLiteModel

    blob = to_tflite_bytes(model_path, "none")
    model = TFLiteModel(blob, threads=1)
    probs = model.predict([data.x_test])[0]
    one = data.x_test[:1]
    p50 = measure_latency(lambda: model.predict([one]), runs=runs).p50_ms
    return _row(variant, "float32 TFLite (reference)", "tflite", "none", len(blob),
                gzip_bytes(blob), float(np.mean(probs.argmax(1) == data.y_test)),
                float(np.mean(probs.argmax(1) == source_probs.argmax(1))), p50, base)


def _measure_artifact(artifact, data, source_probs: np.ndarray, runs: int, base: dict[str, Any],
                      variant: str) -> dict[str, Any]:
    from modelpress.converters.mcu.figures import mcu_figures
    from modelpress.latency import measure_latency
    from modelpress.tflite_interpreter import TFLiteModel

    m = artifact.manifest
    if m.model_format == "tflite":
        model = TFLiteModel(artifact.model_path, threads=1)
        probs = model.predict([data.x_test])[0]
        one = data.x_test[:1]
        p50 = measure_latency(lambda: model.predict([one]), runs=runs).p50_ms
    else:
        from modelpress.model_io import load_model

        loaded = load_model(artifact.model_path)
        probs = loaded.predict(data.x_test)
        one = data.x_test[:1]
        p50 = measure_latency(lambda: loaded.predict(one), runs=runs).p50_ms
    return _row(variant, m.profile["name"], m.model_format, m.quantization, artifact.size_bytes,
                artifact.gzip_bytes, float(np.mean(probs.argmax(1) == data.y_test)),
                float(np.mean(probs.argmax(1) == source_probs.argmax(1))), p50, base,
                path=str(artifact.path), notes=m.notes, **mcu_figures(m.mcu))


def _short_json(value: Any, width: int = 150) -> str:
    """A JSON answer with floats rounded, cut to ``width`` characters."""
    def rounded(v):
        if isinstance(v, float):
            return round(v, 3)
        if isinstance(v, list):
            return [rounded(x) for x in v]
        if isinstance(v, dict):
            return {k: rounded(x) for k, x in v.items()}
        return v

    text = json.dumps(rounded(value))
    return excerpt(text, width)


def _serve_and_ask(options: TripOptions, model_path: Path, data, echo: Callable[[str], None]) -> dict[str, Any]:
    import shutil

    import modelpress
    from modelpress.demo.serving import ask_both_protocols, running_server

    repo = options.out / "repo"
    shutil.rmtree(repo, ignore_errors=True)  # the demo's own repository: start from version 1 each run
    published = modelpress.deploy(model_path, "raspberry-pi-4", repo, calibration=data.x_train[:300],
                                  verify_data=data.x_test, name="digits").published[0]
    sample = data.x_test[:1]
    input_name = published.artifact.manifest.inputs[0].name
    echo(f"      published {published.path}; starting `modelpress serve {repo}` on 127.0.0.1")
    with running_server(repo, model="digits") as url:
        answers = ask_both_protocols(url, "digits", sample, input_name)
    v1 = np.asarray(answers["v1"]["response"]["predictions"][0])
    v2 = np.asarray(answers["v2"]["response"]["outputs"][0]["data"])
    echo(f"      TF Serving v1  POST {url}/v1/models/digits:predict -> {answers['v1']['status']}, "
         f"class {int(v1.argmax())} (p={v1.max():.3f})")
    echo(f"      Open Inference v2  POST {url}/v2/models/digits/infer -> {answers['v2']['status']}, "
         f"class {int(v2.argmax())} (p={v2.max():.3f})")
    echo(f"      v1 answer: {_short_json(answers['v1']['response'])}")
    echo(f"      v2 answer: {_short_json(answers['v2']['response'])}")
    echo(f"      true label {int(data.y_test[0])}; server stopped")
    return {"url": url, "label": int(data.y_test[0]), "v1_class": int(v1.argmax()), "v2_class": int(v2.argmax())}


def _compress(options: TripOptions, model_path: Path, data_path: Path, echo: Callable[[str], None]) -> list:
    """(variant name, compressed model file) for each recipe; the reports land beside the models."""
    import modelpress

    variants = []
    for recipe in options.recipes:
        result = modelpress.compress(model_path, recipe, data_path, out=options.out / "compressed" / recipe,
                                     quiet=True, measure_int8=False)
        s = result.report.summary()
        sparsity = 1 - s["nonzero_params_after"] / max(s["params_after"], 1)
        echo(f"      {recipe:<10} accuracy {s['accuracy_before']:.2%} -> {s['accuracy_after']:.2%}, parameters "
             f"{s['params_before']:,} -> {s['params_after']:,} ({sparsity:.0%} zero), MACs "
             f"{s['macs_before']:,} -> {s['macs_after']:,}")
        variants.append((recipe, result.model_path))
    return variants


def run_trip(options: TripOptions, echo: Callable[[str], None] = print) -> TripResult:
    """Run the main job; ``echo`` receives one line per step (the CLI passes click.echo)."""
    import modelpress
    from modelpress.demo.example import CLASS_NAMES, digits_data, train_example_model

    out = options.out
    steps = 4 + int(options.report) + int(options.serve)
    (out / "model").mkdir(parents=True, exist_ok=True)
    result = TripResult(out=out, info={"options": {k: str(v) for k, v in asdict(options).items()},
                                        "machine": machine_info()})
    data = digits_data(seed=0)
    data_path = data.save_npz(out / "model" / "digits.npz")
    echo(f"[1/{steps}] training the example CNN on {len(data.x_train)} real digits (scikit-learn), "
         f"{options.epochs} epochs, seed 0")
    model = train_example_model(data, flavor="keras3", epochs=options.epochs)
    model_path = out / "model" / "digits.keras"
    model.save(model_path)
    result.info.update(model=str(model_path), data=str(data_path), params=int(model.count_params()))

    echo(f"[2/{steps}] compressing with {len(options.recipes)} recipe(s): {', '.join(options.recipes) or '-'}")
    variants = [("example", model_path)] + _compress(options, model_path, data_path, echo)

    echo(f"[3/{steps}] converting {len(variants)} model(s) for {len(options.profiles)} device profiles: "
         f"{', '.join(options.profiles)}")
    base = None
    for variant, path in variants:
        source_row, source_probs = _measure_source(path, data, options.latency_runs, variant, base)
        if base is None:  # sizes against the source file; speed against the source as float32 TFLite
            reference = _float32_tflite_row(path, data, options.latency_runs, variant, None, source_probs)
            base = dict(source_row, p50_ms=reference["p50_ms"])
            source_row["speedup"] = base["p50_ms"] / source_row["p50_ms"]
            reference["ratio"] = base["bytes"] / reference["bytes"]
            result.rows += [source_row, reference]
        else:
            result.rows.append(source_row)
        for name in options.profiles:
            artifact = modelpress.convert(path, name, out / "artifacts" / variant / name,
                                          calibration=data.x_train[:300], verify_data=data.x_test,
                                          labels=CLASS_NAMES, name="digits")
            row = _measure_artifact(artifact, data, source_probs, options.latency_runs, base, variant)
            result.rows.append(row)
            echo(f"      {variant:<10} {name:<16} {row['quantization']:<8} {row['kb']:7.1f} KB "
                 f"({row['gzip_kb']:.1f} KB gzip)  agreement {row['agreement']:.2%}")

    echo(f"[4/{steps}] comparison on the {len(data.x_test)} held-out digits (sizes against the float32 source "
         "file; latency: one sample, CPU, median; speed-up against the source as float32 TFLite, one thread)")
    echo("")
    echo(result.table())
    echo("")
    saved = result.save()
    echo(f"      results: {saved}")
    step = 4
    if options.report:
        from modelpress.report import render_report

        step += 1
        paths = render_report(out)
        result.info["report"] = str(paths.html)
        echo(f"[{step}/{steps}] report: {paths.html} ({len(paths.images)} plots)")
    if options.serve:
        step += 1
        echo(f"[{step}/{steps}] serving the raspberry-pi-4 artifact and asking it through both protocols")
        result.info["serving"] = _serve_and_ask(options, model_path, data, echo)
    result.save()
    return result
