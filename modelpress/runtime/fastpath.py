"""The inference routes without the web framework's per-request work: a WSGI layer in front of the Flask
app that answers ``POST /v2/models/<model>[/versions/<version>]/infer`` itself and hands every other
request to Flask. It keeps every promise of the Flask path, in the same order: a body over
``max_body_bytes`` is refused from its Content-Length before it is read (413), the bearer token is checked
before the body is read (401), a version that is not a number is a 404, every error is ``{"error": "..."}``,
and each request is counted in the metrics and the access log the same way::

    app.wsgi_app = FastInference(Lingering(app.wsgi_app), runtime)      # create_app does this

An answer given before the body was read (413, 401, ...) is followed by reading and discarding what the
client still sends, up to ``LINGER_BYTES`` (:class:`Lingering`): closing a connection with unread data
resets it, and the client would lose the answer it was sent. (waitress buffers bodies itself; granian
streams them to the app, so this matters there.)
"""

from __future__ import annotations

import json
import logging
import time
from http import HTTPStatus

from modelpress.errors import (
    ModelpressError,
    NotFoundError,
    PayloadTooLargeError,
    UnauthorizedError,
    excerpt,
)
from modelpress.layout import parse_version
from modelpress.runtime import tracing
from modelpress.runtime.http import JSON, authorized, error_answer, internal_answer, load_timing
from modelpress.runtime.protocols.v2 import infer_answer

access_log = logging.getLogger("modelpress.access")
_PREFIX, _SUFFIX = "/v2/models/", "/infer"
_READ = 1 << 16
LINGER_BYTES = 8 << 20  # the most an early answer reads and drops of a body it refused
_REASONS = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}


def infer_route(path: str) -> tuple[str, str | None] | None:
    """(model, version or None) when ``path`` is a v2 inference route, else None::

        infer_route("/v2/models/digits/versions/2/infer")   # ("digits", "2")
    """
    if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
        return None
    parts = path[len(_PREFIX):-len(_SUFFIX)].split("/")
    if len(parts) == 1 and parts[0]:
        return parts[0], None
    if len(parts) == 3 and parts[0] and parts[1] == "versions" and parts[2]:
        return parts[0], parts[2]
    return None


