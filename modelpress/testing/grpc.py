"""The gRPC door of a served process (:mod:`modelpress.testing.server`), for tests and benchmarks::

    with served(repo, "--grpc-port", "0") as server:
        target = grpc_target(server)                 # "127.0.0.1:43645", from its start-up log
"""

from __future__ import annotations

import re
import time

_LINE = re.compile(r"Open Inference gRPC on \[?([\w.:]+?)\]?:(\d+) ")


def grpc_target(server, timeout: float = 30) -> str:
    """``host:port`` of the gRPC door that ``server`` (a ServerProcess) logged, waiting up to ``timeout``
    seconds for the line (granian's worker may log it after the HTTP line)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(server.lines):
            found = _LINE.search(line)
            if found:
                return f"{found.group(1)}:{found.group(2)}"
        if server.proc.poll() is not None:
            break
        time.sleep(0.02)
    raise RuntimeError("the server logged no gRPC address (started without --grpc-port?):\n" + "".join(server.lines))
