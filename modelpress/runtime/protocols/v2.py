"""Open Inference Protocol (KServe v2) with the binary tensor data extension; the stock
``tritonclient.http`` client works against it::

    GET  /v2                          server metadata        GET /v2/health/live, /v2/health/ready
    GET  /v2/models/digits[/versions/2][/ready]
    POST /v2/models/digits[/versions/2]/infer
         {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 8, 8, 1], "data": [...]}]}
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g, request

from modelpress import __version__
from modelpress.errors import BadRequestError
from modelpress.runtime import tracing
from modelpress.runtime.codecs.arrays import v2_datatype
from modelpress.runtime.codecs.json import dumps
from modelpress.runtime.codecs.v2 import split_binary_body, v2_body, v2_encode_outputs, v2_inputs, v2_output_choice
from modelpress.runtime.http import json_response, protected

blueprint = Blueprint("v2", __name__, url_prefix="/v2")
HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ["binary_tensor_data", "model_repository_status", "model_repository"]


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
    if _runtime().plane.ready():
        return json_response({"ready": True})
    return json_response({"ready": False, "error": "the model repository is still loading; retry shortly"}, 503,
                         {"Retry-After": "1"})


def _tensors(specs) -> list[dict]:
    return [{"name": s.name, "datatype": v2_datatype(s.dtype), "shape": list(s.shape)} for s in specs]


def _model_metadata(model: str, version: str | None = None):
    meta = _runtime().plane.metadata(model, version)
    g.version = str(meta.version)
    return json_response({
        "name": model, "versions": [str(v) for v in meta.versions], "platform": meta.platform,
        "inputs": _tensors(meta.inputs), "outputs": _tensors(meta.outputs),
        "parameters": {"version": str(meta.version), "quantization": meta.quantization,
                       "labels": {k: str(v) for k, v in meta.labels.items()},
                       "manifest": "inferred" if meta.inferred else "shipped", "stateful": meta.stateful},
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
    state = _runtime().plane.model_ready(model, version)
    if not state.ready:  # a model a client unloaded is "not ready" as the protocol says it (4xx), not busy
        return json_response({"name": model, "ready": False, "error": state.error}, 404 if state.unloaded else 503)
    return json_response({"name": model, "version": str(state.version), "ready": True})


@blueprint.get("/models/<model>/ready")
def model_ready(model: str):
    """Model readiness: 200 when a version is available, 503 when none is yet, 404 for an unknown model or one
    a client unloaded."""
    return _model_ready(model)


@blueprint.get("/models/<model>/versions/<version>/ready")
def version_ready(model: str, version: str):
    """Readiness of one version."""
    return _model_ready(model, version)


class Answer:
    """An inference answer ready to send: the version that ran it, body, content type, extra headers."""
    __slots__ = ("version", "body", "content_type", "headers")

    def __init__(self, version: str, body: bytes, content_type: str, headers: dict[str, str]):
        self.version, self.body, self.content_type, self.headers = version, body, content_type, headers


def infer_answer(runtime, model: str, version: str | None, raw: bytes, header_length: str | None,
                 served_version: list | None = None) -> Answer:
    """One v2 inference, body bytes in, answer bytes out, with no web framework involved (the Flask route
    and the fast WSGI path both call it). ``served_version``, when given, receives the version that ran
    the request as soon as it is known (for metrics, even if encoding fails later)::

        answer = infer_answer(runtime, "digits", None, body, None)
        answer.body   # b'{"model_name":"digits","model_version":"2","outputs":[...]}'
    """
    tracing.annotate(model, version or "")
    with tracing.stage("decode"):
        head, tail = split_binary_body(raw, header_length)
        body = v2_body(head, runtime.config.max_json_depth)
        tensors = v2_inputs(body, tail)
    with runtime.plane.model(model, version) as served:
        number = str(served.version)
        tracing.annotate(model, number)
        if served_version is not None:
            served_version.append(number)
        named = dict(tensors)
        if len(named) != len(tensors):
            raise BadRequestError("an input name appears twice in the request; send each input once")
        outputs = runtime.plane.predict(served, named)
    with tracing.stage("encode"):
        choice = v2_output_choice(body, list(outputs))
        encoded, binary = v2_encode_outputs(outputs, choice)
        answer = {"model_name": model, "model_version": number, "outputs": encoded}
        if "id" in body:
            answer["id"] = body["id"]
        text = dumps(answer)
    if not binary:
        return Answer(number, text, "application/json", {})
    return Answer(number, text + binary, "application/octet-stream", {HEADER_LENGTH: str(len(text))})


def _infer(model: str, version: str | None = None):
    served: list[str] = []
    try:
        answer = infer_answer(_runtime(), model, version, request.get_data(cache=False),
                              request.headers.get(HEADER_LENGTH), served)
    finally:
        if served:
            g.version = served[0]
    return Response(answer.body, content_type=answer.content_type, headers=answer.headers)


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
