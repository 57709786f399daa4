"""The one type for the state of a model version, shared by the registry, the data plane, the protocols
and the metrics; a ``str`` so that it reads and serializes as its name::

    ModelState.AVAILABLE == "AVAILABLE"        # True
    json.dumps({"state": ModelState.FAILED})   # '{"state": "FAILED"}'
"""

from __future__ import annotations

from enum import Enum


class ModelState(str, Enum):
    LOADING = "LOADING"            # being loaded and warmed up: takes no traffic yet
    AVAILABLE = "AVAILABLE"        # serving
    UNLOADING = "UNLOADING"        # replaced or removed: finishing its in-flight requests
    END = "END"                    # unloaded
    FAILED = "FAILED"              # its package failed to load (the error says why)
    CONFIG_ERROR = "CONFIG_ERROR"  # the model's config.yaml is broken (a model-level row)

    def __str__(self) -> str:
        return self.value


#: the states a loaded version passes through, in order (metrics export one series each, FAILED included)
VERSION_STATES = (ModelState.LOADING, ModelState.AVAILABLE, ModelState.UNLOADING, ModelState.END, ModelState.FAILED)
