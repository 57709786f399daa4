"""Backends by model format: ``BACKENDS`` maps a manifest's ``model_format`` (``tflite``, ``saved_model``) to
the class that serves it. The registry picks a package's class from this table merged with the
``backends=`` an app was created with (another runtime for a format, or a fake to test the HTTP stack);
``backend_for`` looks one up in the built-in table alone. Importing this package imports neither TensorFlow
nor an interpreter (each backend imports what it runs in ``load``)::

    app = create_app({"repository": "models/"}, backends={"tflite": MyTFLiteBackend})   # a Backend subclass
    cls = backend_for(manifest)                   # TFLiteBackend or SavedModelBackend
    backend = cls(folder, manifest, pool_size=4)  # then load(), predict([x]), unload()
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
