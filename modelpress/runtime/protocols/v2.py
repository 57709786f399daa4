"""Open Inference Protocol (KServe v2) with the binary tensor data extension; the stock
``tritonclient.http`` client works against it. Each model operation is one view for the newest available
version and for one version (``/versions/2``). Inference is Flask-free (``inference.infer_answer``), and
the fast path (``fastpath.py``) answers its routes with it before Flask sees them::

    GET  /v2                          server metadata        GET /v2/health/live, /v2/health/ready
    GET  /v2/models/digits[/versions/2][/ready]
    POST /v2/models/digits[/versions/2]/infer
         {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 8, 8, 1], "data": [...]}]}
"""

from __future__ import annotations

from flask import Blueprint, Response, g, request

from modelpress import __version__
from modelpress.runtime.codecs.arrays import v2_datatype
from modelpress.runtime.http import current_runtime, json_response, protected
from modelpress.runtime.inference import HEADER_LENGTH, infer_answer

blueprint = Blueprint("v2", __name__, url_prefix="/v2")
EXTENSIONS = ["binary_tensor_data", "model_repository_status", "model_repository"]
NEWEST = {"version": None}  # the route defaults of the form without a version


@blueprint.get("")
def server_metadata():
    """Server metadata: name, version and supported extensions."""
    return json_response({"name": "modelpress", "version": __version__, "extensions": EXTENSIONS})


@blueprint.get("/health/live")
def live():
    """Liveness: 200 while the process answers."""
    return json_response({"live": True})


@blueprint.get("/health/ready")
def ready():
    """Readiness: 200 once the repository has been loaded and a model is served, else 503 with the reason."""
    reason = current_runtime().plane.not_ready_reason()
    if reason is None:
        return json_response({"ready": True})
    return json_response({"ready": False, "error": reason}, 503, {"Retry-After": "1"})


def _tensors(specs) -> list[dict]:
    return [{"name": s.name, "datatype": v2_datatype(s.dtype), "shape": list(s.shape)} for s in specs]


@blueprint.get("/models/<model>", defaults=NEWEST)
@blueprint.get("/models/<model>/versions/<version>", endpoint="version_metadata")
def model_metadata(model: str, version: str | None):
    """Model metadata of the newest available version, or of one version: inputs and outputs with datatypes
    and shapes."""
    meta = current_runtime().plane.metadata(model, version)
    g.version = str(meta.version)
    return json_response({
        "name": model, "versions": [str(v) for v in meta.versions], "platform": meta.platform,
        "inputs": _tensors(meta.inputs), "outputs": _tensors(meta.outputs),
        "parameters": {"version": str(meta.version), "quantization": meta.quantization,
                       "labels": {k: str(v) for k, v in meta.labels.items()},
                       "manifest": "inferred" if meta.inferred else "shipped", "stateful": meta.stateful},
    })


@blueprint.get("/models/<model>/ready", defaults=NEWEST)
@blueprint.get("/models/<model>/versions/<version>/ready", endpoint="version_ready")
def model_ready(model: str, version: str | None):
    """Model or version readiness: 200 when it takes traffic, 503 when it does not yet, 404 for an unknown
    model or version, or one a client unloaded."""
    state = current_runtime().plane.model_ready(model, version)
    if not state.ready:  # a model a client unloaded is "not ready" as the protocol says it (4xx), not busy
        return json_response({"name": model, "ready": False, "error": state.error}, 404 if state.unloaded else 503)
    return json_response({"name": model, "version": str(state.version), "ready": True})


@blueprint.post("/models/<model>/infer", defaults=NEWEST)
@blueprint.post("/models/<model>/versions/<version>/infer", endpoint="version_infer")
@protected
def infer(model: str, version: str | None):
    """Inference on the newest available version, or on one version (JSON tensors or the binary tensor data
    extension)."""
    served: list[str] = []
    try:
        answer = infer_answer(current_runtime(), model, version, request.get_data(cache=False),
                              request.headers.get(HEADER_LENGTH), served)
    finally:
        if served:
            g.version = served[0]
    return Response(answer.body, content_type=answer.content_type, headers=answer.headers)
