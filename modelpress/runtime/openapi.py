"""The OpenAPI 3 document of an app, built from its URL map so that every route is in it::

    doc = openapi_document(app)
    sorted(doc["paths"])       # ['/', '/admin/reload', '/metrics', ..., '/v2/models/{model}/infer']

Each operation lists the statuses it really answers with (every error as ``{"error": "..."}``), its
request bodies (JSON, and for v2 inference the binary tensor data extension) and, as examples, the
names the repository holds right now.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask

from modelpress import __version__
from modelpress.runtime.codecs import V2_DATATYPES

_PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
WHY = {"400": "the request is malformed: the message says what was expected",
       "401": "a bearer token is needed (only when the service has tokens)",
       "404": "no such model, version or label (or not a valid name)",
       "413": "the request body is over max_body_bytes",
       "422": "the model failed to load: the message says why",
       "503": "no version of the model is available yet (Retry-After), or the batch queue is full"}
#: statuses a route answers with besides 200 and those implied by its shape (404 for path parameters;
#: 400, 413 and 503 for an inference body; 401 when protected)
EXTRA = {"v2.ready": ["503"], "v2.model_ready": ["503"], "v2.version_ready": ["503"],
         "v2.model_metadata": ["503"], "v2.version_metadata": ["503"], "v1.metadata": ["503"],
         "v1.version_metadata": ["503"], "v1.label_metadata": ["503"],
         "repository.index": ["400", "413"], "repository.load": ["400", "413", "422", "503"],
         "repository.version_load": ["400", "413", "422", "503"], "repository.unload": ["400", "413"],
         "repository.version_unload": ["400", "413"]}
CONTENT = {"ops.status_page": "text/html", "ops.metrics": "text/plain"}
_TENSOR = {"type": "object", "required": ["name", "datatype", "shape"], "properties": {
    "name": {"type": "string", "example": "image"},
    "datatype": {"type": "string", "enum": list(V2_DATATYPES), "example": "FP32"},
    "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "example": [1, 8, 8, 1]},
    "data": {"type": "array", "items": {}, "description": "row-major values (flat or nested lists)"},
    "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer", "minimum": 0}}}}}
BODIES = {
    "v1": {"type": "object", "description": "TF Serving predict: exactly one of instances (rows) or inputs (columns)",
           "oneOf": [{"required": ["instances"]}, {"required": ["inputs"]}],
           "properties": {"signature_name": {"type": "string", "enum": ["serving_default", ""]},
                          "instances": {"type": "array", "minItems": 1, "items": {}}, "inputs": {}}},
    "v2": {"type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object", "properties": {"binary_data_output": {"type": "boolean"}}},
        "inputs": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Tensor"}},
        "outputs": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"},
            "parameters": {"type": "object", "properties": {"binary_data": {"type": "boolean"}}}}}}}},
}
BINARY = {"schema": {"type": "string", "format": "binary"}}
BINARY_WHY = ("JSON, or (application/octet-stream) the binary tensor data extension: the JSON request, then "
              "the tensors' raw bytes, with Inference-Header-Content-Length giving the JSON part's length")
HEADER_LENGTH = {"name": "Inference-Header-Content-Length", "in": "header", "required": False,
                 "description": "bytes of JSON at the start of a binary-extension body",
                 "schema": {"type": "integer", "minimum": 1}}


def _examples(app: Flask) -> dict[str, str]:
    """Names that exist now, as examples for the path parameters."""
    runtime = app.extensions.get("modelpress")
    examples = {"model": "digits", "version": "1", "label": "stable"}
    if runtime is None:
        return examples
    for name, rows in runtime.registry.status().items():
        versions = [row for row in rows if row["version"] is not None]
        if versions:
            examples["model"], examples["version"] = name, str(versions[0]["version"])
            labels = [label for row in versions for label in row.get("labels", [])]
            if labels:
                examples["label"] = labels[0]
                break
    return examples


def _parameter(name: str, examples: dict[str, str]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if name == "version":
        schema["pattern"] = "^[0-9]+$"
    return {"name": name, "in": "path", "required": True, "schema": schema, "example": examples.get(name, name)}


def _responses(endpoint: str, has_params: bool, protected: bool, body: bool) -> dict[str, Any]:
    media = CONTENT.get(endpoint, "application/json")
    ok: dict[str, Any] = {"description": "success", "content": {media: {}}}
    if endpoint.endswith("infer"):
        ok["content"]["application/octet-stream"] = BINARY
    codes = list(EXTRA.get(endpoint, []))
    codes += ["404"] if has_params else []
    codes += ["400", "413", "503"] if body else []
    codes += ["401"] if protected else []
    responses = {"200": ok}
    for code in sorted(set(codes)):
        responses[code] = {"description": WHY[code], **_ERROR}
    return responses


def _summary(docstring: str) -> str:
    """A view docstring's first paragraph on one line (one view answers every form of its operation)."""
    return " ".join(line.strip() for line in docstring.strip().split("\n\n")[0].splitlines())


def openapi_document(app: Flask) -> dict[str, Any]:
    """Every rule of ``app`` (bar static files) as an OpenAPI 3.0 path item."""
    paths: dict[str, dict] = {}
    examples = _examples(app)
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        path = _PARAM.sub(r"{\1}", rule.rule)
        doc = _summary(view.__doc__ or rule.endpoint)
        protocol = rule.endpoint.split(".")[0]
        protected = getattr(view, "modelpress_protected", False)
        arguments = sorted(rule.arguments - set(rule.defaults or ()))  # in the path, not filled in by a default
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            body = method == "POST" and protocol in BODIES
            operation: dict[str, Any] = {
                "operationId": f"{rule.endpoint}.{method.lower()}", "summary": doc, "tags": [protocol],
                "parameters": [_parameter(arg, examples) for arg in arguments],
                "responses": _responses(rule.endpoint, bool(arguments), protected, body),
            }
            if body:
                content = {"application/json": {"schema": BODIES[protocol]}}
                if protocol == "v2":
                    content["application/octet-stream"] = BINARY
                    operation["parameters"].append(HEADER_LENGTH)
                operation["requestBody"] = {"required": True, "content": content}
                if protocol == "v2":
                    operation["requestBody"]["description"] = BINARY_WHY
            if protected:
                operation["security"] = [{"bearer": []}]
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {"title": "modelpress runtime", "version": __version__,
                 "description": "TF Serving REST v1 and Open Inference Protocol v2 over a model repository. Any "
                                "other method on a path answers 405 (with Allow); an unknown path 404."},
        "paths": paths,
        "components": {
            "schemas": {"Error": {"type": "object", "required": ["error"],
                                  "properties": {"error": {"type": "string", "minLength": 1}}}, "Tensor": _TENSOR},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
