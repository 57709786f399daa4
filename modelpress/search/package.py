"""Write the chosen candidate as a model package: the very artifact press measured, finished like any other.

    write_package(trial, blob, keras_model, profile, "build/m4", verify_x=x_val, name="lenet",
                  calibration={...}, source={...})

Press only makes the artifact (the flatbuffer it measured, run on held-out samples); the package is then
finished by :func:`modelpress.converters.finish.finish_package`, the path ``modelpress convert`` takes too:
constraints, fidelity against the fine-tuned Keras model held to the profile's floor, output roles, Edge TPU
compile, the firmware half of an MCU / NPU package, labels, manifest.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from modelpress.converters.artifact import Artifact
from modelpress.converters.calibration import Samples
from modelpress.converters.finish import Contents, Made, finish_package
from modelpress.converters.stripping import names_stripped
from modelpress.device_profiles import DeviceProfile
from modelpress.model_io import load_model
from modelpress.search.measure import io_dtypes
from modelpress.search.trial import Trial

VERIFY_SAMPLES = 1000
log = logging.getLogger(__name__)


def _tensor_errors(blob: bytes, model: Any, profile: DeviceProfile, trial: Trial, x: np.ndarray, stripped: bool):
    """LiteRT's quantizer's per-tensor comparison with the float32 model, for a candidate it quantized (not for a
    ``stripped`` file: it has no tensor names to match its float32 twin's by)."""
    from modelpress.converters import quantizer

    quantized = trial.settings.quantization in quantizer.MODES and not trial.settings.fallback
    if not quantized or profile.quantizes_with != "litert" or not quantizer.available() or stripped:
        return None
    from modelpress.converters.tflite import to_tflite_bytes

    source = load_model(model)
    float_model = to_tflite_bytes(source, "none")
    try:  # keyed by the float32 file's own signature input, which the quantizer's validation looks up
        return quantizer.tensor_errors(float_model, blob, {quantizer.signature_inputs(float_model)[0]: x[:8]})
    except Exception as err:  # noqa: BLE001 - a diagnostic: it must never cost the package a search produced
        log.warning("per-tensor comparison with float32 skipped for %s: LiteRT's quantizer's validation failed "
                    "(%s: %s)", trial.describe(), type(err).__name__, err)
        return None


def write_package(trial: Trial, blob: bytes, model: Any, profile: DeviceProfile, out: str | Path, *,
                  verify_x: np.ndarray, name: str, calibration: dict[str, Any], source: dict[str, Any],
                  version: str = "1", labels: list[str] | None = None,
                  sign_key: str | Path | None = None) -> Artifact:
    """Finish ``blob`` (the trial's TFLite model) as a package at ``out``, written atomically, verified against
    ``model`` (for a compressed candidate, its wide fine-tuned model: ``blob`` was converted from the narrowed
    copy, :meth:`modelpress.search.engine.Search.shipped_model`, and stripped of its internal names)."""
    from modelpress.tflite_interpreter import TFLiteModel

    keras = load_model(model)
    x = np.asarray(verify_x[:VERIFY_SAMPLES], dtype=np.float32)
    verification = Samples({keras.input_specs()[0].name: x}, "held-out split of --data")
    stripped = names_stripped(blob)

    def make(folder: Path) -> Made:
        path = folder / "model.tflite"
        path.write_bytes(blob)
        interpreter = TFLiteModel(blob, threads=1)
        outputs = interpreter.predict([x])
        return Made(path, {d["name"]: out for d, out in zip(interpreter.output_details, outputs)},
                    tensor_errors=_tensor_errors(blob, model, profile, trial, x, stripped))

    settings = trial.settings
    notes = [f"chosen by modelpress press: {trial.describe()} ({settings.family}); accuracy {trial.accuracy:.2%} on "
             f"held-out data, drop {trial.drop_points:+.2f} pt against the source"]
    if trial.narrowed:
        notes.append("units and filters left dead by the compression removed before conversion (each one's constant "
                     "output folded into the next layer's bias; same answers): " +
                     ", ".join(f"{layer} keeps {units}" for layer, units in trial.narrowed.items()))
    if stripped:
        notes.append("internal tensor names, the file's description and the converter's metadata stripped (signature "
                     "and I/O names kept): no per-tensor comparison with float32, which matches tensors by name")
    if settings.fallback:
        notes.append(f"int8 with {len(settings.fallback)} layer(s) kept in float or int16 activations (per-layer "
                     "fallback; int16x8: marks int16): " + ", ".join(settings.fallback))
    contents = Contents(
        name=name, version=str(version), profile=profile, quantization=settings.quantization,
        io_dtypes=("float32", "float32") if settings.fallback else io_dtypes(profile, settings.quantization),
        verification=verification, reference=keras.predict_named(verification.inputs), calibration=calibration,
        source=source, labels=labels, notes=notes, sign_key=Path(sign_key) if sign_key is not None else None)
    return finish_package(out, make, contents)
