"""The Python API behind the CLI: one module per workflow, re-exported here and in ``modelpress``.

Nothing heavy at import time; each function imports TensorFlow when it runs.
"""

from __future__ import annotations

import importlib
from typing import Any

_FUNCTIONS = {
    "convert": "modelpress.api.convert",
    "inspect": "modelpress.api.convert",
    "load_model": "modelpress.model_io",
    "compress": "modelpress.api.compress",
    "evaluate": "modelpress.api.compress",
    "deploy": "modelpress.api.deploy",
}

__all__ = list(_FUNCTIONS)


def __getattr__(name: str) -> Any:
    module = _FUNCTIONS.get(name)
    if module is None:
        raise AttributeError(f"module 'modelpress.api' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
