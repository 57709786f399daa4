"""Convert a source model into a model package: make the artifact for a :class:`Plan`, then finish it.

This is the engine behind :func:`modelpress.convert`; see there for the arguments users pass. The
conversion (the "make" step) runs in a child process; everything after it is the one packaging path
every package takes (:func:`modelpress.converters.finish.finish_package`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelpress.converters.artifact import Artifact
from modelpress.converters.calibration import Samples
from modelpress.converters.finish import Contents, Made, finish_package
from modelpress.converters.isolation import run_isolated
from modelpress.converters.quantizer import notes as quantizer_notes
from modelpress.converters.savedmodel import export_saved_model, run_saved_model
from modelpress.converters.tflite import convert_and_run, model_reference
from modelpress.cpus import threads_for
from modelpress.device_profiles import DeviceProfile
from modelpress.files import raw_bytes
from modelpress.model_io import LoadedModel

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
    #: a PEM EC private key: the package is signed in its staging folder, before it appears
    sign_key: str | Path | None = None
    #: per-layer precision for quantization "mixed" (LayerPrecision.get_config())
    layer_precision: dict[str, Any] | None = None
    #: the user's own bound on every output's max |err| (replaces the profile's bounds), or None
    max_abs_error: float | None = None


def make_tflite(source: LoadedModel, plan: Plan, folder: Path) -> Made:
    """Convert (calibrating when int8) in a child process and run the result on the verification inputs."""
    threads = threads_for(plan.profile.threads)
    options = dict(quantization=plan.quantization,
                   calibration=None if plan.calibration is None else plan.calibration.inputs,
                   input_dtype=plan.input_dtype, output_dtype=plan.output_dtype, op_set=plan.profile.op_set,
                   batch_size=1 if plan.profile.static_batch else None, input_shapes=plan.input_shapes,
                   names=([s.name for s in source.input_specs()], source.output_names()),
                   quantizer=plan.profile.quantizes_with, hardware=plan.profile.hardware, layers=plan.layer_precision)
    with tempfile.TemporaryDirectory(prefix="modelpress-source-") as tmp:
        reference = model_reference(source, Path(tmp))
        data, outputs, tensor_errors = run_isolated("TFLite conversion", convert_and_run, reference,
                                                    plan.safe_mode, options, plan.verification.inputs, threads)
    model_path = folder / "model.tflite"
    model_path.write_bytes(data)
    notes = [] if tensor_errors is None else quantizer_notes(plan.quantization, plan.layer_precision)
    return Made(model_path, outputs, notes, tensor_errors=tensor_errors)


def make_saved_model(source: LoadedModel, plan: Plan, folder: Path) -> Made:
    """Export the serving signature and run it on the verification inputs."""
    model_path = export_saved_model(source, folder / "saved_model")
    return Made(model_path, run_saved_model(model_path, plan.verification.inputs))


def build_package(source: LoadedModel, plan: Plan, out: Path, overwrite: bool = True) -> Artifact:
    """Convert, check, verify and write ``out`` atomically; nothing is left behind on failure."""
    make = make_tflite if plan.model_format == "tflite" else make_saved_model
    contents = Contents(
        name=plan.name, version=plan.version, profile=plan.profile, quantization=plan.quantization,
        io_dtypes=(plan.input_dtype, plan.output_dtype), verification=plan.verification,
        reference=source.predict_named(plan.verification.inputs),
        calibration=plan.calibration.describe() if plan.calibration is not None else {},
        source={"path": str(source.path) if source.path else None, "sha256": source.sha256,
                "flavor": source.flavor, "bytes": raw_bytes(source.path) if source.path is not None else None},
        labels=plan.labels, run_shapes=plan.run_shapes, max_abs_error=plan.max_abs_error,
        sign_key=Path(plan.sign_key) if plan.sign_key is not None else None)
    return finish_package(out, lambda folder: make(source, plan, folder), contents, overwrite=overwrite)
