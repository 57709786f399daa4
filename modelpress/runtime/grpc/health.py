"""The standard gRPC health service (``grpc.health.v1.Health``) on the gRPC door, for Kubernetes ``grpc:``
probes, ``grpc_health_probe`` and load balancers that check gRPC health::

    grpc_health_probe -addr=127.0.0.1:8081                   # "": the server as a whole
    grpc_health_probe -addr=127.0.0.1:8081 -service=digits   # one model

The answers follow the HTTP door's, computed when asked (nothing to keep in step):

- ``""`` (and ``inference.GRPCInferenceService``): SERVING when the data plane is ready, by the rule of
  ``/v2/health/ready`` (:meth:`~modelpress.runtime.dataplane.DataPlane.not_ready_reason`), NOT_SERVING
  otherwise (an empty repository, every version failed, still loading, draining);
- a model's name: SERVING when its newest version takes requests, the rule of ``/v2/models/<model>/ready``
  and ModelReady (under a memory budget, asking loads a model it unloaded, as those do);
- any other name: NOT_FOUND (Check), SERVICE_UNKNOWN (Watch).

On SIGTERM :meth:`HealthService.drain` turns every answer NOT_SERVING before the door refuses new calls;
:meth:`HealthService.close` ends the Watch streams, so that an open Watch does not hold the server's
shutdown until its grace period runs out. The servicer and its Watch streams come from the maintained
``grpcio-health-checking`` package; this module only says what is healthy.
"""

from __future__ import annotations

import logging
import threading

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import HealthServicer

from modelpress.errors import NotFoundError
from modelpress.runtime.grpc import messages

log = logging.getLogger("modelpress.runtime")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
OVERALL = ("", messages.SERVICE)  # the names that mean the server as a whole
WATCH_POLL = 1.0  # seconds between two looks at the statuses that open Watch streams follow


class HealthService(HealthServicer):
    """``grpc.health.v1.Health`` over a runtime (``app.modelpress``)::

        health = HealthService(runtime)
        health.add_to(server)       # before server.start()
        health.drain()              # SIGTERM: NOT_SERVING from now on
        health.close()              # end the Watch streams, stop following statuses
    """

    def __init__(self, runtime):
        super().__init__()
        self.runtime = runtime
        self.draining = False
        self._stopped = threading.Event()
        self._poller = threading.Thread(target=self._follow, name="modelpress-grpc-health", daemon=True)

    def add_to(self, server: grpc.Server) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(self, server)
        self._poller.start()

    # --- what is healthy -------------------------------------------------------------------------------------
    def status_of(self, service: str) -> int | None:
        """SERVING or NOT_SERVING for a name this server knows, None for one it does not."""
        plane = self.runtime.plane
        if service in OVERALL:
            return SERVING if not self.draining and plane.not_ready_reason() is None else NOT_SERVING
        if service not in self.runtime.registry.model_names():
            return None
        try:
            ready = plane.model_ready(service).ready
        except NotFoundError:  # removed from the repository since
            return None
        return SERVING if ready and not self.draining else NOT_SERVING

    def _refresh(self, service: str) -> int | None:
        """The status of ``service`` now; a change is sent to the Watch streams that follow it."""
        status = self.status_of(service)
        with self._lock:
            if self._server_status.get(service) != status:
                self.set(service, SERVICE_UNKNOWN if status is None else status)
                if status is None:
                    self._server_status.pop(service, None)
        return status

    # --- the RPCs --------------------------------------------------------------------------------------------
    def Check(self, request, context):  # noqa: N802 - the name the generated service calls
        status = self._refresh(request.service)
        if status is None:
            models = ", ".join(self.runtime.registry.model_names()) or "none"
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f"no service {request.service!r} here: ask for '' (the server as a whole), "
                          f"{messages.SERVICE!r}, or a model's name (models: {models})")
        return health_pb2.HealthCheckResponse(status=status)

    def Watch(self, request, context, send_response_callback=None):  # noqa: N802
        if send_response_callback is not None:
            send_response_callback = _EndsOnce(send_response_callback)
            if self._stopped.is_set():  # the door is closing: say so and end, rather than hold the close
                send_response_callback(health_pb2.HealthCheckResponse(status=NOT_SERVING))
                send_response_callback(None)
                return None
        self._refresh(request.service)
        return super().Watch(request, context, send_response_callback)

    # --- drain and close -------------------------------------------------------------------------------------
    def drain(self) -> None:
        """Every service NOT_SERVING from now on (the Watch streams are told at once)."""
        self.draining = True
        self.enter_graceful_shutdown()

    def close(self) -> None:
        """Stop following statuses and end every Watch stream (status OK), so the server can close."""
        self._stopped.set()
        with self._lock:
            streams = [send for sends in self._send_response_callbacks.values() for send in sends]
        for send in streams:
            send(None)

    def _follow(self) -> None:
        """Send the changes of the statuses that open Watch streams follow (the data plane has no events)."""
        while not self._stopped.wait(WATCH_POLL):
            with self._lock:
                watched = [service for service, sends in self._send_response_callbacks.items() if sends]
            for service in watched:
                try:
                    self._refresh(service)
                except Exception:  # noqa: BLE001 - one bad look must not stop the streams' updates
                    log.exception("gRPC health: cannot tell the status of %r", service)


class _EndsOnce:
    """A Watch stream's send that ignores everything after the end (``None``): the stream is ended by
    :meth:`HealthService.close`, and again by the servicer's own callback when the call terminates."""

    __slots__ = ("send", "ended", "lock")

    def __init__(self, send):
        self.send, self.ended, self.lock = send, False, threading.Lock()

    def __call__(self, response) -> None:
        with self.lock:
            if self.ended:
                return
            self.ended = response is None
        self.send(response)
