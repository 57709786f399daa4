"""The service's routes and their OpenAPI operations, pinned: clients and generated SDKs address the routes by
path and the operations by id, so a refactor of the protocol modules must leave both exactly as they are."""

from __future__ import annotations

import pytest

from modelpress.runtime.openapi import openapi_document

#: (method, Flask rule, endpoint) of every route; the endpoint is the operation id without its method
ROUTES = {
    ("GET", "/", "ops.status_page"),
    ("GET", "/status", "ops.status_json"),
    ("GET", "/metrics", "ops.metrics"),
    ("GET", "/openapi.json", "ops.openapi"),
    ("POST", "/admin/reload", "ops.reload"),
    ("GET", "/v1/models/<model>", "v1.model_status"),
    ("GET", "/v1/models/<model>/versions/<version>", "v1.version_status"),
    ("GET", "/v1/models/<model>/labels/<label>", "v1.label_status"),
    ("GET", "/v1/models/<model>/metadata", "v1.metadata"),
    ("GET", "/v1/models/<model>/versions/<version>/metadata", "v1.version_metadata"),
    ("GET", "/v1/models/<model>/labels/<label>/metadata", "v1.label_metadata"),
    ("POST", "/v1/models/<model>:predict", "v1.predict"),
    ("POST", "/v1/models/<model>/versions/<version>:predict", "v1.version_predict"),
    ("POST", "/v1/models/<model>/labels/<label>:predict", "v1.label_predict"),
    ("GET", "/v2", "v2.server_metadata"),
    ("GET", "/v2/health/live", "v2.live"),
    ("GET", "/v2/health/ready", "v2.ready"),
    ("GET", "/v2/models/<model>", "v2.model_metadata"),
    ("GET", "/v2/models/<model>/versions/<version>", "v2.version_metadata"),
    ("GET", "/v2/models/<model>/ready", "v2.model_ready"),
    ("GET", "/v2/models/<model>/versions/<version>/ready", "v2.version_ready"),
    ("POST", "/v2/models/<model>/infer", "v2.infer"),
    ("POST", "/v2/models/<model>/versions/<version>/infer", "v2.version_infer"),
    ("POST", "/v2/repository/index", "repository.index"),
    ("POST", "/v2/repository/models/<model>/load", "repository.load"),
    ("POST", "/v2/repository/models/<model>/unload", "repository.unload"),
    ("POST", "/v2/repository/models/<model>/versions/<version>/load", "repository.version_load"),
    ("POST", "/v2/repository/models/<model>/versions/<version>/unload", "repository.version_unload"),
}
STATUS = ["200", "404"]
METADATA = ["200", "404", "503"]
INFER = ["200", "400", "401", "404", "413", "503"]
#: per operation id: the response codes it documents, whether it needs the token, its parameters
OPERATIONS = {
    "ops.status_page.get": (["200"], False, []),
    "ops.status_json.get": (["200"], False, []),
    "ops.metrics.get": (["200"], False, []),
    "ops.openapi.get": (["200"], False, []),
    "ops.reload.post": (["200", "401"], True, []),
    "v1.model_status.get": (STATUS, False, ["model"]),
    "v1.version_status.get": (STATUS, False, ["model", "version"]),
    "v1.label_status.get": (STATUS, False, ["label", "model"]),
    "v1.metadata.get": (METADATA, False, ["model"]),
    "v1.version_metadata.get": (METADATA, False, ["model", "version"]),
    "v1.label_metadata.get": (METADATA, False, ["label", "model"]),
    "v1.predict.post": (INFER, True, ["model"]),
    "v1.version_predict.post": (INFER, True, ["model", "version"]),
    "v1.label_predict.post": (INFER, True, ["label", "model"]),
    "v2.server_metadata.get": (["200"], False, []),
    "v2.live.get": (["200"], False, []),
    "v2.ready.get": (["200", "503"], False, []),
    "v2.model_metadata.get": (METADATA, False, ["model"]),
    "v2.version_metadata.get": (METADATA, False, ["model", "version"]),
    "v2.model_ready.get": (METADATA, False, ["model"]),
    "v2.version_ready.get": (METADATA, False, ["model", "version"]),
    "v2.infer.post": (INFER, True, ["model", "Inference-Header-Content-Length"]),
    "v2.version_infer.post": (INFER, True, ["model", "version", "Inference-Header-Content-Length"]),
    "repository.index.post": (["200", "400", "401", "413"], True, []),
    "repository.load.post": (["200", "400", "401", "404", "413", "422", "503"], True, ["model"]),
    "repository.unload.post": (["200", "400", "401", "404", "413"], True, ["model"]),
    "repository.version_load.post": (["200", "400", "401", "404", "413", "422", "503"], True, ["model", "version"]),
    "repository.version_unload.post": (["200", "400", "401", "404", "413"], True, ["model", "version"]),
}


@pytest.fixture
def fake(fake_app):
    return fake_app()


def test_the_routes_are_exactly_the_pinned_ones(fake):
    served = {(method, rule.rule, rule.endpoint) for rule in fake.url_map.iter_rules() if rule.endpoint != "static"
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == ROUTES


def test_the_openapi_operations_are_exactly_the_pinned_ones(fake):
    document = fake.test_client().get("/openapi.json").json
    assert document == openapi_document(fake)
    operations = {operation["operationId"]: (sorted(operation["responses"]), "security" in operation,
                                             [p["name"] for p in operation["parameters"]])
                  for item in document["paths"].values() for operation in item.values()}
    assert operations == OPERATIONS
    paths = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert paths == {(method, rule.replace("<", "{").replace(">", "}")) for method, rule, _ in ROUTES}
    for item in document["paths"].values():
        for operation in item.values():  # a whole sentence, never a docstring's line cut short
            assert operation["summary"].endswith("."), operation["operationId"]
