"""``modelpress.convert`` and ``modelpress.inspect``: the conversion workflow for build scripts.

    import modelpress
    artifact = modelpress.convert("model.keras", profile="raspberry-pi-4", out="build/rpi",
                                  calibration="calib.npz")
    artifact.manifest.fidelity["top1_agreement"]     # e.g. 0.99
    modelpress.inspect("build/rpi")["ops"]            # {'CONV_2D': 2, 'FULLY_CONNECTED': 1, ...}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelpress.converters.artifact import Artifact
from modelpress.device_profiles import FORMATS, QUANTIZATIONS, DeviceProfile, load_profile
from modelpress.errors import DataError, UsageError
from modelpress.manifest import MANIFEST_NAME
from modelpress.native_logs import filtered_stderr

SPLIT_AT = 200  # with this many real samples or more, calibrate and verify on separate halves


def _plan_dtypes(profile: DeviceProfile, quantization: str) -> tuple[str, str]:
    integer = {"int8", "uint8", "int16"}
    if quantization == "int8":
        return profile.input_dtype, profile.output_dtype
    if quantization == "int16x8":
        return tuple("int16" if d in integer else "float32" for d in (profile.input_dtype, profile.output_dtype))
    return "float32", "float32"


def _resolve_format_and_quantization(profile: DeviceProfile, model_format: str | None,
                                     quantization: str | None) -> tuple[str, str]:
    fmt = model_format or profile.default_format
    if fmt not in FORMATS:
        raise UsageError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt not in profile.formats:
        raise UsageError(f"profile {profile.name} builds {', '.join(profile.formats)}; format {fmt!r} is not "
                         "one of them")
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise UsageError(f"quantization {quantization!r} is not one of {', '.join(QUANTIZATIONS)}")
    if fmt == "saved_model":
        if quantization not in (None, "none"):
            raise UsageError(f"a SavedModel is float32; quantization {quantization!r} applies to --format tflite")
        return fmt, "none"
    quant = quantization or profile.quantization
    if profile.hardware in ("edgetpu", "mcu") and quant != "int8":
        raise UsageError(f"profile {profile.name} ({profile.hardware}) runs only full-integer models; "
                         f"quantization must be int8, not {quant!r}")
    if quant == "int4" and profile.quantizes_with != "litert":
        raise UsageError(f"int4 weights are made by LiteRT's quantizer, which modelpress uses for CPU and GPU "
                         f"profiles with float32 I/O; profile {profile.name} quantizes with the TFLite converter "
                         "(choose a CPU or GPU profile, or set 'quantizer: litert' in a copy of the profile)")
    return fmt, quant


def _layer_precision(profile: DeviceProfile, fmt: str, quant: str, quantization: str | None, layer_precision):
    """(quantization, LayerPrecision or None): a per-layer recipe makes the quantization ``mixed``."""
    if layer_precision is None or (isinstance(layer_precision, (list, tuple)) and not layer_precision):
        return quant, None
    from modelpress.converters.mixed_precision import PRECISIONS, LayerPrecision

    if fmt != "tflite" or profile.quantizes_with != "litert":
        raise UsageError(f"per-layer precision is a recipe for LiteRT's quantizer, which modelpress uses for CPU "
                         f"and GPU profiles with float32 I/O; profile {profile.name} ({profile.hardware}, "
                         f"{fmt}) does not use it")
    if isinstance(layer_precision, (list, tuple)):
        default = quantization if quantization in PRECISIONS else "int8"
        recipe = LayerPrecision.from_options(list(layer_precision), default=default)
    else:
        recipe = LayerPrecision.load(layer_precision)
    return "mixed", recipe


def _error_bound(max_abs_error: float | None) -> float | None:
    """The user's absolute bound, checked (it replaces the profile's bounds in ``converters.finish``)."""
    if max_abs_error is None:
        return None
    if isinstance(max_abs_error, bool) or not isinstance(max_abs_error, (int, float)) or not max_abs_error >= 0:
        raise UsageError(f"max_abs_error {max_abs_error!r} must be a number 0 or more (the largest |error| any "
                         "output may show against the source, in the output's units), e.g. 1e-3")
    return float(max_abs_error)


def _labels(labels: str | Path | list[str] | None) -> list[str] | None:
    if labels is None or isinstance(labels, list):
        return labels
    path = Path(labels)
    if not path.is_file():
        raise DataError(f"labels file {path} does not exist; pass a text file with one class name a line")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _samples(source, quant: str, calibration, verify_data, image_scale: str, given: dict[str, list[int]],
             needs_calibration: bool):
    """Calibration and verification samples by input name, and the shapes the model runs at."""
    from modelpress.converters.calibration import RANDOM, load_inputs
    from modelpress.converters.package import RANDOM_VERIFY_SAMPLES, VERIFY_SAMPLES
    from modelpress.converters.shapes import named_shapes, run_shapes

    specs = source.input_specs()
    given = named_shapes(specs, given)
    declared = {s.name: ([None, *given[s.name][1:]] if s.name in given else list(s.shape)) for s in specs}

    def real(data):
        return None if data is None or (isinstance(data, str) and data == RANDOM) else data

    calib = load_inputs(real(calibration), declared, image_scale=image_scale)
    verify = load_inputs(real(verify_data), declared, count=VERIFY_SAMPLES, image_scale=image_scale)
    data_shapes = (calib or verify).shapes() if (calib or verify) is not None else None
    shapes = run_shapes(specs, given, data_shapes)
    if calib is None and calibration is not None:
        calib = load_inputs(RANDOM, shapes)
    if needs_calibration and calib is None:
        raise DataError(f"{quant} quantization needs calibration samples (100 to 500 real inputs): pass "
                        "--calibration FILE.npz|FILE.npy|IMAGE_FOLDER (calibration= in Python); "
                        "--calibration random works but gives a poor model")
    if calib is not None and verify is not None and calib.shapes() and verify.shapes():
        for name in shapes:
            if calib.shapes()[name][1:] != verify.shapes()[name][1:]:
                raise DataError(f"calibration samples of {name!r} have shape {calib.shapes()[name][1:]} but the "
                                f"verification samples {verify.shapes()[name][1:]}; give both the shape the "
                                "device will run")
    if verify is None and calib is not None and not calib.is_random:
        if len(calib) >= SPLIT_AT:
            half = len(calib) // 2
            verify = calib.take(half, half + VERIFY_SAMPLES, f"{calib.source} (held-out half)")
            calib = calib.take(0, half, f"{calib.source} (first half)")
        else:
            verify = calib.take(0, VERIFY_SAMPLES, f"{calib.source} (same samples as calibration)")
    if verify is None:
        verify = load_inputs(RANDOM, shapes, count=RANDOM_VERIFY_SAMPLES, warn_random=False)
        verify.source = "random inputs"
    return calib, verify, shapes


def _check_out(out: Path, overwrite: bool) -> None:
    """Replace an earlier package, never a folder of someone's other files."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"--out {out} is a file; name a folder for the model package")
    if any(out.iterdir()) and not (out / MANIFEST_NAME).is_file():
        raise UsageError(f"--out {out} holds files that are not a modelpress package; refusing to replace it "
                         "(choose an empty or new folder)")
    if not overwrite:
        raise UsageError(f"--out {out} already exists; remove it or allow overwriting")


