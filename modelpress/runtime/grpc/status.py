"""Errors rendered for the gRPC door: each :class:`~modelpress.errors.ModelpressError` carries an HTTP
status, and the gRPC status code follows from it (the usual HTTP to gRPC mapping), with the same message
the HTTP door sends::

    grpc_code(NotFoundError("no model 'x'"))             # StatusCode.NOT_FOUND
    grpc_code(UnavailableError("loading", retry_after=1))  # StatusCode.UNAVAILABLE (retry-after in trailers)
"""

from __future__ import annotations

import grpc

from modelpress.errors import ModelpressError

_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    # a package that cannot be served (broken file, bad manifest): the request was fine, the model is not
    422: grpc.StatusCode.FAILED_PRECONDITION,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def grpc_code(err: ModelpressError) -> grpc.StatusCode:
    """The gRPC status code of an expected error (INTERNAL for a status with no closer code)."""
    return _CODES.get(err.http_status, grpc.StatusCode.INTERNAL)


def trailers(err: ModelpressError) -> tuple[tuple[str, str], ...]:
    """Trailing metadata that goes with an error: ``retry-after`` (seconds) when the error says when to retry."""
    retry_after = getattr(err, "retry_after", None)
    if retry_after is None:
        return ()
    return (("retry-after", str(max(1, round(retry_after)))),)
