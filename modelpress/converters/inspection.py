"""Describe what is inside a model package, a .tflite file, or a Keras / SavedModel model.

Packages and .tflite files are read without TensorFlow (flatbuffer + interpreter), so ``inspect``
works on a device too.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from modelpress.converters.sizes import gzip_bytes, raw_bytes
from modelpress.errors import ModelLoadError
from modelpress.manifest import MANIFEST_NAME, read_manifest


def _tflite(path: Path) -> dict[str, Any]:
    from modelpress.tflite_graph import read_graph
    from modelpress.tflite_interpreter import TFLiteModel

    data = path.read_bytes()
    graph = read_graph(data)
    model = TFLiteModel(data)
    return {
        "kind": "tflite", "path": str(path),
        "inputs": [asdict(s) for s in model.input_specs()],
        "outputs": [asdict(s) for s in model.output_specs()],
        "ops": graph.op_counts, "custom_ops": sorted(set(graph.custom_ops)),
        "weight_bytes": graph.weight_bytes, "activation_bytes": graph.activation_bytes,
        "bytes": len(data), "gzip_bytes": gzip_bytes(path),
        "quantization": _guess_quantization(model),
    }


def _guess_quantization(model) -> str:
    dtypes = {str(d["dtype"].__name__) for d in model.inputs + model.outputs}
    if dtypes & {"int8", "uint8"}:
        return "int8 (integer I/O)"
    if "int16" in dtypes:
        return "int16x8 (integer I/O)"
    return "see ops (float I/O)"


def _package(path: Path) -> dict[str, Any]:
    manifest = read_manifest(path)
    info: dict[str, Any] = {"kind": "package", "path": str(path), "manifest": manifest.to_dict()}
    model_path = path / manifest.model_file
    if manifest.model_format == "tflite":
        info["model"] = _tflite(model_path)
    return info


def _keras(path: Path) -> dict[str, Any]:
    from modelpress.model_io import load_model

    source = load_model(path)
    info: dict[str, Any] = {"kind": source.flavor, "path": str(path), "bytes": raw_bytes(path),
                            "gzip_bytes": gzip_bytes(path), "inputs": source.input_shapes()}
    if source.is_keras:
        model = source.model
        info["parameters"] = int(model.count_params())
        info["layers"] = [{"name": layer.name, "type": type(layer).__name__,
                           "parameters": int(layer.count_params())} for layer in model.layers]
        info["outputs"] = [list(t.shape) for t in (model.outputs if isinstance(model.outputs, list)
                                                   else [model.outputs])]
    return info


def inspect_path(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ModelLoadError(f"{path} does not exist; expected a model package, a .tflite file or a model")
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        return _package(path)
    if path.suffix == ".tflite":
        return _tflite(path)
    return _keras(path)
