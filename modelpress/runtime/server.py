"""Run the service under waitress (a production WSGI server; never Flask's development server)::

    serve({"repository": "models/", "port": 8500, "threads": 8})
    # INFO modelpress.runtime: serving models/ on http://127.0.0.1:8500 (8 threads, 1 worker)

With ``workers > 1`` the parent binds the port and forks that many processes sharing it; each loads
its own models (and keeps its own metrics).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from pathlib import Path
from typing import Any

from modelpress.runtime.config import RuntimeConfig

log = logging.getLogger("modelpress.runtime")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        from modelpress.errors import UsageError

        raise UsageError(f"cannot listen on {host}:{port} ({err.strerror}); pick another --port or --host") from None
    sock.listen(1024)
    return sock


def _run_one(config: RuntimeConfig, sock: socket.socket, announce: Any, worker: int) -> None:
    import waitress

    from modelpress.runtime.app import create_app

    app = create_app(config)
    # the app answers bodies over max_body_bytes with a JSON 413 from Content-Length alone; waitress only
    # cuts off (with its own plain 413) what is far beyond that, so it never buffers a huge upload
    transport_limit = max(2 * config.max_body_bytes, config.max_body_bytes + 1024 * 1024)
    server = waitress.create_server(app, sockets=[sock], threads=config.threads, ident="modelpress",
                                    max_request_body_size=transport_limit, clear_untrusted_proxy_headers=True)

    def stop(signum, frame):  # noqa: ARG001
        server.close()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    if announce is not None:
        announce(worker)
    try:
        server.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        app.modelpress.close()


def serve(config: RuntimeConfig | dict | str | Path | None = None, **overrides: Any) -> None:
    """Serve a repository until interrupted (SIGINT / SIGTERM), logging where it listens."""
    from modelpress.runtime.app import _config

    cfg = _config(config, overrides)
    if cfg.access_log:
        logging.getLogger("modelpress.access").setLevel(logging.INFO)
    sock = _bind(cfg.host, cfg.port)
    host, port = sock.getsockname()[:2]
    where = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def announce(worker: int) -> None:
        if worker == 0:
            log.warning("serving %s on %s (%d thread(s), %d worker(s)); status page %s/, metrics %s/metrics",
                        cfg.repository, where, cfg.threads, cfg.workers, where, where)

    if cfg.workers == 1:
        _run_one(cfg, sock, announce, 0)
        return
    children = []
    for worker in range(cfg.workers):
        pid = os.fork()
        if pid == 0:  # child
            try:
                _run_one(cfg, sock, announce, worker)
            finally:
                os._exit(0)
        children.append(pid)

    def forward(signum, frame):  # noqa: ARG001
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for pid in children:
        while True:
            try:
                os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                break
