"""``modelpress.package``: wrap a model made elsewhere (``.tflite`` or SavedModel) into a verified package.

    import modelpress
    artifact = modelpress.package("hey_jarvis.tflite", out="build/jarvis", profile="raspberry-pi-4")
    artifact.manifest.inputs[0].shape, artifact.manifest.artifact["latency_ms"]["p50_ms"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelpress.converters.artifact import Artifact
from modelpress.device_profiles import DeviceProfile, load_profile
from modelpress.native_logs import filtered_stderr


def package(model: str | Path, out: str | Path, *, name: str | None = None,
            labels: str | Path | list[str] | None = None, profile: str | Path | DeviceProfile | None = None,
            verify_data: Any = None, version: str = "1", input_shapes: dict[str, list[int]] | list[str] | None = None,
            signature: str | None = None, overwrite: bool = True, sign_key: str | Path | None = None) -> Artifact:
    """Copy ``model`` into a package at ``out``: manifest read from the model (names, shapes, dtypes,
    quantization, ops, whether it is stateful), the profile's constraints checked (size, ops, I/O dtypes),
    one run on ``verify_data`` (random values at the model's shapes by default; ``input_shapes`` fixes
    dynamic dimensions) in a child process, latency measured::

        art = package("melspectrogram.tflite", "build/mel", input_shapes={"input": [1, 1280]})
        art.manifest.inferred          # True: nothing was compared against a source model
    """
    from modelpress.api.convert import _check_out, _labels
    from modelpress.converters.prebuilt import package_model
    from modelpress.converters.shapes import parse_input_shapes
    from modelpress.signing import check_signing_key

    _check_out(Path(out), overwrite)
    check_signing_key(sign_key)
    prof = load_profile(profile) if profile is not None else None
    with filtered_stderr():  # LiteRT's and TensorFlow's native start-up lines stay out of the caller's log
        return package_model(Path(model), Path(out), profile=prof, name=name, labels=_labels(labels),
                             verify_data=verify_data, version=str(version),
                             input_shapes=parse_input_shapes(input_shapes), signature=signature, overwrite=overwrite,
                             sign_key=sign_key)
