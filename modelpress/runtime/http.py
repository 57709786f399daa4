"""HTTP helpers every protocol shares, in a module of their own so that the app factory imports the
blueprints and nothing imports the factory back: the one accessor of the app's runtime, JSON answers,
error bodies (how an HTTP door renders a :class:`~modelpress.errors.ModelpressError`), the marker for routes
that need the bearer token (checked in :mod:`modelpress.runtime.checks`) and the on-demand load timing::

    @blueprint.post("/models/<model>/infer")
    @protected
    def infer(model): return json_response({"outputs": current_runtime().plane...})

    status, body, headers = error_answer(NotFoundError("no model 'x'"))   # 404, b'{"error":...}', {}
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Response, current_app

from modelpress.errors import ModelpressError, UnauthorizedError, UnavailableError
from modelpress.runtime.codecs.json import dumps

log = logging.getLogger("modelpress.runtime")
JSON = "application/json"


def current_runtime():
    """The :class:`~modelpress.runtime.app.Runtime` of the app handling this request (inside a request only)::

        current_runtime().plane.ready()
    """
    return current_app.extensions["modelpress"]


def protected(view):
    """Mark a view as needing the bearer token when tokens are configured (inference and admin)::

        @protected
        def reload(): ...
    """
    view.modelpress_protected = True
    return view


def json_response(payload: Any, status: int = 200, headers: dict | None = None) -> Response:
    """A Flask response with compact JSON: ``json_response({"ready": True})``."""
    return Response(dumps(payload), status=status, headers=headers, mimetype=JSON)


def error_body(message: str) -> bytes:
    """The one error shape of the service: ``error_body("no model")`` is ``b'{"error":"no model"}'``."""
    return dumps({"error": message})


def error_answer(err: ModelpressError) -> tuple[int, bytes, dict[str, str]]:
    """Status, JSON body and headers for an expected error (Retry-After, WWW-Authenticate where they apply)::

        error_answer(UnavailableError("loading", retry_after=1))   # (503, b'...', {"Retry-After": "1"})
    """
    headers = {}
    if isinstance(err, UnavailableError) and err.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(err.retry_after)))
    if isinstance(err, UnauthorizedError):
        headers["WWW-Authenticate"] = 'Bearer realm="modelpress"'
    return err.http_status, error_body(str(err)), headers


def internal_answer(err: Exception, method: str, path: str) -> tuple[int, bytes]:
    """A 500 for an unexpected error: details (paths, internals) go to the log under a reference, the client
    gets the reference::

        status, body = internal_answer(KeyError("x"), "POST", "/v2/models/a/infer")
    """
    reference = uuid.uuid4().hex[:12]
    log.error("unexpected error %s on %s %s", reference, method, path, exc_info=err)
    return 500, error_body(f"internal error ({type(err).__name__}); the server log has the details under "
                           f"reference {reference}")


def load_timing(seconds: float) -> str:
    """The ``Server-Timing`` header value of a request that waited for an on-demand model load::

        load_timing(0.042)      # 'load;dur=42.0;desc="on-demand model load"'
    """
    return f'load;dur={seconds * 1000:.1f};desc="on-demand model load"'


def load_wait_headers(runtime) -> dict[str, str]:
    """``{"Server-Timing": ...}`` when this request waited for its model to load (memory budget), else ``{}``;
    both HTTP doors add it to their answer::

        response.headers.update(load_wait_headers(runtime))
    """
    waited = runtime.registry.control.take_wait()
    return {} if waited is None else {"Server-Timing": load_timing(waited)}
