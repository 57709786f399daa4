"""Write the chosen candidate as a model package: the very artifact press measured, with its manifest.

    write_package(trial, blob, keras_model, profile, "build/rpi", verify_x=x_val[:1000], name="lenet")

The package is what ``modelpress convert`` writes (``model.tflite`` + ``modelpress.json``), so serve,
deploy and inspect read it as any other; its fidelity is measured against the fine-tuned Keras model.
"""

from __future__ import annotations

import datetime as _dt
import gzip
from pathlib import Path
from typing import Any

import numpy as np

from modelpress import __version__
from modelpress.atomic import atomic_directory
from modelpress.converters.verify import measure_fidelity
from modelpress.device_profiles import DeviceProfile
from modelpress.manifest import Manifest, write_manifest
from modelpress.model_io import file_sha256, load_model
from modelpress.search.trial import Trial
from modelpress.tflite_interpreter import TFLiteModel

VERIFY_SAMPLES = 1000


def _tensor_errors(blob: bytes, model: Any, profile: DeviceProfile, trial: Trial, x: np.ndarray):
    """LiteRT's quantizer's per-tensor comparison with the float32 model, for a candidate it quantized."""
    from modelpress.converters import quantizer

    quantized = trial.settings.quantization in quantizer.MODES and not trial.settings.fallback
    if not quantized or profile.quantizes_with != "litert" or not quantizer.available():
        return None
    from modelpress.converters.tflite import to_tflite_bytes

    source = load_model(model)
    float_model = to_tflite_bytes(source, "none")
    return quantizer.tensor_errors(float_model, blob, {source.input_specs()[0].name: x[:8]})


def write_package(trial: Trial, blob: bytes, model: Any, profile: DeviceProfile, out: str | Path, *,
                  verify_x: np.ndarray, name: str, calibration: dict[str, Any], source: dict[str, Any]) -> Path:
    """Write ``out`` atomically; returns its path."""
    from modelpress.converters.edgetpu import compile_for_edgetpu

    out = Path(out)
    x = verify_x[:VERIFY_SAMPLES]
    with atomic_directory(out, overwrite=True) as folder:
        path = folder / "model.tflite"
        path.write_bytes(blob)
        interpreter = TFLiteModel(blob, threads=1)
        step = 1 if interpreter.fixed_batch else 256
        candidate = np.concatenate([interpreter.predict([x[i:i + step]])[0] for i in range(0, len(x), step)])
        reference = load_model(model).predict(x)
        fidelity = measure_fidelity(reference, candidate, profile, "held-out split of --data", False)
        fidelity.tensors = _tensor_errors(blob, model, profile, trial, x)
        notes = [f"chosen by modelpress press: {trial.describe()} ({trial.settings.family}); accuracy "
                 f"{trial.accuracy:.2%} on held-out data, drop {trial.drop_points:+.2f} pt against the source"]
        if trial.settings.fallback:
            notes.append(f"int8 with {len(trial.settings.fallback)} layer(s) kept in float or int16 activations "
                         "(per-layer fallback; int16x8: marks int16): " + ", ".join(trial.settings.fallback))
        if profile.hardware == "edgetpu":
            notes.append(compile_for_edgetpu(path, profile.compiler or "edgetpu_compiler")[1])
        manifest = Manifest(
            name=name, version="1", model_format="tflite", model_file="model.tflite",
            inputs=interpreter.input_specs(), outputs=interpreter.output_specs(),
            profile={"name": profile.name, "hardware": profile.hardware, "threads": profile.threads,
                     "delegate": profile.delegate, "source": profile.source},
            quantization=trial.settings.quantization, calibration=calibration, source=source,
            artifact={"sha256": file_sha256(path), "bytes": len(blob),
                      "gzip_bytes": len(gzip.compress(blob, compresslevel=9, mtime=0))},
            fidelity=fidelity.to_dict(), ops=trial.ops,
            tool_versions={"modelpress": __version__, "interpreter": interpreter.backend},
            created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), notes=notes)
        write_manifest(folder, manifest)
    return out
