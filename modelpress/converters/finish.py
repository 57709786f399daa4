"""Finish a model package: the one step every package passes, whoever chose its settings.

Making the artifact (a conversion by ``modelpress convert``, the candidate ``modelpress press`` measured,
...) is the caller's ``make``; everything a package then needs is done here, the same way for all::

    artifact = finish_package(Path("build/m4"), make, Contents(name="digits", version="1", profile=profile,
                              quantization="int8", io_dtypes=("int8", "int8"), verification=samples,
                              reference=source.predict_named(samples.inputs), calibration={...}, source={...}))

Inside a hidden staging folder that becomes ``out`` in one rename (:mod:`modelpress.atomic`): ``make``
writes the model file and runs it on the verification inputs; then the profile's constraints are checked,
fidelity against the source is measured and held to the profile's floor, output roles are set, the model
is compiled for the Edge TPU, the firmware half of an MCU / NPU package is added (C sources, measured
tensor arena, Vela), labels are written and the manifest records all of it with the tools' versions.
Nothing is left behind when any step refuses the package.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelpress import __version__
from modelpress.atomic import atomic_directory
from modelpress.converters.artifact import Artifact
from modelpress.converters.calibration import Samples
from modelpress.converters.constraints import check_constraints, raise_on
from modelpress.converters.mcu.bundle import add_mcu_parts, is_mcu_profile
from modelpress.converters.verify import check_fidelity, measure_outputs
from modelpress.cpus import threads_for
from modelpress.device_profiles import DeviceProfile
from modelpress.files import file_sha256, gzip_bytes, raw_bytes
from modelpress.manifest import LABELS_NAME, Manifest, TensorSpec, shape_text, write_manifest


@dataclass
class Made:
    """What ``make`` left in the staging folder: the model file and its outputs on the verification inputs."""

    model_path: Path
    outputs: dict[str, np.ndarray]      # by output name, one row per verification sample
    notes: list[str] = field(default_factory=list)
    #: per-tensor errors from LiteRT's quantizer (SNR, cosine), when it quantized the model
    tensor_errors: dict[str, Any] | None = None


@dataclass
class Contents:
    """What a package says besides its model file: who it is for, what it was checked against."""

    name: str
    version: str
    profile: DeviceProfile
    quantization: str
    io_dtypes: tuple[str, str]             # the (input, output) dtypes planned, checked against the profile
    verification: Samples                  # the inputs ``make`` ran the artifact on
    reference: dict[str, np.ndarray]       # the source model's outputs on the same inputs, by name
    calibration: dict[str, Any]            # Samples.describe() of the calibration data, or {}
    source: dict[str, Any]                 # path, sha256, flavor, bytes of the source model (and how it was chosen)
    labels: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    run_shapes: dict[str, list[Any]] | None = None  # the shapes verified at, where the model keeps dynamic ones
    sign_key: Path | None = None           # a PEM EC private key: the package is signed before it appears
    max_abs_error: float | None = None     # the user's own bound on every output's max |err| (any quantization)


def tool_versions(backend: str) -> dict[str, str]:
    """The versions that made and checked a package (recorded in its manifest)."""
    import tensorflow as tf

    versions = {"modelpress": __version__, "tensorflow": tf.__version__, "numpy": np.__version__,
                "interpreter": backend}
    try:
        import keras

        versions["keras"] = keras.__version__
    except ImportError:
        pass
    return versions


def fidelity_floor(profile: DeviceProfile, quantization: str) -> DeviceProfile:
    """The profile whose floor a package is held to: its error bound was set for the profile's own
    quantization, so another quantization keeps only the top-1 agreement floor::

        fidelity_floor(load_profile("server-cpu"), "int8").max_abs_error     # None
    """
    if quantization != profile.quantization and (profile.max_abs_error is not None
                                                  or profile.max_relative_error is not None):
        return dataclasses.replace(profile, max_abs_error=None, max_relative_error=None)
    return profile


def _describe(model_path: Path, threads: int) -> tuple[list[TensorSpec], list[TensorSpec], Any, str]:
    """(inputs, outputs, graph or None, what runs it) of the model file."""
    if model_path.suffix == ".tflite":
        from modelpress.tflite_graph import read_graph
        from modelpress.tflite_interpreter import TFLiteModel

        data = model_path.read_bytes()
        interpreter = TFLiteModel(data, threads=threads)
        return interpreter.input_specs(), interpreter.output_specs(), read_graph(data), interpreter.backend
    from modelpress.converters.savedmodel import describe_saved_model

    inputs, outputs = describe_saved_model(model_path)
    return inputs, outputs, None, "tensorflow"


def _notes(contents: Contents, inputs: list[TensorSpec]) -> list[str]:
    notes = []
    dynamic = [s.name for s in inputs if any(d < 0 for d in s.shape[1:])]
    if dynamic and contents.run_shapes:
        notes.append("dynamic dimensions kept in the model (the runtime resizes); verified at "
                     + ", ".join(f"{n}={shape_text(contents.run_shapes[n], open_as='N')}"
                                 for n in dynamic if n in contents.run_shapes))
    if contents.verification.is_random:
        notes.append(f"verified on {len(contents.verification)} random inputs only; pass --verify-data (or "
                     "--calibration) with real samples for a meaningful top-1 agreement")
    if contents.calibration.get("random"):
        notes.append("calibrated on random data at the user's request: expect poor int8 accuracy")
    return notes


def _finish(folder: Path, made: Made, contents: Contents) -> Manifest:
    model_path, tflite = made.model_path, made.model_path.suffix == ".tflite"
    profile = fidelity_floor(contents.profile, contents.quantization) if tflite else contents.profile
    if contents.max_abs_error is not None:  # the user's bound replaces the profile's (absolute and relative)
        profile = dataclasses.replace(profile, max_abs_error=contents.max_abs_error, max_relative_error=None)
    inputs, outputs, graph, backend = _describe(model_path, threads_for(profile.threads))
    raise_on(check_constraints(profile, raw_bytes(model_path), graph, inputs, outputs, contents.io_dtypes), profile)
    verification = contents.verification
    fidelity = measure_outputs(contents.reference, made.outputs, profile, verification.source,
                               verification.is_random)
    fidelity.tensors = made.tensor_errors
    check_fidelity(fidelity, profile.name, contents.quantization)
    for spec in inputs:
        spec.role = "input"
    roles = {o["artifact_output"]: o["role"] for o in fidelity.outputs.values()}
    for spec in outputs:
        spec.role = roles.get(spec.name, "values")
    notes = [*contents.notes, *made.notes, *_notes(contents, inputs)]
    if tflite and profile.hardware == "edgetpu":
        from modelpress.converters.edgetpu import compile_for_edgetpu

        notes.append(compile_for_edgetpu(model_path, profile.compiler or "edgetpu_compiler")[1])
    mcu = None
    if tflite and is_mcu_profile(profile):
        parts = add_mcu_parts(folder, model_path, profile, contents.name, verification.x, verification.source)
        mcu, notes = parts.info, notes + parts.notes
    labels_file = None
    if contents.labels:
        (folder / LABELS_NAME).write_text("\n".join(contents.labels) + "\n", encoding="utf-8")
        labels_file = LABELS_NAME
    return Manifest(
        name=contents.name, version=str(contents.version), model_format="tflite" if tflite else "saved_model",
        model_file=model_path.relative_to(folder).as_posix(), inputs=inputs, outputs=outputs,
        profile={"name": profile.name, "hardware": profile.hardware, "threads": profile.threads,
                 "delegate": profile.delegate, "source": profile.source},
        quantization=contents.quantization, calibration=contents.calibration, source=contents.source,
        artifact={"sha256": file_sha256(model_path), "bytes": raw_bytes(model_path),
                  "gzip_bytes": gzip_bytes(model_path)},
        fidelity=fidelity.to_dict(), ops=graph.ops if graph is not None else [],
        tool_versions=tool_versions(backend),
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        labels_file=labels_file, notes=notes, mcu=mcu,
    )


def seal_package(folder: Path, manifest: Manifest, sign_key: str | Path | None = None) -> None:
    """The last step of every package in its staging folder, before the rename: write the manifest, then sign
    every file with ``sign_key`` when one is given (so a package appears signed or not at all).

    Packages of models made elsewhere (:mod:`modelpress.converters.prebuilt`) end here too, so anything every
    package must carry is added in this one place."""
    write_manifest(folder, manifest)
    if sign_key is not None:
        from modelpress.signing import sign_package

        sign_package(folder, sign_key)


def finish_package(out: str | Path, make: Callable[[Path], Made], contents: Contents, *,
                   overwrite: bool = True) -> Artifact:
    """Make the artifact with ``make(staging_folder)``, finish the package around it and rename it to ``out``.

    Every model package modelpress writes from a source model passes here (``convert``, ``press``,
    ``deploy``); a refusal (ConstraintError, FidelityError, ConversionError) leaves nothing behind::

        finish_package("build/m4", lambda folder: Made(write_model(folder), outputs), contents)
    """
    out = Path(out)
    with atomic_directory(out, overwrite=overwrite) as folder:
        manifest = _finish(folder, make(folder), contents)
        seal_package(folder, manifest, contents.sign_key)
    return Artifact(out, manifest)
