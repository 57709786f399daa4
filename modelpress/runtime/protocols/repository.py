"""The Open Inference repository extension, as Triton and MLServer speak it (``tritonclient.http``'s
``get_model_repository_index``, ``load_model`` and ``unload_model`` work unchanged); behind the same bearer
token as inference::

    POST /v2/repository/index                              [{"name": "digits", "version": "2", "state": "READY",
                                                             "reason": ""}, ...]   ({"ready": true}: READY only)
    POST /v2/repository/models/digits/load                 load the model (its version policy's versions)
    POST /v2/repository/models/digits/unload               unload it (it stays unloaded until loaded again)
    POST /v2/repository/models/digits/versions/2/load      load / unload one version
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from modelpress.errors import BadRequestError
from modelpress.runtime.codecs import parse_json
from modelpress.runtime.http import current_runtime, json_response, protected

blueprint = Blueprint("repository", __name__, url_prefix="/v2/repository")
MODEL = {"version": None}  # the route defaults of the form for a whole model


def _body(allowed: set[str]) -> dict:
    raw = request.get_data(cache=False)
    if not raw.strip():
        return {}
    body = parse_json(raw, current_runtime().config.max_json_depth)
    if not isinstance(body, dict):
        raise BadRequestError(f"the request body must be a JSON object with {', '.join(sorted(allowed))}, "
                              f"or empty; got {type(body).__name__}")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequestError(f"unknown field(s) {', '.join(unknown)}; this route takes {', '.join(sorted(allowed))}")
    return body


def _parameters(body: dict, allowed: set[str]) -> dict:
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequestError("parameters must be a JSON object")
    unknown = sorted(set(parameters) - allowed)
    if unknown:
        raise BadRequestError(f"parameter(s) {', '.join(unknown)} are not supported: modelpress loads packages "
                              "from its repository (publish one with `modelpress deploy`), it takes no model "
                              f"config or files in a load request; supported: {', '.join(sorted(allowed)) or 'none'}")
    return parameters


@blueprint.post("/index")
@protected
def index():
    """The repository index: every model version with its state (READY, LOADING, UNLOADING, UNAVAILABLE) and why."""
    body = _body({"ready"})
    ready = body.get("ready", False)
    if not isinstance(ready, bool):
        raise BadRequestError(f"ready must be true or false, got {str(ready)[:40]!r}")
    return json_response(current_runtime().plane.repository_index(ready_only=ready))


def _number(version: str | None) -> int | None:
    return None if version is None else int(version)  # a number: the pre-read checks answered 404 otherwise


@blueprint.post("/models/<model>/load", defaults=MODEL)
@blueprint.post("/models/<model>/versions/<version>/load", endpoint="version_load")
@protected
def load(model: str, version: str | None):
    """Load a model (the versions of its version policy), or one more version of it besides those, and wait
    until it is ready."""
    _parameters(_body({"parameters"}), set())
    current_runtime().plane.load_model(model, _number(version))
    return Response(status=200)


@blueprint.post("/models/<model>/unload", defaults=MODEL)
@blueprint.post("/models/<model>/versions/<version>/unload", endpoint="version_unload")
@protected
def unload(model: str, version: str | None):
    """Unload a model, or one version of it, once its in-flight requests finish; it stays unloaded until
    loaded again."""
    parameters = _parameters(_body({"parameters"}), {"unload_dependents"})
    if not isinstance(parameters.get("unload_dependents", False), bool):
        raise BadRequestError("unload_dependents must be true or false")
    current_runtime().plane.unload_model(model, _number(version))
    return Response(status=200)
