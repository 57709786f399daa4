"""``create_app(config)``: the Flask service over one model repository, with no module-level app.

Embed it in another WSGI app or serve it (granian or waitress; see :func:`modelpress.runtime.server.serve`)::

    from modelpress.runtime import create_app
    app = create_app({"repository": "models/", "tokens": ["s3cret"]})
    # or create_app("service.yaml"), create_app(RuntimeConfig.load(...)), create_app() with MODELPRESS_* vars
    app.modelpress.registry.status()          # {"digits": [{"version": 2, "state": "AVAILABLE", ...}]}
    app.modelpress.close()                    # stop polling, unload every model
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from modelpress.errors import ModelpressError, excerpt
from modelpress.layout import parse_version
from modelpress.runtime.checks import authorized, check_head
from modelpress.runtime.config import RuntimeConfig
from modelpress.runtime.dataplane import DataPlane
from modelpress.runtime.fastpath import FastInference, Lingering
from modelpress.runtime.http import error_answer, internal_answer, json_response, load_wait_headers
from modelpress.runtime.metrics import Metrics, StateCollector
from modelpress.runtime.protocols import ops, repository, tfserving_v1, v2
from modelpress.runtime.registry import ModelRegistry
from modelpress.runtime.requestlog import record_request

log = logging.getLogger("modelpress.runtime")


class Runtime:
    """What one app holds: config, registry, data plane, metrics, accepted tokens."""

    def __init__(self, config: RuntimeConfig, backends: dict | None = None):
        self.config = config
        self.tokens = [t.encode() for t in config.all_tokens()]
        self.metrics = Metrics()
        self.registry = ModelRegistry(config, self.metrics, backends=backends)
        self.metrics.registry.register(StateCollector(self.registry))
        self.plane = DataPlane(self.registry)

    def close(self) -> None:
        self.registry.stop()

    def authorized(self, header: str | None) -> bool:
        """Compare a bearer token with every accepted one in constant time."""
        return authorized(header, self.tokens)

    def metric_labels(self, model: str, version: str) -> tuple[str, str]:
        """The model and version to label metrics with: only names the repository holds, so that clients
        asking for made-up models or versions cannot grow the metrics without bound."""
        record = self.registry.models.get(model) if model else None
        if record is None:
            return "", ""
        number = parse_version(version)
        known = number is not None and (number in record.versions or number in record.failed)
        return model, version if known else ""


def _config(config: RuntimeConfig | dict | str | Path | None, overrides: dict[str, Any]) -> RuntimeConfig:
    if isinstance(config, RuntimeConfig):
        return config.replace(**overrides) if overrides else config
    if isinstance(config, dict):
        return RuntimeConfig.load(None, **{**config, **overrides})
    return RuntimeConfig.load(config, **overrides)


def create_app(config: RuntimeConfig | dict | str | Path | None = None, *, backends: dict | None = None,
               start: bool = True, **overrides: Any) -> Flask:
    """Build the service app. ``config`` is a RuntimeConfig, a dict of settings, a YAML path or None
    (defaults + ``MODELPRESS_*``); ``overrides`` win over all. ``start`` loads the repository now and
    starts hot reload; ``backends`` maps model formats to Backend classes (for other runtimes)::

        app = create_app({"repository": "models/"}, batching=True, max_batch_size=16)
    """
    cfg = _config(config, overrides)
    if not cfg.repository:
        from modelpress.errors import UsageError

        raise UsageError("no model repository given: pass repository= (or MODELPRESS_REPOSITORY, or "
                         "`modelpress serve REPO`)")
    runtime = Runtime(cfg, backends=backends)
    app = Flask("modelpress.runtime")
    app.config["MAX_CONTENT_LENGTH"] = cfg.max_body_bytes
    app.extensions["modelpress"] = runtime
    app.modelpress = runtime  # type: ignore[attr-defined]
    for blueprint in (tfserving_v1.blueprint, v2.blueprint, repository.blueprint, ops.blueprint):
        app.register_blueprint(blueprint)
    _install_hooks(app, runtime)
    # v2 inference without Flask's per-request work; early answers then drain what the client still sends
    app.wsgi_app = FastInference(Lingering(app.wsgi_app), runtime)  # type: ignore[method-assign]
    if start:
        runtime.registry.start()
    return app


def _install_hooks(app: Flask, runtime: Runtime) -> None:
    @app.before_request
    def _guard():  # the same checks as every door (modelpress.runtime.checks), rendered by _expected below
        g.started = time.perf_counter()
        g.protocol = request.blueprint or "other"
        g.model = (request.view_args or {}).get("model") or ""
        g.version = (request.view_args or {}).get("version") or ""
        view = app.view_functions.get(request.endpoint or "")
        check_head(runtime, protocol=g.protocol, model=g.model, version=g.version, length=request.content_length,
                   authorization=request.headers.get("Authorization"),
                   protected=getattr(view, "modelpress_protected", False))

    @app.errorhandler(ModelpressError)
    def _expected(err: ModelpressError):
        status, body, headers = error_answer(err)
        return Response(body, status=status, headers=headers, mimetype="application/json")

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException):
        message, headers = err.description or err.name, {}
        if err.code == 413:
            message = f"the request body is over {runtime.config.max_body_bytes} bytes (max_body_bytes)"
        elif err.code == 404:
            message = f"no route {excerpt(request.path)}; see /openapi.json for the routes"
        elif err.code == 405:
            allowed = sorted(err.valid_methods or []) if isinstance(err, MethodNotAllowed) else []
            message = f"{request.method} is not allowed on {excerpt(request.path)}; " + (
                f"use {', '.join(allowed)}" if allowed else "see /openapi.json")
            headers = {"Allow": ", ".join(allowed)} if allowed else {}
        return json_response({"error": message}, err.code or 500, headers)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        # the details (paths, internals) stay in the server's log; the client gets a reference to them
        status, body = internal_answer(err, request.method, request.path)
        return Response(body, status=status, mimetype="application/json")

    @app.after_request
    def _record(response: Response):
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        response.headers.update(load_wait_headers(runtime))
        record_request(runtime, protocol=g.get("protocol", "other"), method=request.method, path=request.path,
                       remote=request.remote_addr, model=g.get("model", ""), version=str(g.get("version", "")),
                       status=response.status_code, seconds=seconds, bytes_in=request.content_length or 0,
                       bytes_out=response.calculate_content_length(),
                       traceparent=request.environ.get("HTTP_TRACEPARENT"))
        return response
