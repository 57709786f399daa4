"""The OpenAPI 3 document of an app, built from its URL map so that every route is in it::

    doc = openapi_document(app)
    sorted(doc["paths"])       # ['/', '/admin/reload', '/metrics', ..., '/v2/models/{model}/infer']
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask

from modelpress import __version__

_PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_TENSOR = {"type": "object", "required": ["name", "datatype", "shape"], "properties": {
    "name": {"type": "string"}, "datatype": {"type": "string", "example": "FP32"},
    "shape": {"type": "array", "items": {"type": "integer"}},
    "data": {"type": "array", "items": {}}, "parameters": {"type": "object"}}}
BODIES = {
    "v1": {"type": "object", "description": "TF Serving predict: exactly one of instances (rows) or inputs (columns)",
           "properties": {"signature_name": {"type": "string"}, "instances": {"type": "array", "items": {}},
                          "inputs": {}}},
    "v2": {"type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string"}, "parameters": {"type": "object"},
        "inputs": {"type": "array", "items": {"$ref": "#/components/schemas/Tensor"}},
        "outputs": {"type": "array", "items": {"type": "object"}}}},
}


def openapi_document(app: Flask) -> dict[str, Any]:
    """Every rule of ``app`` (bar static files) as an OpenAPI 3.0 path item."""
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        path = _PARAM.sub(r"{\1}", rule.rule)
        doc = (view.__doc__ or rule.endpoint).strip().splitlines()[0]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation: dict[str, Any] = {
                "operationId": f"{rule.endpoint}.{method.lower()}", "summary": doc,
                "tags": [rule.endpoint.split(".")[0]],
                "parameters": [{"name": arg, "in": "path", "required": True, "schema": {"type": "string"}}
                               for arg in sorted(rule.arguments)],
                "responses": {"200": {"description": "success"}, "400": _ERROR, "404": _ERROR},
            }
            if method == "POST":
                protocol = rule.endpoint.split(".")[0]
                schema = BODIES.get(protocol, {"type": "object"})
                operation["requestBody"] = {"required": protocol in BODIES,
                                            "content": {"application/json": {"schema": schema}}}
                operation["responses"].update({"413": _ERROR, "503": _ERROR})
            if getattr(view, "modelpress_protected", False):
                operation["security"] = [{"bearer": []}]
                operation["responses"]["401"] = _ERROR
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {"title": "modelpress runtime", "version": __version__,
                 "description": "TF Serving REST v1 and Open Inference Protocol v2 over a model repository"},
        "paths": paths,
        "components": {
            "schemas": {"Error": {"type": "object", "required": ["error"],
                                  "properties": {"error": {"type": "string"}}}, "Tensor": _TENSOR},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
