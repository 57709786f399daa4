"""Open Inference Protocol (KServe v2) with the binary tensor data extension; the stock
``tritonclient.http`` client works against it::

    GET  /v2                          server metadata        GET /v2/health/live, /v2/health/ready
    GET  /v2/models/digits[/versions/2][/ready]
    POST /v2/models/digits[/versions/2]/infer
         {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 8, 8, 1], "data": [...]}]}
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, g, request

from modelpress import __version__
from modelpress.errors import BadRequestError, NotFoundError, UnavailableError
from modelpress.runtime.app import json_response, protected
from modelpress.runtime.codecs import (
    parse_json,
    split_binary_body,
    v2_datatype,
    v2_encode_outputs,
    v2_inputs,
    v2_output_choice,
)

blueprint = Blueprint("v2", __name__, url_prefix="/v2")
HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ["binary_tensor_data", "model_repository_status"]


def _runtime():
    return current_app.extensions["modelpress"]


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
    """Readiness: 200 once the repository has been loaded, else 503."""
    if _runtime().registry.ready:
        return json_response({"ready": True})
    return json_response({"ready": False, "error": "the model repository is still loading; retry shortly"}, 503,
                         {"Retry-After": "1"})


def _tensors(specs) -> list[dict]:
    return [{"name": s.name, "datatype": v2_datatype(s.dtype), "shape": list(s.shape)} for s in specs]


def _model_metadata(model: str, version: str | None = None):
    runtime = _runtime()
    with runtime.plane.model(model, version) as served:
        g.version = str(served.version)
        record = runtime.registry.lookup_model(model)
        return json_response({
            "name": model, "versions": [str(v) for v in sorted(record.versions)],
            "platform": served.backend.platform, "inputs": _tensors(served.manifest.inputs),
            "outputs": _tensors(served.manifest.outputs),
            "parameters": {"version": str(served.version), "quantization": served.manifest.quantization,
                           "labels": {k: str(v) for k, v in record.config.labels.items()},
                           "manifest": "inferred" if served.manifest.inferred else "shipped",
                           "stateful": served.manifest.stateful},
        })


@blueprint.get("/models/<model>")
def model_metadata(model: str):
    """Model metadata of the newest available version: inputs and outputs with datatypes and shapes."""
    return _model_metadata(model)


@blueprint.get("/models/<model>/versions/<version>")
def version_metadata(model: str, version: str):
    """Model metadata of one version."""
    return _model_metadata(model, version)


def _model_ready(model: str, version: str | None = None):
    registry = _runtime().registry
    record = registry.lookup_model(model)
    try:
        with registry.acquire(model, version) as served:
            number = served.version
    except (NotFoundError, UnavailableError) as err:
        if version is not None and int(version) not in record.versions and int(version) not in record.failed:
            raise  # a version the repository does not hold: 404, as for its metadata; not "try again later"
        return json_response({"name": model, "ready": False, "error": str(err)}, 503)
    return json_response({"name": model, "version": str(number), "ready": True})


@blueprint.get("/models/<model>/ready")
def model_ready(model: str):
    """Model readiness: 200 when a version is available, 503 when none is, 404 for an unknown model."""
    return _model_ready(model)


@blueprint.get("/models/<model>/versions/<version>/ready")
def version_ready(model: str, version: str):
    """Readiness of one version."""
    return _model_ready(model, version)


def _infer(model: str, version: str | None = None):
    runtime = _runtime()
    head, tail = split_binary_body(request.get_data(cache=False), request.headers.get(HEADER_LENGTH))
    body = parse_json(head, runtime.config.max_json_depth)
    tensors = v2_inputs(body, tail)
    with runtime.plane.model(model, version) as served:
        g.version = str(served.version)
        named = dict(tensors)
        if len(named) != len(tensors):
            raise BadRequestError("an input name appears twice in the request; send each input once")
        outputs = runtime.plane.predict(served, named)
    choice = v2_output_choice(body, list(outputs))
    encoded, binary = v2_encode_outputs(outputs, choice)
    answer = {"model_name": model, "model_version": g.version, "outputs": encoded}
    if "id" in body:
        answer["id"] = body["id"]
    text = json.dumps(answer, separators=(",", ":")).encode()
    if not binary:
        return Response(text, mimetype="application/json")
    return Response(text + binary, mimetype="application/octet-stream", headers={HEADER_LENGTH: str(len(text))})


@blueprint.post("/models/<model>/infer")
@protected
def infer(model: str):
    """Inference on the newest available version (JSON tensors or the binary tensor data extension)."""
    return _infer(model)


@blueprint.post("/models/<model>/versions/<version>/infer")
@protected
def version_infer(model: str, version: str):
    """Inference on one version."""
    return _infer(model, version)
