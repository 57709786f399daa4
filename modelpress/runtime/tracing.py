"""OpenTelemetry tracing of inference requests (the ``tracing`` extra), off unless asked for
(``--tracing``, ``MODELPRESS_TRACING=true``): a server span per request, continuing the caller's W3C
``traceparent`` (an HTTP header or gRPC metadata), with child spans for decode, queue / batch, invoke
and encode, each carrying the model and version. Spans are exported as the standard ``OTEL_*`` settings
say (``OTEL_TRACES_EXPORTER`` otlp (default, OTLP over HTTP: ``OTEL_EXPORTER_OTLP_ENDPOINT``...), console
or none; ``OTEL_SERVICE_NAME``, default modelpress); a tracer provider the host process set up itself is
used as it is::

    configure(True)                                           # once per serving process
    with request_span("ModelInfer", {"traceparent": "00-..."}, "grpc"):
        annotate("digits", "2")                               # on this span and the stages after it
        with stage("decode"): ...

Off, each helper costs one check of a module global.
"""

from __future__ import annotations

import contextlib
import contextvars
import multiprocessing.util
import os
from collections.abc import Iterator, Mapping
from typing import Any

from modelpress import __version__
from modelpress.errors import UsageError

_tracer: Any = None
_labels: contextvars.ContextVar[dict | None] = contextvars.ContextVar("modelpress_trace_labels", default=None)
_NULL = contextlib.nullcontext()


def configure(enabled: bool) -> None:
    """Turn tracing on (or off) for this process; on, a provider exporting per the ``OTEL_*`` settings is
    installed unless the process already has an SDK provider."""
    global _tracer
    if not enabled:
        _tracer = None
        return
    require()
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME",
                                                                                             "modelpress")}))
        exporter = _exporter()
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        # the spans still queued go out when the process ends: a server's worker process skips atexit
        # handlers (the SDK's own flush), but runs multiprocessing's finalizers
        multiprocessing.util.Finalize(None, provider.shutdown, exitpriority=5)
    _tracer = trace.get_tracer("modelpress.runtime", __version__)


def require() -> None:
    """One clear error, before any worker starts, when tracing is asked for without OpenTelemetry."""
    import importlib.util

    if importlib.util.find_spec("opentelemetry.sdk") is None:
        raise UsageError("tracing is on but OpenTelemetry is not installed: pip install 'modelpress[tracing]', "
                         "or turn tracing off (--no-tracing, MODELPRESS_TRACING=false)")


def _exporter():
    kind = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if kind == "none":
        return None
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if kind != "otlp":
        raise UsageError(f"OTEL_TRACES_EXPORTER={kind!r} is not supported here; use otlp, console or none")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def enabled() -> bool:
    return _tracer is not None


@contextlib.contextmanager
def request_span(name: str, carrier: Mapping[str, str] | None, protocol: str) -> Iterator[Any]:
    """A server span for one request, child of the caller's ``traceparent`` in ``carrier`` (lower-case
    header or metadata names) when it holds a valid one; yields the span, or None when tracing is off."""
    if _tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = TraceContextTextMapPropagator().extract(dict(carrier or {}))
    token = _labels.set(None)
    try:
        with _tracer.start_as_current_span(name, context=parent, kind=SpanKind.SERVER,
                                           attributes={"rpc.system" if protocol == "grpc" else "http.protocol":
                                                       protocol}) as span:
            yield span
    finally:
        _labels.reset(token)


def annotate(model: str, version: str) -> None:
    """Name the model and version of the current request: on its span and on every stage after this."""
    if _tracer is None:
        return
    from opentelemetry import trace

    labels = {"modelpress.model": model}
    if version:  # unknown until the model is looked up, when the request names none (decode comes first)
        labels["modelpress.version"] = str(version)
    _labels.set(labels)
    trace.get_current_span().set_attributes(labels)


def failed(message: str) -> None:
    """Mark the current request's span as failed, with the message the client got."""
    if _tracer is None:
        return
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    trace.get_current_span().set_status(Status(StatusCode.ERROR, message))


def stage(name: str):
    """A child span of the current request (decode, queue, batch, invoke, encode); nothing outside a
    request (a batcher's own thread) or with tracing off."""
    if _tracer is None:
        return _NULL
    from opentelemetry import trace

    if not trace.get_current_span().is_recording():
        return _NULL
    return _tracer.start_as_current_span(name, attributes=_labels.get() or {})
