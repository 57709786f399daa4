"""``modelpress.compress`` and ``modelpress.evaluate``: make a trained model smaller, and measure it.

    import modelpress
    model, report = modelpress.compress("model.keras", "deep-compression", "data.npz", out="build/small")
    report.summary()["accuracy_after"], report.summary()["gzip_ratio_int8_vs_source"]
    modelpress.evaluate("build/small/model.keras", "data.npz")["accuracy"]
    modelpress.evaluate("build/rpi", "data.npz")      # a package made by `modelpress convert` (TFLite)

``data`` is an ``.npz`` with x_train / y_train (x_val / y_val optional), ``(x, y)`` arrays, a dict of
those arrays, or a ``tf.data.Dataset`` of (x, y). The output model has the flavour of the input.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelpress.errors import CompressionError, DataError, UsageError


@dataclass
class CompressResult:
    """The compressed model, its report, and where they were written (with ``out``).

    Unpacks as ``model, report = modelpress.compress(...)``.
    """

    model: Any
    report: Any
    flavor: str
    model_path: Path | None = None
    report_json: Path | None = None
    report_markdown: Path | None = None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.report))


def _pick_flavor(model: Any, flavor: str | None, safe_mode: bool):
    from modelpress.errors import ModelLoadError
    from modelpress.model_io import load_model

    if flavor not in (None, "keras3", "tf_keras"):
        raise UsageError(f"flavor {flavor!r} is not one of keras3, tf_keras")
    if isinstance(model, (str, Path)) and Path(model).suffix.lower() in (".h5", ".hdf5") and flavor is None:
        # a Keras 2 file: prefer tf_keras, where tfmot can work on it
        try:
            return load_model(model, safe_mode=safe_mode, flavor="tf_keras")
        except ModelLoadError:
            return load_model(model, safe_mode=safe_mode)
    source = load_model(model, safe_mode=safe_mode, flavor=flavor)
    if flavor and source.flavor != flavor:
        raise UsageError(f"{model} loaded as {source.flavor}, not {flavor}; save it as .h5 to choose the flavour")
    return source


def _check_inputs(model: Any, x: np.ndarray) -> None:
    inputs = model.inputs
    if len(inputs) != 1:
        raise CompressionError(f"model {model.name!r} has {len(inputs)} inputs; compress handles single-input models")
    want = [None if d is None else int(d) for d in inputs[0].shape[1:]]
    got = list(x.shape[1:])
    if len(want) != len(got) or any(w is not None and w != g for w, g in zip(want, got)):
        raise DataError(f"data x_train has samples of shape {got}, but the model takes {want}; reshape the data")


def compress(model: Any, recipe: Any, data: Any, *, out: str | Path | None = None, flavor: str | None = None,
             quiet: bool = True, safe_mode: bool = True, overwrite: bool = True,
             measure_int8: bool = True) -> CompressResult:
    """Compress ``model`` with ``recipe`` (a built-in name, a .yaml file, a dict or a Recipe), fine-tuning on ``data``.

    Returns the compressed model (same Keras flavour as the input) and a
    :class:`~modelpress.compressor.report.CompressionReport`. With ``out``, writes ``out/model.keras`` (or
    ``model.h5`` for tf_keras), ``out/report.json`` and ``out/report.md`` atomically::

        model, report = compress("digits.keras", "prune-80", "digits.npz")
        print(report.to_markdown())
    """
    from modelpress.api.model_sizes import model_sizes
    from modelpress.compressor.data import load_data
    from modelpress.compressor.flavors import recompile
    from modelpress.compressor.pipeline import run_recipe
    from modelpress.compressor.recipe import load_recipe
    from modelpress.compressor.report import CompressionReport, accuracy, compare_layers, layer_stats

    start = time.perf_counter()
    chosen = load_recipe(recipe)
    source = _pick_flavor(model, flavor, safe_mode)
    if not source.is_keras:
        raise CompressionError(f"{source.path} is a SavedModel; compress needs the Keras model (.keras or .h5) "
                               "it was exported from")
    dataset = load_data(data)
    _check_inputs(source.model, dataset.x_train)
    if out is not None:
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out} is a file; name a folder for the compressed model and its report")
        if out.exists() and any(out.iterdir()):
            if not (out / "report.json").is_file():
                raise UsageError(f"--out {out} holds files that are not a modelpress compression result; refusing "
                                 "to replace it (choose an empty or new folder)")
            if not overwrite:
                raise UsageError(f"--out {out} already exists; remove it or allow overwriting")
    before = layer_stats(source.model)
    acc_before = accuracy(dataset.y_val, source.predict(dataset.x_val))
    calibration = dataset.x_train[:200]
    sizes_before = model_sizes(source.model, calibration if measure_int8 else None, dataset.x_val, dataset.y_val)
    compressed, steps, notes = run_recipe(source.model, source.flavor, chosen, dataset, quiet=quiet)
    recompile(compressed, source.model, source.flavor)
    after = layer_stats(compressed)
    outputs = np.concatenate([np.asarray(compressed(dataset.x_val[i:i + 256], training=False))
                              for i in range(0, len(dataset.x_val), 256)])
    sizes_after = model_sizes(compressed, calibration if measure_int8 else None, dataset.x_val, dataset.y_val)
    report = CompressionReport(
        name=source.name, recipe=chosen.get_config(), flavor=source.flavor,
        layers=compare_layers(before, after), accuracy_before=acc_before,
        accuracy_after=accuracy(dataset.y_val, outputs), sizes_before=sizes_before, sizes_after=sizes_after,
        data=dataset.describe(), steps=steps, notes=notes, seconds=time.perf_counter() - start)
    result = CompressResult(model=compressed, report=report, flavor=source.flavor)
    if out is not None:
        from modelpress.atomic import atomic_directory
        from modelpress.model_io import save_model

        with atomic_directory(out, overwrite=True) as tmp:
            saved = save_model(compressed, tmp / "model.keras")
            report.write(tmp)
        result.model_path = out / saved.name
        result.report_json, result.report_markdown = out / "report.json", out / "report.md"
    return result


def evaluate(model: Any, data: Any, *, safe_mode: bool = True, threads: int = 1) -> dict[str, Any]:
    """Top-1 accuracy of a Keras model, a .tflite file or a package made by ``modelpress convert``.

    Evaluates on ``x_val`` / ``y_val`` (else ``x_test`` / ``y_test``, ``x`` / ``y``, ``x_train`` / ``y_train``)::

        evaluate("build/rpi", "digits.npz")     # {"accuracy": 0.97, "samples": 359, "kind": "tflite", ...}
    """
    from modelpress.compressor.data import load_eval_data
    from modelpress.compressor.report import accuracy
    from modelpress.manifest import MANIFEST_NAME

    x, y, source = load_eval_data(data)
    path = Path(model) if isinstance(model, (str, Path)) else None
    if path is not None and (path.suffix.lower() == ".tflite" or (path / MANIFEST_NAME).is_file()):
        return _evaluate_tflite(path, x, y, source, threads)
    from modelpress.model_io import load_model

    loaded = load_model(model, safe_mode=safe_mode)
    want = loaded.input_shapes()[0][1:]
    if len(want) != len(x.shape[1:]) or any(w not in (None, -1) and int(w) != g for w, g in zip(want, x.shape[1:])):
        raise DataError(f"{source} has samples of shape {list(x.shape[1:])}, but the model takes {want}")
    outputs = loaded.predict(x)
    return {"accuracy": accuracy(y, outputs), "samples": int(len(x)), "kind": loaded.flavor, "data": source,
            "model": str(path) if path else loaded.name}


def _evaluate_tflite(path: Path, x: np.ndarray, y: np.ndarray, source: str, threads: int) -> dict[str, Any]:
    from modelpress.compressor.report import accuracy
    from modelpress.errors import ArtifactError
    from modelpress.manifest import read_manifest
    from modelpress.tflite_interpreter import TFLiteModel

    info: dict[str, Any] = {}
    if path.is_dir():
        manifest = read_manifest(path)
        if manifest.model_format != "tflite":
            raise ArtifactError(f"{path} holds a {manifest.model_format} package; evaluate runs TFLite packages "
                                "(pass the Keras model for the rest)")
        info = {"profile": manifest.profile.get("name"), "quantization": manifest.quantization}
        path = path / manifest.model_file
    interpreter = TFLiteModel(path, threads=threads)
    shape = list(interpreter.input_details[0].get("shape_signature", interpreter.input_details[0]["shape"]))[1:]
    if len(shape) != len(x.shape[1:]) or any(w > 0 and w != g for w, g in zip(shape, x.shape[1:])):
        raise DataError(f"{source} has samples of shape {list(x.shape[1:])}, but {path.name} takes {shape}")
    batch = interpreter.fixed_batch or 256
    n = len(x) - len(x) % batch if interpreter.fixed_batch else len(x)
    outputs = np.concatenate([interpreter.predict([x[i:i + batch]])[0] for i in range(0, n, batch)])
    return {"accuracy": accuracy(y[:n], outputs), "samples": int(n), "kind": "tflite", "data": source,
            "model": str(path), **info}
