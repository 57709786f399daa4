"""The Open Inference Protocol over gRPC (``inference.GRPCInferenceService``), a door over the same data
plane as HTTP: the same models, batching, metrics, access log, bearer token (``authorization`` metadata)
and messages; errors are gRPC status codes (see :mod:`modelpress.runtime.grpc.status`). The stock
``tritonclient.grpc`` client works against it::

    server = grpc.server(ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((InferenceServicer(app.modelpress).handler(),))

Each RPC takes the request's bytes and parses them itself, so that a malformed message is an
INVALID_ARGUMENT with a clear message (not gRPC's INTERNAL "exception deserializing"), and the token is
checked before the message is parsed, as HTTP checks it before reading the body.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable

import grpc
from google.protobuf.message import DecodeError

from modelpress import __version__
from modelpress.errors import (
    BadRequestError,
    ModelpressError,
    NotFoundError,
    UnauthorizedError,
    UnavailableError,
    excerpt,
)
from modelpress.layout import parse_version
from modelpress.runtime import tracing
from modelpress.runtime.codecs.arrays import v2_datatype
from modelpress.runtime.grpc import messages
from modelpress.runtime.grpc.status import grpc_code, trailers
from modelpress.runtime.grpc.tensors import add_outputs, answer_is_raw, grpc_inputs, requested_outputs
from modelpress.runtime.http import load_timing
from modelpress.runtime.requestlog import record_request

log = logging.getLogger("modelpress.runtime")
EXTENSIONS = ["model_repository"]
_OK = grpc.StatusCode.OK
_NO_METADATA: dict[str, str] = {}
_UNTRACED = contextlib.nullcontext()  # the request span with tracing off: no span (None)


class _Call:
    """What one RPC names, for its record (:func:`~modelpress.runtime.requestlog.record_request`)."""
    __slots__ = ("model", "version")

    def __init__(self):
        self.model, self.version = "", ""


class InferenceServicer:
    """The RPCs of ``inference.GRPCInferenceService`` over a runtime (``app.modelpress``): its data plane,
    metrics, config and tokens::

        handler = InferenceServicer(app.modelpress).handler()     # a grpc.GenericRpcHandler
    """

    #: RPCs that need the bearer token when tokens are configured (as inference and admin routes over HTTP)
    PROTECTED = {"ModelInfer", "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload"}

    def __init__(self, runtime):
        self.runtime = runtime
        self.plane = runtime.plane
        self.draining = False          # set by the door's drain: new calls are refused with UNAVAILABLE
        self.in_flight = 0             # calls being answered now
        self.last_call = 0.0           # monotonic time the last call arrived
        self._lock = threading.Lock()

    def handler(self) -> grpc.GenericRpcHandler:
        rpcs = {
            "ServerLive": self.server_live, "ServerReady": self.server_ready, "ModelReady": self.model_ready,
            "ServerMetadata": self.server_metadata, "ModelMetadata": self.model_metadata,
            "ModelInfer": self.model_infer, "RepositoryIndex": self.repository_index,
            "RepositoryModelLoad": self.repository_load, "RepositoryModelUnload": self.repository_unload,
        }
        kinds = messages.methods()
        handlers = {name: grpc.unary_unary_rpc_method_handler(self._behaviour(name, kinds[name][0], method))
                    for name, method in rpcs.items()}
        return grpc.method_handlers_generic_handler(messages.SERVICE, handlers)

    # --- one wrapper for every RPC: token, parsing, errors, metrics, access log ----------------------------
    def _behaviour(self, name: str, request_class: type, method: Callable) -> Callable:
        protected = name in self.PROTECTED
        path = f"/{messages.SERVICE}/{name}"

        def behaviour(data: bytes, context: grpc.ServicerContext) -> bytes:
            started = time.perf_counter()
            call, answer, code, message, trailing = _Call(), b"", _OK, "", ()
            with self._lock:
                self.in_flight += 1
                self.last_call = time.monotonic()
            # the metadata and the peer are read only for what uses them (a span, an access-log line, a
            # token): a call without tokens, tracing or access log is answered without copying them
            traced, logged = tracing.enabled(), self.runtime.config.access_log
            metadata = dict(context.invocation_metadata()) if traced or logged else _NO_METADATA
            with tracing.request_span(name, metadata, "grpc") if traced else _UNTRACED as span:
                try:
                    if self.draining:
                        raise UnavailableError("the server is shutting down (SIGTERM); send the call to another "
                                               "replica or retry shortly", retry_after=1)
                    if protected and self.runtime.tokens:
                        self._authorize(context)
                    answer = method(_parse(request_class, data), call).SerializeToString()
                except ModelpressError as err:
                    code, message, trailing = grpc_code(err), str(err), trailers(err)
                except Exception as err:  # noqa: BLE001 - the client gets a reference, the log the details
                    code, message = grpc.StatusCode.INTERNAL, _internal(err, path)
                finally:
                    with self._lock:
                        self.in_flight -= 1
                if code is not _OK:
                    tracing.failed(message)
            waited = self.runtime.registry.control.take_wait()
            if waited is not None:  # the request waited for its model to load (memory budget): say so, and how long
                trailing = (*trailing, ("server-timing", load_timing(waited)))
            record_request(self.runtime, protocol="grpc", method="gRPC", path=path,
                           remote=context.peer() if logged else None, model=call.model, version=call.version,
                           status=code.name, seconds=time.perf_counter() - started, bytes_in=len(data),
                           bytes_out=len(answer), span=span, traceparent=metadata.get("traceparent"))
            if trailing:
                context.set_trailing_metadata(trailing)
            if code is not _OK:
                context.abort(code, message)
            return answer

        return behaviour

    def _authorize(self, context: grpc.ServicerContext) -> None:
        header = next((value for key, value in context.invocation_metadata() if key == "authorization"), None)
        if not self.runtime.authorized(header):
            raise UnauthorizedError("this call needs a bearer token: send the metadata 'authorization: Bearer <token>'")

    # --- health and metadata --------------------------------------------------------------------------------
    def server_live(self, request, call: _Call):
        return messages.ServerLiveResponse(live=True)

    def server_ready(self, request, call: _Call):
        return messages.ServerReadyResponse(ready=self.plane.ready())

    def model_ready(self, request, call: _Call):
        """Ready or not for a model the repository holds; NOT_FOUND for a model or version it does not."""
        state = self.plane.model_ready(_model(request.name), _version(request.name, request.version))
        return messages.ModelReadyResponse(ready=state.ready)

    def server_metadata(self, request, call: _Call):
        return messages.ServerMetadataResponse(name="modelpress", version=__version__, extensions=EXTENSIONS)

    def model_metadata(self, request, call: _Call):
        meta = self.plane.metadata(_model(request.name), _version(request.name, request.version))
        answer = messages.ModelMetadataResponse(name=request.name, versions=[str(v) for v in meta.versions],
                                                platform=meta.platform)
        for specs, tensors in ((meta.inputs, answer.inputs), (meta.outputs, answer.outputs)):
            for spec in specs:
                tensors.add(name=spec.name, datatype=v2_datatype(spec.dtype), shape=list(spec.shape))
        return answer

    # --- inference --------------------------------------------------------------------------------------------
    def model_infer(self, request, call: _Call):
        """Decode, run on the data plane (batcher included), encode as the request sent its inputs."""
        model = _model(request.model_name)
        version = _version(model, request.model_version)
        call.model, call.version = model, version or ""
        tracing.annotate(model, call.version)
        with tracing.stage("decode"):
            tensors = grpc_inputs(request)
        with self.plane.model(model, version) as served:
            call.version = str(served.version)
            tracing.annotate(model, call.version)
            named = dict(tensors)
            if len(named) != len(tensors):
                raise BadRequestError("an input name appears twice in the request; send each input once")
            outputs = self.plane.predict(served, named)
        with tracing.stage("encode"):
            names = requested_outputs(request, list(outputs))
            answer = messages.ModelInferResponse(model_name=model, model_version=call.version, id=request.id)
            add_outputs(answer, outputs, names, answer_is_raw(request))
        return answer

    # --- the repository extension -----------------------------------------------------------------------------
    def repository_index(self, request, call: _Call):
        answer = messages.RepositoryIndexResponse()
        for row in self.plane.repository_index(ready_only=request.ready):
            answer.models.add(name=row["name"], version=str(row.get("version") or ""), state=row["state"],
                              reason=row.get("reason") or "")
        return answer

    def repository_load(self, request, call: _Call):
        """Load a model (its version policy's versions), or one more version with the ``version`` parameter."""
        model = _model(request.model_name)
        version = _repository_parameters(request.parameters, {"version"})
        self.plane.load_model(model, version)
        return messages.RepositoryModelLoadResponse()

    def repository_unload(self, request, call: _Call):
        """Unload a model once its in-flight requests finish, or one version with the ``version`` parameter."""
        model = _model(request.model_name)
        version = _repository_parameters(request.parameters, {"version", "unload_dependents"})
        self.plane.unload_model(model, version)
        return messages.RepositoryModelUnloadResponse()


def _parse(request_class: type, data: bytes):
    try:
        return request_class.FromString(data)
    except DecodeError:
        raise BadRequestError(f"the request is not a valid {request_class.DESCRIPTOR.name} message "
                              f"({len(data)} bytes); send inference.{request_class.DESCRIPTOR.name} as "
                              "the Open Inference Protocol's gRPC service defines it") from None


def _model(name: str) -> str:
    if not name:
        raise BadRequestError("the request names no model; set its model name")
    return name


def _version(model: str, version: str) -> str | None:
    """None for the newest available version (empty), the version text otherwise; NOT_FOUND when it is no
    version number (as over HTTP)."""
    if not version:
        return None
    if parse_version(version) is None:
        raise NotFoundError(f"version {excerpt(version, 40)!r} of model {model!r} is not a version number; "
                            "versions are whole numbers like 1 or 2 (see ModelMetadata for the model's)")
    return version


def _repository_parameters(parameters, allowed: set[str]) -> int | None:
    """The version a load / unload names (modelpress's ``version`` parameter), after checking the others."""
    unknown = sorted(set(parameters) - allowed)
    if unknown:
        raise BadRequestError(f"parameter(s) {', '.join(unknown)} are not supported: modelpress loads packages "
                              "from its repository (publish one with `modelpress deploy`), it takes no model "
                              f"config or files in a load request; supported: {', '.join(sorted(allowed))}")
    if "unload_dependents" in parameters and parameters["unload_dependents"].WhichOneof("parameter_choice") \
            != "bool_param":
        raise BadRequestError("unload_dependents must be true or false")
    if "version" not in parameters:
        return None
    value = parameters["version"]
    kind = value.WhichOneof("parameter_choice")
    text = str(value.int64_param) if kind == "int64_param" else value.string_param if kind == "string_param" else ""
    number = parse_version(text)
    if number is None:
        raise BadRequestError(f"the version parameter must be a version number like 1 or 2, got {excerpt(text, 40)!r}")
    return number


def _internal(err: Exception, path: str) -> str:
    reference = uuid.uuid4().hex[:12]
    log.error("unexpected error %s on gRPC %s", reference, path, exc_info=err)
    return f"internal error ({type(err).__name__}); the server log has the details under reference {reference}"
