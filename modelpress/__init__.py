"""modelpress: compress, convert and serve TensorFlow/Keras models on edge devices and GPU servers.

The public Python API. Nothing heavy is imported here: TensorFlow loads only when a function that
needs it is called, so ``import modelpress`` stays cheap on a device that only serves::

    import modelpress
    artifact = modelpress.convert("model.keras", profile="raspberry-pi-4", out="build/rpi",
                                  calibration="calib.npz")
    print(artifact.manifest.fidelity)
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from modelpress.errors import ModelpressError

__version__ = "0.1.0"

# TensorFlow 2.21's oneDNN CPU kernels corrupt the heap while fine-tuning some models (the fer mini-Xception
# under tf_keras aborts with "free(): invalid next size"; tensorflow/tensorflow#117700 reports the same for
# matmul). Off unless the user asks for them: it must be set before TensorFlow is first imported.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

# public name -> module that defines it (not its package: a submodule named like the function would
# shadow it there); resolved on first use
_LAZY = {
    "convert": "modelpress.api.convert",
    "inspect": "modelpress.api.convert",
    "package": "modelpress.api.package",
    "load_model": "modelpress.model_io",
    "compress": "modelpress.api.compress",
    "evaluate": "modelpress.api.compress",
    "deploy": "modelpress.api.deploy",
    "press": "modelpress.api.press",
    "Artifact": "modelpress.converters.artifact",
    "DeviceProfile": "modelpress.device_profiles",
    "load_profile": "modelpress.device_profiles",
    "builtin_profiles": "modelpress.device_profiles",
    "Manifest": "modelpress.manifest",
    "read_manifest": "modelpress.manifest",
    "create_app": "modelpress.runtime",
}

__all__ = ["ModelpressError", "__version__", *sorted(_LAZY)]  # noqa: PLE0604


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelpress' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