class FastInference:
    """WSGI middleware: v2 inference answered directly, everything else by ``app``."""

    def __init__(self, app, runtime):
        self.app = app
        self.runtime = runtime

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        route = infer_route(environ.get("PATH_INFO", ""))
        if route is None:
            return self.app(environ, start_response)
        started = time.perf_counter()
        model, version = route
        served: list[str] = []
        headers: dict[str, str] = {}
        content_type = JSON
        raw = None
        with tracing.request_span("POST /v2/models/{model}/infer", _trace_headers(environ), "v2"):
            try:
                raw = self._body(environ, model, version)
                header = environ.get("HTTP_INFERENCE_HEADER_CONTENT_LENGTH")
                answer = infer_answer(self.runtime, model, version, raw, header, served)
                status, body, content_type, headers = 200, answer.body, answer.content_type, answer.headers
            except ModelpressError as err:
                status, body, headers = error_answer(err)
                tracing.failed(str(err))
            except Exception as err:  # noqa: BLE001 - the client gets a reference, the log the details
                status, body = internal_answer(err, "POST", environ.get("PATH_INFO", ""))
                tracing.failed("internal error")
        waited = self.runtime.registry.control.take_wait()
        if waited is not None:  # the request waited for its model to load (memory budget): say so, and how long
            headers = {**headers, "Server-Timing": load_timing(waited)}
        start_response(_REASONS.get(status, str(status)), [("Content-Type", content_type),
                                                            ("Content-Length", str(len(body))), *headers.items()])
        self._record(environ, model, served[0] if served else (version or ""), status, started, len(body))
        if raw is None:  # answered before the body was read
            return _then_drain([body], environ, 0)
        return [body]

    def _body(self, environ, model: str, version: str | None) -> bytes:
        """The request body, after the checks that come before reading it."""
        limit = self.runtime.config.max_body_bytes
        text = environ.get("CONTENT_LENGTH") or ""
        length = int(text) if text.isdigit() else None
        if length is not None and length > limit:
            raise PayloadTooLargeError(f"the request body has {length} bytes, over {limit} bytes (max_body_bytes); "
                                       "it was refused before being read")
        if not authorized(environ.get("HTTP_AUTHORIZATION"), self.runtime.tokens):
            raise UnauthorizedError("this route needs a bearer token: send 'Authorization: Bearer <token>'")
        if version is not None and parse_version(version) is None:
            raise NotFoundError(f"version {excerpt(version, 40)!r} of model {model!r} is not a version number; "
                                "versions are whole numbers like 1 or 2 (see /v2/models/<model> for the model's)")
        stream = environ["wsgi.input"]
        if length is not None:
            return stream.read(length) if length else b""
        if not environ.get("wsgi.input_terminated"):
            return b""  # no length and no end marker: no body (as Flask reads it)
        chunks, size = [], 0
        while True:  # chunked: read at most the limit, refuse as soon as it is passed
            chunk = stream.read(min(_READ, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(f"the request body is over {limit} bytes (max_body_bytes)")
        return b"".join(chunks)

    def _record(self, environ, model: str, version: str, status: int, started: float, sent: int) -> None:
        seconds = time.perf_counter() - started
        runtime = self.runtime
        runtime.metrics.request(*runtime.metric_labels(model, version), "v2", status, seconds)
        if runtime.config.access_log and access_log.isEnabledFor(logging.INFO):
            text = environ.get("CONTENT_LENGTH") or ""
            access_log.info(json.dumps({
                "ts": round(time.time(), 3), "remote": environ.get("REMOTE_ADDR"), "method": "POST",
                "path": environ.get("PATH_INFO", ""), "status": status, "ms": round(seconds * 1000, 3),
                "bytes_in": int(text) if text.isdigit() else 0, "bytes_out": sent, "protocol": "v2",
                "model": model or None, "version": version or None,
            }, separators=(",", ":")))


def _trace_headers(environ) -> dict[str, str] | None:
    """The W3C trace context headers of a request, when tracing is on."""
    if not tracing.enabled():
        return None
    return {name: environ[key] for name, key in (("traceparent", "HTTP_TRACEPARENT"), ("tracestate", "HTTP_TRACESTATE"))
            if key in environ}


class _CountingInput:
    """``wsgi.input`` that counts what the application read."""

    def __init__(self, stream):
        self.stream = stream
        self.consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        data = self.stream.read() if size is None or size < 0 else self.stream.read(size)
        self.consumed += len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        data = self.stream.readline() if size is None or size < 0 else self.stream.readline(size)
        self.consumed += len(data)
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = self.stream.readlines(hint)
        self.consumed += sum(len(line) for line in lines)
        return lines

    def __iter__(self):
        return iter(self.readline, b"")


class Lingering:
    """WSGI middleware: when the application answered without reading the whole body, the answer goes out
    first and what the client still sends is read and dropped (at most ``LINGER_BYTES``)::

        app.wsgi_app = Lingering(app.wsgi_app)
    """

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        counting = _CountingInput(environ["wsgi.input"])
        environ["wsgi.input"] = counting
        result = self.app(environ, start_response)
        if _unread(environ, counting.consumed) == 0:
            return result
        return _then_drain(result, environ, counting.consumed, counting.stream)


def _unread(environ, consumed: int) -> int:
    text = environ.get("CONTENT_LENGTH") or ""
    if text.isdigit():
        return max(0, int(text) - consumed)
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return LINGER_BYTES  # unknown: up to the end of the body or the cap
    return 0


def _then_drain(result, environ, consumed: int, stream=None):
    """Yield the answer, then read and drop the rest of the request body (bounded; a client that stops or
    goes away ends it)."""
    try:
        yield from result
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    stream = stream or environ["wsgi.input"]
    left = min(_unread(environ, consumed), LINGER_BYTES)
    try:
        while left > 0:
            chunk = stream.read(min(_READ, left))
            if not chunk:
                break
            left -= len(chunk)
    except Exception:  # noqa: BLE001, S110 - the client went away: nothing left to drain
        pass
