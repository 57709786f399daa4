"""The gRPC door's server: started beside the HTTP server in each serving process, over the same runtime,
and drained on SIGTERM::

    door = GrpcDoor.start(app.modelpress, host="127.0.0.1", port=8081, threads=2)
    door.port                  # the port it listens on (the one picked, for port 0)
    door.stop(grace=30)        # health NOT_SERVING, refuse new calls, answer those in flight (<= 30 s), close

Beside the inference service it serves the standard health service (``grpc.health.v1.Health``, see
:mod:`modelpress.runtime.grpc.health`) for Kubernetes ``grpc:`` probes.

Messages are capped at the HTTP body cap (``max_body_bytes``): gRPC refuses a larger one in its transport,
before the servicer runs, with RESOURCE_EXHAUSTED, as the HTTP door refuses a larger body from its
Content-Length with a 413.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import grpc

from modelpress.errors import UsageError
from modelpress.runtime.grpc.health import HealthService
from modelpress.runtime.grpc.servicer import InferenceServicer

log = logging.getLogger("modelpress.runtime")
QUIET = 1.0  # seconds without a new call before the drained door closes (calls gRPC holds but has not
#             handed to a thread yet are cancelled by its shutdown; on a starved machine they wait long)
MAX_CONCURRENT_RPCS = 1024  # calls held at once (running or queued for a thread), as the HTTP listen backlog


class GrpcDoor:
    """A running gRPC server over one runtime; ``start`` binds it, ``stop`` drains it."""

    def __init__(self, server: grpc.Server, servicer: InferenceServicer, health: HealthService, port: int,
                 threads: int):
        self.server, self.servicer, self.health, self.port, self.threads = server, servicer, health, port, threads

    @classmethod
    def start(cls, runtime, host: str, port: int, threads: int, shared_port: bool = False,
              credentials: grpc.ServerCredentials | None = None) -> GrpcDoor:
        """Bind ``host:port`` and serve. ``shared_port`` lets several processes listen on the same port
        (SO_REUSEPORT: one door per worker process); off, a port already taken is a clear error.
        ``credentials`` (:func:`modelpress.runtime.tls.grpc_credentials`) serve TLS, as the HTTP door does."""
        config = runtime.config
        options = [
            ("grpc.max_receive_message_length", config.max_body_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 1 if shared_port else 0),
        ]
        servicer = InferenceServicer(runtime)
        server = grpc.server(ThreadPoolExecutor(max_workers=threads, thread_name_prefix="modelpress-grpc"),
                             handlers=(servicer.handler(),), options=options,
                             maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS)
        health = HealthService(runtime)
        health.add_to(server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            bound = (server.add_secure_port(address, credentials) if credentials is not None
                     else server.add_insecure_port(address))
        except RuntimeError as err:  # grpcio raises where older versions returned 0
            bound, reason = 0, f" ({err})"
        else:
            reason = ""
        if not bound:
            health.close()
            server.stop(None)
            raise UsageError(f"cannot listen for gRPC on {address}{reason}; pick another --grpc-port")
        server.start()
        return cls(server, servicer, health, bound, threads)

    def stop(self, grace: float) -> None:
        """Drain: the health service answers NOT_SERVING, readiness turns false and new calls are answered
        UNAVAILABLE (retry elsewhere) while the calls in flight finish; once none is left and none came for
        ``QUIET`` seconds (at most ``grace`` seconds in all), the Watch streams end and the server closes.

        Closing at once would be simpler and lose calls: gRPC's shutdown cancels the calls its transport
        has received but not yet handed to a thread, and the client cannot tell whether those ran."""
        servicer = self.servicer
        self.health.drain()
        servicer.runtime.registry.ready = False
        servicer.draining = True
        log.warning("SIGTERM: draining the gRPC door (up to %g s)", grace)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and (servicer.in_flight or time.monotonic() - servicer.last_call < QUIET):
            time.sleep(0.01)
        self.health.close()  # an open Watch stream would hold the close until the grace ran out
        self.server.stop(max(0.0, deadline - time.monotonic())).wait()
        log.warning("gRPC door drained and closed")
