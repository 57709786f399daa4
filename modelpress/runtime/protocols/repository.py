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

from flask import Blueprint, Response, current_app, request

from modelpress.errors import BadRequestError
from modelpress.runtime.codecs import parse_json
from modelpress.runtime.http import json_response, protected

blueprint = Blueprint("repository", __name__, url_prefix="/v2/repository")


def _plane():
    return current_app.extensions["modelpress"].plane


def _body(allowed: set[str]) -> dict:
    raw = request.get_data(cache=False)
    if not raw.strip():
        return {}
    body = parse_json(raw, current_app.extensions["modelpress"].config.max_json_depth)
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
    return json_response(_plane().repository_index(ready_only=ready))


def _load(model: str, version: str | None = None) -> Response:
    _parameters(_body({"parameters"}), set())
    _plane().load_model(model, None if version is None else int(version))
    return Response(status=200)


def _unload(model: str, version: str | None = None) -> Response:
    parameters = _parameters(_body({"parameters"}), {"unload_dependents"})
    if not isinstance(parameters.get("unload_dependents", False), bool):
        raise BadRequestError("unload_dependents must be true or false")
    _plane().unload_model(model, None if version is None else int(version))
    return Response(status=200)


@blueprint.post("/models/<model>/load")
@protected
def load(model: str):
    """Load a model (the versions of its version policy) and wait until it is ready."""
    return _load(model)


@blueprint.post("/models/<model>/unload")
@protected
def unload(model: str):
    """Unload a model once its in-flight requests finish; it stays unloaded until loaded again."""
    return _unload(model)


@blueprint.post("/models/<model>/versions/<version>/load")
@protected
def version_load(model: str, version: str):
    """Load one more version of a model, besides those of its version policy."""
    return _load(model, version)


@blueprint.post("/models/<model>/versions/<version>/unload")
@protected
def version_unload(model: str, version: str):
    """Unload one version of a model."""
    return _unload(model, version)
