"""One record per answered request, whichever door answered it: the request metrics and the access-log line.

The Flask app's ``after_request`` hook, the fast inference path and the gRPC servicer all call
:func:`record_request`, so a request is counted and logged the same way whichever of them answered it. Each
door passes its own protocol's status: an HTTP status code (200, 404...) or a gRPC status code's name ("OK",
"NOT_FOUND"...), as its clients see it. The access log is one JSON object per line on the ``modelpress.access``
logger, written only when ``access_log`` is on and the logger takes INFO, with the same keys for every door::

    record_request(runtime, protocol="v2", method="POST", path="/v2/models/digits/infer", remote="127.0.0.1",
                   model="digits", version="2", status=200, seconds=0.0012, bytes_in=310, bytes_out=95)
    # {"ts":1767000000.123,"remote":"127.0.0.1","method":"POST","path":"/v2/models/digits/infer","status":200,
    #  "ms":1.2,"bytes_in":310,"bytes_out":95,"protocol":"v2","model":"digits","version":"2","trace_id":null}
    record_request(runtime, protocol="grpc", method="gRPC", path="/inference.GRPCInferenceService/ModelInfer",
                   remote="ipv4:127.0.0.1:50312", model="digits", version="2", status="OK", ...)
    # {..."status":"OK",...,"protocol":"grpc","model":"digits","version":"2","trace_id":"4bf92f35..."}

``trace_id`` is the request's trace (W3C trace context): its span's when tracing made one, otherwise the
caller's ``traceparent``, otherwise null; worked out only when the line is written.
"""

from __future__ import annotations

import json
import logging
import re
import time

access_log = logging.getLogger("modelpress.access")
#: the protocols whose requests are counted per model and version (the others under no model)
PER_MODEL = ("v1", "v2", "grpc")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_NO_TRACE = "0" * 32


def record_request(runtime, *, protocol: str, method: str, path: str, remote: str | None, model: str,
                   version: str, status: int | str, seconds: float, bytes_in: int, bytes_out: int | None,
                   span=None, traceparent: str | None = None) -> None:
    """Count the request in the metrics and write its access-log line.

    ``status`` is the door's own: an HTTP status code or a gRPC status code's name. ``span`` (the request's
    span, from :func:`~modelpress.runtime.tracing.request_span`) and ``traceparent`` (the caller's header or
    metadata) give the line its ``trace_id``.

    ``model`` and ``version`` are as the client named them, ``version`` being the one that answered once it
    is known; the metrics label them only with names the repository holds
    (:meth:`~modelpress.runtime.app.Runtime.metric_labels`), so made-up names cannot grow the metrics.
    """
    labels = runtime.metric_labels(model, version) if protocol in PER_MODEL else ("", "")
    runtime.metrics.request(*labels, protocol, status, seconds)
    if runtime.config.access_log and access_log.isEnabledFor(logging.INFO):
        access_log.info(json.dumps({
            "ts": round(time.time(), 3), "remote": remote, "method": method, "path": path, "status": status,
            "ms": round(seconds * 1000, 3), "bytes_in": bytes_in, "bytes_out": bytes_out, "protocol": protocol,
            "model": model or None, "version": version or None, "trace_id": trace_id(span, traceparent),
        }, separators=(",", ":")))


def trace_id(span, traceparent: str | None) -> str | None:
    """The request's trace id (32 hex digits): its span's, else a valid ``traceparent``'s, else None."""
    if span is not None:
        context = span.get_span_context()
        if context.is_valid:
            return format(context.trace_id, "032x")
    found = _TRACEPARENT.fullmatch(traceparent.strip().lower()) if traceparent else None
    return found.group(1) if found and found.group(1) != _NO_TRACE else None