def convert(model: Any, profile: str | Path | DeviceProfile, out: str | Path, *,
            calibration: str | Path | np.ndarray | None = None, quantization: str | None = None,
            model_format: str | None = None, verify_data: str | Path | np.ndarray | None = None,
            labels: str | Path | list[str] | None = None, name: str | None = None, version: str = "1",
            min_agreement: float | None = None, max_abs_error: float | None = None, image_scale: str = "0..1",
            safe_mode: bool = True, overwrite: bool = True,
            input_shapes: dict[str, list[int]] | list[str] | None = None,
            layer_precision: str | Path | dict[str, Any] | list[str] | None = None,
            sign_key: str | Path | None = None) -> Artifact:
    """Convert ``model`` for a device profile into a verified model package at ``out`` (signed with
    ``sign_key``, a PEM EC private key, when given: see ``modelpress sign``).

    ``model`` is a path (.keras, .h5, SavedModel folder) or a Keras model. The profile decides the
    format, quantization and I/O dtypes; ``quantization`` and ``model_format`` override it where the
    device allows. The artifact is run against its source on real samples (the held-out half of
    ``calibration``, or ``verify_data``) and rejected below the profile's fidelity floor::

        art = convert("model.keras", "coral-edgetpu", "build/coral", calibration="faces/")
        art.manifest.fidelity["top1_agreement"], art.manifest.notes

    Tolerances: ``min_agreement`` replaces the profile's top-1 floor; ``max_abs_error`` sets your own bound
    on every output's max |err| (in the output's units), for any quantization, in place of the profile's
    (float32 profiles bound the error relative to each output's range, see ``converters.verify``)::

        convert("detector.keras", "server-cpu", "build/cpu", max_abs_error=1e-3)

    CPU and GPU profiles quantize with LiteRT's quantizer (``int4``: int4 weights; ``layer_precision``: a
    per-layer recipe, a YAML file, a mapping or ``["PATTERN=PRECISION", ...]``, see
    ``converters.mixed_precision``); Edge TPU, microcontroller and NPU profiles with the TFLite converter::

        convert("model.keras", "server-cpu", "build/int4", quantization="int4")
        convert("model.keras", "raspberry-pi-4", "build/mixed", calibration="calib.npy",
                layer_precision={"default": "int8", "layers": {"conv1": "int16x8", "probs": "float"}})
        art.manifest.fidelity["tensors"]["tensors"][0]   # the tensor the quantization hurt most (SNR, cosine)

    Inputs and outputs are matched by name (Keras names, dict keys, SavedModel signature keys) and
    fidelity is recorded per output (``manifest.fidelity["outputs"]``). A model with dynamic dimensions
    other than the batch needs the shapes the device runs, unless the calibration data fixes them::

        convert("tempo.h5", "raspberry-pi-4", "build/tempo", calibration="spectrograms.npy",
                input_shapes={"input": [1, 40, 256, 1]})

    Conversion, calibration and the first invoke run in a child process: a native crash becomes a
    ConversionError naming the step and the signal, and nothing is written.
    """
    from modelpress.converters.isolation import warm_up
    from modelpress.converters.package import Plan, build_package
    from modelpress.converters.shapes import parse_input_shapes
    from modelpress.model_io import load_model
    from modelpress.signing import check_signing_key

    _check_out(Path(out), overwrite)
    check_signing_key(sign_key)
    given = parse_input_shapes(input_shapes)
    prof = load_profile(profile)
    if min_agreement is not None:
        if not 0.0 <= float(min_agreement) <= 1.0:
            raise UsageError(f"min_agreement {min_agreement!r} must be between 0 and 1")
        prof = dataclasses.replace(prof, min_top1_agreement=float(min_agreement))
    fmt, quant = _resolve_format_and_quantization(prof, model_format, quantization)
    quant, layers = _layer_precision(prof, fmt, quant, quantization, layer_precision)
    if fmt == "tflite":
        warm_up()  # the conversion's child process: its TensorFlow import overlaps loading the model here
    max_abs_error = _error_bound(max_abs_error)  # a bad value fails now, before any work
    with filtered_stderr():  # TensorFlow's and LiteRT's native start-up lines stay out of the caller's log
        source = load_model(model, safe_mode=safe_mode)
        needs_calibration = quant in ("int8", "int16x8") or (layers is not None and layers.needs_calibration)
        calib, verify, shapes = _samples(source, quant, calibration, verify_data, image_scale, given,
                                         needs_calibration)
        input_dtype, output_dtype = _plan_dtypes(prof, quant)
        # static-shape devices get every dimension fixed; elsewhere dynamic dimensions stay (the runtime resizes)
        plan = Plan(profile=prof, model_format=fmt, quantization=quant, input_dtype=input_dtype,
                    output_dtype=output_dtype, calibration=calib, verification=verify,
                    name=name or source.name, version=str(version), labels=_labels(labels),
                    input_shapes=shapes if prof.static_batch else None, run_shapes=shapes, safe_mode=safe_mode,
                    sign_key=sign_key, layer_precision=None if layers is None else layers.get_config(),
                    max_abs_error=max_abs_error)
        return build_package(source, plan, Path(out), overwrite=overwrite)


def inspect(path: str | Path, trust_keys: Sequence[str | Path] = ()) -> dict[str, Any]:
    """Describe a model package, a .tflite file or a Keras / SavedModel model, as a dict; a package's
    signature is verified against ``trust_keys`` (public keys / CA certificates, PEM) when given."""
    from modelpress.converters.inspection import inspect_path

    return inspect_path(Path(path), trust_keys)

