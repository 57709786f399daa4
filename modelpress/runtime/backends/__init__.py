"""Backends by model format. ``backend_for(manifest)`` picks the class; importing this package imports
neither TensorFlow nor an interpreter::

    cls = backend_for(manifest)          # TFLiteBackend or SavedModelBackend
    backend = cls(folder, manifest, pool_size=4)
"""

from __future__ import annotations

from modelpress.errors import ArtifactError
from modelpress.manifest import Manifest
from modelpress.runtime.backends.base import Backend
from modelpress.runtime.backends.savedmodel import SavedModelBackend
from modelpress.runtime.backends.tflite import TFLiteBackend

BACKENDS: dict[str, type[Backend]] = {"tflite": TFLiteBackend, "saved_model": SavedModelBackend}


def backend_for(manifest: Manifest) -> type[Backend]:
    """The backend class that serves a package of ``manifest.model_format``."""
    try:
        return BACKENDS[manifest.model_format]
    except KeyError:
        raise ArtifactError(f"no backend serves model format {manifest.model_format!r}; "
                            f"known: {', '.join(BACKENDS)}") from None


__all__ = ["BACKENDS", "Backend", "SavedModelBackend", "TFLiteBackend", "backend_for"]
