"""Describe what is inside a model package, a .tflite file, or a Keras / SavedModel model.

Packages and .tflite files are read without TensorFlow (flatbuffer + interpreter), so ``inspect``
works on a device too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from modelpress.errors import ModelLoadError
from modelpress.files import gzip_bytes, raw_bytes
from modelpress.manifest import MANIFEST_NAME, read_manifest


def _tflite(path: Path) -> dict[str, Any]:
    from modelpress.tflite_graph import read_graph
    from modelpress.tflite_interpreter import TFLiteModel

    data = path.read_bytes()
    graph = read_graph(data)
    model = TFLiteModel(data)
    info = {
        "format": "tflite",
        "inputs": [asdict(s) for s in model.input_specs()],
        "outputs": [asdict(s) for s in model.output_specs()],
        "ops": graph.op_counts, "custom_ops": sorted(set(graph.custom_ops)),
        "weight_bytes": graph.weight_bytes, "activation_bytes": graph.activation_bytes,
        "bytes": len(data), "gzip_bytes": gzip_bytes(path),
        "quantization": graph.quantization,
    }
    if graph.quantization == "int8":  # what each microcontroller / NPU profile would need: estimates
        from modelpress.converters.mcu.estimates import estimates_for_builtin_profiles

        info["mcu_estimates"] = estimates_for_builtin_profiles(data)
    return info


def _package(path: Path, trusted: Sequence[str | Path] = ()) -> dict[str, Any]:
    from modelpress.signing import signature_summary

    manifest = read_manifest(path)
    info: dict[str, Any] = {"kind": "package", "path": str(path), "manifest": manifest.to_dict(),
                            "signature": signature_summary(path, trusted)}
    model_path = path / manifest.model_file
    if manifest.model_format == "tflite":
        info["model"] = _tflite(model_path)
    else:
        info["model"] = {"format": manifest.model_format, "quantization": manifest.quantization,
                         "bytes": raw_bytes(model_path), "gzip_bytes": gzip_bytes(model_path),
                         "inputs": info["manifest"]["inputs"], "outputs": info["manifest"]["outputs"]}
    return info


def _spec(name: str, shape: Any, dtype: Any) -> dict[str, Any]:
    return {"name": name, "shape": [-1 if d is None else int(d) for d in shape], "dtype": str(dtype)}


def _keras(path: Path) -> dict[str, Any]:
    from modelpress.model_io import load_model

    source = load_model(path)
    model_info: dict[str, Any] = {"flavor": source.flavor, "bytes": raw_bytes(path), "gzip_bytes": gzip_bytes(path),
                                  "quantization": "none"}
    model_info["inputs"] = [_spec(s.name, s.shape, s.dtype) for s in source.input_specs()]
    if source.is_keras:
        model = source.model
        model_info["params"] = int(model.count_params())
        shapes = [t.shape for t in (model.outputs if isinstance(model.outputs, list) else [model.outputs])]
        model_info["outputs"] = [_spec(name, shape, "float32") for name, shape in zip(source.output_names(), shapes)]
        model_info["layers"] = [{"name": layer.name, "type": type(layer).__name__,
                                 "params": int(layer.count_params())} for layer in model.layers]
    else:
        outputs = source.signature().structured_outputs
        model_info["outputs"] = [_spec(name, spec.shape, spec.dtype.name) for name, spec in outputs.items()]
    dynamic = [s.name for s in source.input_specs() if s.unknown_dims()]
    if dynamic:
        model_info["notes"] = [f"input {name!r} has dynamic dimensions besides the batch: pass --input-shape "
                               f"{name}=... (batch first) to convert, or calibration data of that shape"
                               for name in dynamic]
    return {"kind": source.flavor, "path": str(path), "model": model_info}


def inspect_path(path: Path, trusted: Sequence[str | Path] = ()) -> dict[str, Any]:
    if not path.exists():
        raise ModelLoadError(f"{path} does not exist; expected a model package, a .tflite file or a model")
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        return _package(path, trusted)
    if path.is_dir() and not (path / "saved_model.pb").is_file():
        from modelpress.manifest_inference import find_model

        found = find_model(path)
        if found is not None and found[0] == "tflite":  # a version folder holding a model made elsewhere
            return {"kind": "tflite", "path": str(path / found[1]), "model": _tflite(path / found[1])}
    if path.suffix == ".tflite":
        return {"kind": "tflite", "path": str(path), "model": _tflite(path)}
    return _keras(path)
