"""Build one verified model package: convert, check the profile's constraints, verify, write atomically.

This is the engine behind :func:`modelpress.convert`; see there for the arguments users pass.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelpress import __version__
from modelpress.atomic import atomic_directory
from modelpress.converters.artifact import Artifact
from modelpress.converters.calibration import Samples
from modelpress.converters.constraints import check_constraints, raise_on
from modelpress.converters.edgetpu import compile_for_edgetpu
from modelpress.converters.isolation import run_isolated
from modelpress.converters.mcu.bundle import add_mcu_parts, is_mcu_profile
from modelpress.converters.quantizer import notes as quantizer_notes
from modelpress.converters.savedmodel import describe_saved_model, export_saved_model, run_saved_model
from modelpress.converters.sizes import gzip_bytes, raw_bytes
from modelpress.converters.tflite import convert_and_run, model_reference
from modelpress.converters.verify import check_fidelity, measure_outputs
from modelpress.device_profiles import DeviceProfile
from modelpress.manifest import LABELS_NAME, Manifest, write_manifest
from modelpress.model_io import LoadedModel, file_sha256
from modelpress.tflite_graph import read_graph
from modelpress.tflite_interpreter import TFLiteModel

log = logging.getLogger(__name__)

VERIFY_SAMPLES = 1000
RANDOM_VERIFY_SAMPLES = 64


@dataclass
class Plan:
    """Everything decided before converting: what to build and on what data."""

    profile: DeviceProfile
    model_format: str
    quantization: str
    input_dtype: str
    output_dtype: str
    calibration: Samples | None
    verification: Samples
    name: str
    version: str
    labels: list[str] | None = None
    #: shapes to convert at ({input: shape, None where dynamic}); None keeps the model's own
    input_shapes: dict[str, list[Any]] | None = None
    #: the shapes the user runs (dynamic dimensions fixed): recorded in the manifest
    run_shapes: dict[str, list[Any]] | None = None
    safe_mode: bool = True
    #: per-layer precision for quantization "mixed" (LayerPrecision.get_config())
    layer_precision: dict[str, Any] | None = None


def _tool_versions(backend: str) -> dict[str, str]:
    import tensorflow as tf

    versions = {"modelpress": __version__, "tensorflow": tf.__version__, "numpy": np.__version__,
                "interpreter": backend}
    try:
        import keras

        versions["keras"] = keras.__version__
    except ImportError:
        pass
    return versions


def _build_tflite(source: LoadedModel, plan: Plan, folder: Path):
    threads = max(1, min(plan.profile.threads, os.cpu_count() or 1))
    options = dict(quantization=plan.quantization,
                   calibration=None if plan.calibration is None else plan.calibration.inputs,
                   input_dtype=plan.input_dtype, output_dtype=plan.output_dtype, op_set=plan.profile.op_set,
                   batch_size=1 if plan.profile.static_batch else None, input_shapes=plan.input_shapes,
                   names=([s.name for s in source.input_specs()], source.output_names()),
                   quantizer=plan.profile.quantizes_with, hardware=plan.profile.hardware, layers=plan.layer_precision)
    with tempfile.TemporaryDirectory(prefix="modelpress-source-") as tmp:
        reference = model_reference(source, Path(tmp))
        data, candidate, tensor_errors = run_isolated("TFLite conversion", convert_and_run, reference,
                                                      plan.safe_mode, options, plan.verification.inputs, threads)
    model_path = folder / "model.tflite"
    model_path.write_bytes(data)
    graph = read_graph(data)
    interpreter = TFLiteModel(data, threads=threads)
    inputs, outputs = interpreter.input_specs(), interpreter.output_specs()
    problems = check_constraints(plan.profile, len(data), graph, inputs, outputs,
                                 (plan.input_dtype, plan.output_dtype))
    raise_on(problems, plan.profile)
    notes = [] if tensor_errors is None else quantizer_notes(plan.quantization, plan.layer_precision)
    if plan.profile.hardware == "edgetpu":
        _, note = compile_for_edgetpu(model_path, plan.profile.compiler or "edgetpu_compiler")
        notes.append(note)
    return model_path, inputs, outputs, graph.ops, candidate, interpreter.backend, notes, tensor_errors


def _build_saved_model(source: LoadedModel, plan: Plan, folder: Path):
    model_path = export_saved_model(source, folder / "saved_model")
    inputs, outputs = describe_saved_model(model_path)
    problems = check_constraints(plan.profile, raw_bytes(model_path), None, inputs, outputs,
                                 (plan.input_dtype, plan.output_dtype))
    raise_on(problems, plan.profile)
    candidate = run_saved_model(model_path, plan.verification.inputs)
    return model_path, inputs, outputs, [], candidate, "tensorflow", [], None


def _with_roles(specs: list, roles: dict[str, str], default: str) -> list:
    for spec in specs:
        spec.role = roles.get(spec.name, default)
    return specs


def build_package(source: LoadedModel, plan: Plan, out: Path, overwrite: bool = True) -> Artifact:
    """Convert, check, verify and write ``out`` atomically; nothing is left behind on failure."""
    with atomic_directory(out, overwrite=overwrite) as folder:
        build = _build_tflite if plan.model_format == "tflite" else _build_saved_model
        model_path, inputs, outputs, ops, candidate, backend, notes, tensor_errors = build(source, plan, folder)
        reference = source.predict_named(plan.verification.inputs)
        fidelity = measure_outputs(reference, candidate, plan.profile, plan.verification.source,
                                   plan.verification.is_random)
        fidelity.tensors = tensor_errors
        check_fidelity(fidelity, plan.profile.name, plan.quantization)
        _with_roles(inputs, {}, "input")
        _with_roles(outputs, {o["artifact_output"]: o["role"] for o in fidelity.outputs.values()}, "values")
        dynamic = [s.name for s in inputs if any(d < 0 for d in s.shape[1:])]
        if dynamic and plan.run_shapes:
            notes.append("dynamic dimensions kept in the model (the runtime resizes); verified at "
                         + ", ".join(f"{n}=[{', '.join('N' if d is None else str(d) for d in plan.run_shapes[n])}]"
                                     for n in dynamic if n in plan.run_shapes))
        if plan.verification.is_random:
            notes.append(f"verified on {len(plan.verification)} random inputs only; pass --verify-data (or "
                         "--calibration) with real samples for a meaningful top-1 agreement")
        if plan.calibration is not None and plan.calibration.is_random:
            notes.append("calibrated on random data at the user's request: expect poor int8 accuracy")
        mcu = None
        if plan.model_format == "tflite" and is_mcu_profile(plan.profile):
            parts = add_mcu_parts(folder, model_path, plan.profile, plan.name, plan.verification.x,
                                  plan.verification.source)
            mcu, notes = parts.info, notes + parts.notes
        labels_file = None
        if plan.labels:
            (folder / LABELS_NAME).write_text("\n".join(plan.labels) + "\n", encoding="utf-8")
            labels_file = LABELS_NAME
        source_bytes = raw_bytes(source.path) if source.path is not None else None
        manifest = Manifest(
            name=plan.name, version=plan.version, model_format=plan.model_format,
            model_file=model_path.relative_to(folder).as_posix(), inputs=inputs, outputs=outputs,
            profile={"name": plan.profile.name, "hardware": plan.profile.hardware,
                     "threads": plan.profile.threads, "delegate": plan.profile.delegate,
                     "source": plan.profile.source},
            quantization=plan.quantization,
            calibration=plan.calibration.describe() if plan.calibration is not None else {},
            source={"path": str(source.path) if source.path else None, "sha256": source.sha256,
                    "flavor": source.flavor, "bytes": source_bytes},
            artifact={"sha256": file_sha256(model_path), "bytes": raw_bytes(model_path),
                      "gzip_bytes": gzip_bytes(model_path)},
            fidelity=fidelity.to_dict(), ops=ops, tool_versions=_tool_versions(backend),
            created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            labels_file=labels_file, notes=notes, mcu=mcu,
        )
        write_manifest(folder, manifest)
    return Artifact(Path(out), manifest)

