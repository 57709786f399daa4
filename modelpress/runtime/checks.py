"""The checks every door makes before it reads a request's body, decided once, in one order, for every door.

A request is refused, before a byte of its body is read, for the first of:

1. a body larger than ``max_body_bytes`` by its declared length (413);
2. a route that needs the bearer token without a right one (401);
3. a version in the route that is not a whole number (404).

The decision is an exception, never an answer: :func:`check_head` raises a
:class:`~modelpress.errors.ModelpressError` subclass (``PayloadTooLargeError``, ``UnauthorizedError``,
``NotFoundError``) whose message says what happened and how to fix it. Each door only renders it: the Flask
app's hook and the fast inference path turn it into an HTTP status with a ``{"error": ...}`` body
(:func:`modelpress.runtime.http.error_answer`); a gRPC servicer renders the same exception as a gRPC status
code (413 as RESOURCE_EXHAUSTED, 401 as UNAUTHENTICATED, 404 as NOT_FOUND) with the same message. Nothing
here knows a web framework::

    check_head(runtime, protocol="v2", model="digits", version="2", length=1024,
               authorization=environ.get("HTTP_AUTHORIZATION"), protected=True)   # returns, or raises
"""

from __future__ import annotations

import hmac

from modelpress.errors import NotFoundError, PayloadTooLargeError, UnauthorizedError, excerpt
from modelpress.layout import parse_version


def authorized(header: str | None, tokens: list[bytes]) -> bool:
    """Compare a bearer token with every accepted one in constant time (no tokens: everyone is)::

        authorized("bearer s3cret", [b"s3cret"])   # True: the scheme is case-insensitive (RFC 7235)
    """
    if not tokens:
        return True
    scheme, _, credentials = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    sent = credentials.strip().encode()
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(sent, token)
    return matched


def check_head(runtime, *, protocol: str, model: str, version: str | None, length: int | None,
               authorization: str | None, protected: bool) -> None:
    """Raise the first refusal that the request's head already decides (see the module's list), else return.

    ``runtime`` is the app's :class:`~modelpress.runtime.app.Runtime` (its ``config.max_body_bytes`` and
    ``tokens``); ``length`` the declared body length (None when unknown: a chunked body is held to the limit
    while it is read); ``authorization`` the Authorization header (or gRPC metadata) as sent; ``protected``
    whether the route needs the token (inference, admin, the repository extension).
    """
    limit = runtime.config.max_body_bytes
    if length is not None and length > limit:
        raise PayloadTooLargeError(f"the request body has {length} bytes, over {limit} bytes (max_body_bytes); "
                                   "it was refused before being read")
    if protected and not authorized(authorization, runtime.tokens):
        raise UnauthorizedError("this route needs a bearer token: send 'Authorization: Bearer <token>'")
    if version and parse_version(version) is None:
        where = "v1" if protocol == "v1" else "v2"
        raise NotFoundError(f"version {excerpt(version, 40)!r} of model {model!r} is not a version number; versions "
                            f"are whole numbers like 1 or 2 (see /{where}/models/<model> for the model's)")
