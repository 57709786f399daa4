"""One record per answered request, whichever door answered it: the request metrics and the access-log line.

The Flask app's ``after_request`` hook and the fast inference path both call :func:`record_request`, so a
request is counted and logged the same way whichever of them answered it (and a gRPC servicer can do the
same). The access log is one JSON object per line on the ``modelpress.access`` logger, written only when
``access_log`` is on and the logger takes INFO::

    record_request(runtime, protocol="v2", method="POST", path="/v2/models/digits/infer", remote="127.0.0.1",
                   model="digits", version="2", status=200, seconds=0.0012, bytes_in=310, bytes_out=95)
    # {"ts":1767000000.123,"remote":"127.0.0.1","method":"POST","path":"/v2/models/digits/infer","status":200,
    #  "ms":1.2,"bytes_in":310,"bytes_out":95,"protocol":"v2","model":"digits","version":"2"}
"""

from __future__ import annotations

import json
import logging
import time

access_log = logging.getLogger("modelpress.access")
#: the protocols whose requests are counted per model and version (the others under no model)
PER_MODEL = ("v1", "v2")


def record_request(runtime, *, protocol: str, method: str, path: str, remote: str | None, model: str,
                   version: str, status: int, seconds: float, bytes_in: int, bytes_out: int | None) -> None:
    """Count the request in the metrics and write its access-log line.

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
            "model": model or None, "version": version or None,
        }, separators=(",", ":")))
