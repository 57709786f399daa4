"""The inference routes without the web framework's per-request work: a WSGI layer in front of the Flask
app that answers ``POST /v2/models/<model>[/versions/<version>]/infer`` itself and hands every other
request to Flask. It keeps every promise of the Flask path by calling the same functions: the checks
before the body is read (:func:`modelpress.runtime.checks.check_head`: 413 from Content-Length, 401, 404 for
a version that is not a number, in that order), the inference itself
(:func:`modelpress.runtime.inference.infer_answer`), the error bodies (``{"error": "..."}``) and the
request's record in the metrics and the access log (:func:`modelpress.runtime.requestlog.record_request`)::

    app.wsgi_app = FastInference(Lingering(app.wsgi_app), runtime)      # create_app does this

An answer given before the body was read (413, 401, ...) is followed by reading and discarding what the
client still sends, up to ``LINGER_BYTES`` (:class:`Lingering`): closing a connection with unread data
resets it, and the client would lose the answer it was sent. (waitress buffers bodies itself; granian
streams them to the app, so this matters there.)
"""

from __future__ import annotations

import time
from http import HTTPStatus

from modelpress.errors import ModelpressError, PayloadTooLargeError
from modelpress.runtime import tracing
from modelpress.runtime.checks import check_head
from modelpress.runtime.http import JSON, error_answer, internal_answer, load_wait_headers
from modelpress.runtime.inference import HEADER_LENGTH, infer_answer
from modelpress.runtime.requestlog import record_request

_PREFIX, _SUFFIX = "/v2/models/", "/infer"
_READ = 1 << 16
LINGER_BYTES = 8 << 20  # the most an early answer reads and drops of a body it refused
_HEADER_LENGTH = "HTTP_" + HEADER_LENGTH.upper().replace("-", "_")  # as WSGI names it
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
        with tracing.request_span("POST /v2/models/{model}/infer", _trace_headers(environ), "v2") as span:
            try:
                raw = self._body(environ, model, version)
                header = environ.get(_HEADER_LENGTH)
                answer = infer_answer(self.runtime, model, version, raw, header, served)
                status, body, content_type, headers = 200, answer.body, answer.content_type, answer.headers
            except ModelpressError as err:
                status, body, headers = error_answer(err)
                tracing.failed(str(err))
            except Exception as err:  # noqa: BLE001 - the client gets a reference, the log the details
                status, body = internal_answer(err, "POST", environ.get("PATH_INFO", ""))
                tracing.failed("internal error")
        headers = {**headers, **load_wait_headers(self.runtime)}
        start_response(_REASONS.get(status, str(status)), [("Content-Type", content_type),
                                                            ("Content-Length", str(len(body))), *headers.items()])
        length = environ.get("CONTENT_LENGTH") or ""
        record_request(self.runtime, protocol="v2", method="POST", path=environ.get("PATH_INFO", ""),
                       remote=environ.get("REMOTE_ADDR"), model=model, version=served[0] if served else (version or ""),
                       status=status, seconds=time.perf_counter() - started,
                       bytes_in=int(length) if length.isdigit() else 0, bytes_out=len(body), span=span,
                       traceparent=environ.get("HTTP_TRACEPARENT"))
        if raw is None:  # answered before the body was read
            return _then_drain([body], environ, 0)
        return [body]

    def _body(self, environ, model: str, version: str | None) -> bytes:
        """The request body, after the checks that come before reading it."""
        limit = self.runtime.config.max_body_bytes
        text = environ.get("CONTENT_LENGTH") or ""
        length = int(text) if text.isdigit() else None
        check_head(self.runtime, protocol="v2", model=model, version=version, length=length,
                   authorization=environ.get("HTTP_AUTHORIZATION"), protected=True)  # as v2.infer is
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
