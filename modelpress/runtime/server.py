"""Run the service under a production HTTP server (never Flask's development server): granian (Rust,
``pip install granian``; the runtime extra has it) when it imports, else waitress (pure Python)::

    serve({"repository": "models/", "port": 8500, "threads": 8})
    # WARNING modelpress.runtime: serving models/ on http://127.0.0.1:8500 (granian, 8 thread(s), 1 worker(s)) ...

``server="waitress"`` (``--server waitress``) picks waitress where both are present. With ``workers > 1``
that many processes share the port; each loads its own models (and keeps its own metrics). The start-up
line is written once the port takes connections, so a client reading it can send requests at once.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import multiprocessing.util
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from modelpress.runtime.config import RuntimeConfig
from modelpress.runtime.tls import CertificateWatcher, TLSFiles, check_tls, granian_tls

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


def _json_channel(max_body_bytes: int):
    """A waitress channel whose own error answers (413, 400, 431, 501: given before the app runs) are
    ``{"error": "..."}`` like every other answer of the service."""
    from waitress.channel import HTTPChannel
    from waitress.task import ErrorTask

    class JSONErrorTask(ErrorTask):
        def execute(self) -> None:
            error = self.request.error
            if error.code == 413:
                message = (f"the request body is over {max_body_bytes} bytes (max_body_bytes); it was refused "
                           "before being read")
            else:
                message = f"{error.reason}: {error.body}"
            body = json.dumps({"error": message}, separators=(",", ":")).encode()
            self.status = f"{error.code} {error.reason}"
            self.response_headers.append(("Content-Type", "application/json"))
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    class JSONChannel(HTTPChannel):
        error_task_class = JSONErrorTask

    return JSONChannel


def _run_one(config: RuntimeConfig, sock: socket.socket, announce: Any, worker: int) -> None:
    import waitress

    from modelpress.runtime.app import create_app
    from modelpress.runtime.tracing import configure as configure_tracing

    configure_tracing(config.tracing)
    app = create_app(config)
    # waitress refuses a body over max_body_bytes as soon as the headers say so (Content-Length), or as soon
    # as that many bytes came (chunked), instead of buffering it for the app to refuse; its limit counts
    # the limit itself as too large, hence the + 1
    server = waitress.create_server(app, sockets=[sock], threads=config.threads, ident="modelpress",
                                    max_request_body_size=config.max_body_bytes + 1,
                                    clear_untrusted_proxy_headers=True)
    server.channel_class = _json_channel(config.max_body_bytes)

    draining = threading.Event()

    def stop(signum, frame):  # noqa: ARG001
        # the main loop notices and drains: readiness turns 503, no new connection is accepted, and the
        # requests already received are answered before the process exits (Kubernetes sends SIGTERM)
        draining.set()

    signal.signal(signal.SIGTERM, stop)
    grpc_drain = _grpc_door_until(config, app.modelpress, draining)
    if announce is not None:
        announce(worker)
    try:
        _loop(server, draining, app.modelpress, config.drain_timeout)
    except KeyboardInterrupt:
        draining.set()
    finally:
        if grpc_drain is not None:
            grpc_drain.join()
        server.task_dispatcher.shutdown()
        server.close()
        app.modelpress.close()


def _start_grpc(config: RuntimeConfig, runtime):
    """The Open Inference gRPC door of this process when ``grpc_port`` is set (one per worker, sharing the
    port), its address logged; None otherwise."""
    if config.grpc_port is None:
        return None
    from modelpress.runtime.grpc.server import GrpcDoor
    from modelpress.runtime.tls import grpc_credentials

    tls = check_tls(config, server_name(config))  # the HTTP door's certificate: never gRPC in clear beside HTTPS
    door = GrpcDoor.start(runtime, config.host, config.grpc_port, config.threads, shared_port=config.workers > 1,
                          credentials=grpc_credentials(tls) if tls is not None else None)
    host = f"[{config.host}]" if ":" in config.host else config.host
    log.warning("Open Inference gRPC on %s:%d (%s%d thread(s), messages up to %d bytes)", host, door.port,
                "TLS, " if tls is not None else "", door.threads, config.max_body_bytes)
    return door


def _grpc_door_until(config: RuntimeConfig, runtime, draining: threading.Event) -> threading.Thread | None:
    """Start the gRPC door and a thread that drains it as soon as ``draining`` is set (SIGTERM), beside the
    HTTP drain; join the thread to wait for the drain."""
    door = _start_grpc(config, runtime)
    if door is None:
        return None

    def drain() -> None:
        draining.wait()
        door.stop(config.drain_timeout)

    thread = threading.Thread(target=drain, name="modelpress-grpc-drain", daemon=True)
    thread.start()
    return thread


def _busy(server) -> int:
    """Connections with a request in progress or an answer not yet sent (idle keep-alives do not count)."""
    return sum(1 for channel in list(server._map.values())
               if channel is not server and (getattr(channel, "requests", None) or getattr(channel, "request", None)
                                             or getattr(channel, "total_outbufs_len", 0)))


def _loop(server, draining: threading.Event, runtime, drain_timeout: float) -> None:
    """waitress's main loop, with a drain: after SIGTERM the server stops accepting, keeps serving the
    connections it has until none is busy (at most ``drain_timeout`` seconds), then returns."""
    timeout = server.adj.asyncore_loop_timeout
    while not draining.is_set():
        server.asyncore.loop(timeout=timeout, map=server._map, use_poll=server.adj.asyncore_use_poll, count=1)
    runtime.registry.ready = False  # /v2/health/ready answers 503: load balancers stop sending
    server.accepting = False
    deadline = time.monotonic() + drain_timeout
    busy = _busy(server)
    log.warning("SIGTERM: draining %d busy connection(s) (up to %g s)", busy, drain_timeout)
    while busy and time.monotonic() < deadline:
        server.asyncore.loop(timeout=0.05, map=server._map, use_poll=server.adj.asyncore_use_poll, count=1)
        busy = _busy(server)
    if busy:
        log.warning("drain timeout: %d connection(s) still busy are dropped", busy)
    else:
        log.warning("drained: every request received was answered")


def _fit_to_host(cfg: RuntimeConfig, threads_given: bool) -> RuntimeConfig:
    """Defaults that fit the host, logged with the reason: unless ``pool_size`` or ``threads`` is given, each
    model gets at most one interpreter per usable core (more would only wait for a core), and unless
    ``interpreter_threads`` is given, each interpreter the profile's threads fitted so that interpreters x
    threads stay within the cores (:func:`~modelpress.runtime.backends.tflite.fit_threads`)::

        # INFO host: 2 usable core(s) ...; 2 interpreter(s) per model (one per core); interpreter threads: ...
    """
    from modelpress.runtime.config import usable_cpus

    cores = usable_cpus()
    if cfg.pool_size is not None:
        pool, why = cfg.pool_size, "pool_size"
    elif threads_given:
        pool, why = cfg.threads, "--threads"
    else:
        pool, why = min(cfg.threads, cores), "one per core at most"
        cfg = cfg.replace(pool_size=pool)
    threads = (f"{cfg.interpreter_threads} (--interpreter-threads)" if cfg.interpreter_threads else
               f"each profile's, at most {max(1, cores // pool)} so that {pool} x threads fit the cores")
    log.info("host: %d usable core(s) (CPU affinity and cgroup quota); %d interpreter(s) per model (%s); "
             "interpreter threads: %s", cores, pool, why, threads)
    return cfg


def server_name(config: RuntimeConfig) -> str:
    """The HTTP server ``config`` runs on: ``server`` itself, or for ``auto`` granian when it imports::

        server_name(RuntimeConfig(server="auto"))   # "granian" (or "waitress" without the wheel)
    """
    if config.server != "auto":
        return config.server
    try:
        import granian  # noqa: F401
    except ImportError:
        return "waitress"
    return "granian"


def serve(config: RuntimeConfig | dict | str | Path | None = None, **overrides: Any) -> None:
    """Serve a repository until interrupted (SIGINT / SIGTERM), logging where it listens::

        serve({"repository": "models/", "workers": 2})
    """
    from modelpress.runtime.app import _config

    cfg = _config(config, overrides)
    if cfg.access_log:
        logging.getLogger("modelpress.access").setLevel(logging.INFO)
    tls = check_tls(cfg, server_name(cfg))  # a TLS setting the server cannot honour stops here, in one line
    tokens = cfg.all_tokens()  # a token source that holds none stops here, with the reason
    if tokens:
        log.info("authentication on: %d bearer token(s) accepted on inference and admin routes", len(tokens))
    else:
        log.warning("authentication off: no token setting (MODELPRESS_TOKENS, tokens, --token-file); inference and "
                    "admin routes are open to every client that reaches %s", cfg.host)
    if cfg.tracing:
        from modelpress.runtime.tracing import require

        require()
    name = server_name(cfg)
    cfg = _fit_to_host(cfg.replace(threads=cfg.request_threads(name)), threads_given=cfg.threads is not None)
    sock = _bind(cfg.host, cfg.port)
    _check_grpc_port(cfg)
    host, port = sock.getsockname()[:2]
    scheme = "https" if tls else "http"
    where = f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"
    line = (f"serving {cfg.repository} on {where} ({name}, {cfg.threads} thread(s), {cfg.workers} worker(s)); "
            f"status page {where}/, metrics {where}/metrics")
    if name == "granian":
        sock.close()  # granian binds the port itself, in each worker (the check above gives the clear error)
        _serve_granian(cfg, host, port, line, tls)
        return

    def announce(worker: int) -> None:
        if worker == 0:
            log.warning("%s", line)

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


def _check_grpc_port(cfg: RuntimeConfig) -> None:
    """A gRPC port already taken is a clear error before any worker starts (port 0 is always free)."""
    if cfg.grpc_port:
        from modelpress.errors import UsageError

        try:
            _bind(cfg.host, cfg.grpc_port).close()
        except UsageError as err:
            raise UsageError(f"gRPC: {str(err).split(';')[0]}; pick another --grpc-port") from None


def _serve_granian(cfg: RuntimeConfig, host: str, port: int, line: str, tls: TLSFiles | None = None) -> None:
    """granian's WSGI server: ``workers`` processes, ``threads`` Python threads each; its main process
    turns SIGTERM / SIGINT into a graceful stop, after which each worker unloads its models."""
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    from modelpress.runtime.app import create_app
    from modelpress.runtime.repository import scan_repository
    from modelpress.runtime.tracing import configure as configure_tracing

    create_app(cfg, start=False).modelpress.close()  # settings, tokens, profile: a clear error here, not per worker
    scan_repository(cfg.repository)                   # a missing repository likewise
    announced = multiprocessing.Value("i", 0)  # shared by the forked workers: the first one ready announces

    def load(target: str):  # noqa: ARG001 - runs in each worker, before it listens
        configure_tracing(cfg.tracing)  # in the worker: an exporter's thread does not survive a fork
        app = create_app(cfg)
        multiprocessing.util.Finalize(app, app.modelpress.close, exitpriority=10)  # at the worker's exit
        door = _start_grpc(cfg, app.modelpress)
        if door is not None:  # drained when granian ends the worker (after its HTTP drain), before the unload
            multiprocessing.util.Finalize(door, door.stop, args=(cfg.drain_timeout,), exitpriority=20)
        threading.Thread(target=_announce_when_listening, args=(host, port, line, announced), daemon=True).start()
        return app

    server = Granian("modelpress.runtime.app:create_app", address=host, port=port, interface=Interfaces.WSGI,
                     workers=cfg.workers, blocking_threads=cfg.threads, backlog=1024, log_level=LogLevels.warning,
                     workers_kill_timeout=int(max(cfg.unload_timeout, cfg.drain_timeout)) + 5, **granian_tls(tls))
    if tls is not None:
        CertificateWatcher(tls).start()  # a certificate replaced on disk: SIGHUP, granian respawns its workers
    server.serve(target_loader=load)


def _announce_when_listening(host: str, port: int, line: str, announced, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                break
        except OSError:
            time.sleep(0.01)
    with announced.get_lock():
        if announced.value:
            return
        announced.value = 1
    log.warning("%s", line)
