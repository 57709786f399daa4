"""The gRPC door of a served process (:mod:`modelpress.testing.server`), for tests and benchmarks: its
address, and sending calls to it as bytes and judging the answers (the hostile ones come from
:mod:`modelpress.testing.grpc_fuzzing`)::

    with served(repo, "--grpc-port", "0") as server:
        target = grpc_target(server)                 # "127.0.0.1:43645", from its start-up log
        send = GrpcSender(target)
        answer = send(GrpcCase("probe", "ModelInfer", body, token="s3cret"))   # GrpcAnswer(code="OK", ...)
        grpc_problems(case, answer)                  # [] or what is wrong: no answer, an unexpected code

A case's body goes through grpcio as the message's bytes; with ``wire`` it is the whole DATA of an HTTP/2
stream sent with h2, so the framing itself can be wrong. :func:`grpc_problems` says what is wrong with an
answer: no answer, a code outside :data:`EXPECTED`, or the servicer's own internal error.
"""

from __future__ import annotations

import re
import socket
import struct
import time
from dataclasses import dataclass

_LINE = re.compile(r"Open Inference gRPC on \[?([\w.:]+?)\]?:(\d+) ")
SERVICE = "inference.GRPCInferenceService"
RPCS = ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
        "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload")
#: every status a hostile call may get: the request's fault, said clearly (OK when it happens to be valid)
EXPECTED = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED", "UNAUTHENTICATED", "FAILED_PRECONDITION",
            "UNAVAILABLE", "UNIMPLEMENTED"}
#: what grpc's own transport answers for broken framing before any modelpress code runs (the gRPC spec's
#: codes for a malformed stream: a compressed flag with no encoding, a truncated message); accepted only for
#: ``wire`` cases, and only when the message is not the servicer's (see :func:`grpc_problems`)
TRANSPORT = {"INTERNAL", "UNKNOWN", "CANCELLED"}
_SERVICER_INTERNAL = "the server log has the details under reference"


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


def frame(message: bytes, flag: int = 0, length: int | None = None) -> bytes:
    """A gRPC length-prefixed message; ``flag`` and ``length`` may lie."""
    return bytes([flag]) + struct.pack(">I", len(message) if length is None else length) + message


@dataclass(frozen=True)
class GrpcCase:
    category: str
    rpc: str
    body: bytes
    token: str | None = None     # the authorization metadata's bearer token (None: none sent)
    wire: bool = False           # body is the stream's whole DATA (framing included), sent with h2

    def __repr__(self) -> str:  # short enough for a failure report, complete enough to replay
        body = self.body if len(self.body) <= 300 else self.body[:300] + b"..."
        return f"GrpcCase({self.category}: {self.rpc} token={self.token!r} wire={self.wire} body={body!r})"


def _messages():
    from modelpress.runtime.grpc import messages
    return messages

# --- sending and judging -------------------------------------------------------------------------------

@dataclass
class GrpcAnswer:
    code: str | None          # the gRPC status name; None when no answer came
    message: str = ""
    body: bytes = b""


class GrpcSender:
    """Sends cases to ``target``: messages through one grpcio channel (bytes in, bytes out), wire cases
    through h2 on a fresh connection each; no answer within ``timeout`` s counts as a hang."""

    def __init__(self, target: str, timeout: float = 30.0):
        import grpc

        self.grpc, self.target, self.timeout = grpc, target, timeout
        self.channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", -1),
                                                              ("grpc.max_receive_message_length", -1)])

    def close(self) -> None:
        self.channel.close()

    def __call__(self, case: GrpcCase) -> GrpcAnswer:
        if case.wire:
            return send_wire(self.target, case, self.timeout)
        if case.token is not None and not (case.token.isascii() and case.token.isprintable()):
            # grpcio will not send such metadata at all; a raw client can: frame the message and send it with h2
            return send_wire(self.target, case, self.timeout, frame(case.body))
        metadata = [] if case.token is None else [("authorization", f"Bearer {case.token}")]
        call = self.channel.unary_unary(f"/{SERVICE}/{case.rpc}")
        try:
            body = call(case.body, metadata=metadata, timeout=self.timeout)
        except self.grpc.RpcError as err:
            return GrpcAnswer(err.code().name, err.details() or "")
        return GrpcAnswer("OK", "", body)


def send_wire(target: str, case: GrpcCase, timeout: float, data: bytes | None = None) -> GrpcAnswer:
    """One HTTP/2 stream with ``data`` (``case.body`` by default) as its DATA, over a new connection: the
    grpc-status and grpc-message the server answered (from the trailers, or a trailers-only answer)."""
    data = case.body if data is None else data
    import h2.config
    import h2.connection
    import h2.events

    host, port = target.rsplit(":", 1)
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    headers = [(":method", "POST"), (":scheme", "http"), (":path", f"/{SERVICE}/{case.rpc}"), (":authority", target),
               ("content-type", "application/grpc"), ("te", "trailers")]
    if case.token is not None:
        headers.append(("authorization", f"Bearer {case.token}"))
    found: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
        connection.initiate_connection()
        connection.send_headers(1, headers, end_stream=not data)
        if data:
            connection.send_data(1, data, end_stream=True)
        sock.sendall(connection.data_to_send())
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                return _wire_answer(found, "the server closed the connection")
            for event in connection.receive_data(data):
                if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                    found.update(dict(event.headers))
                elif isinstance(event, h2.events.DataReceived):
                    connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamReset):
                    return _wire_answer(found, f"stream reset (HTTP/2 error {event.error_code})")
                elif isinstance(event, h2.events.ConnectionTerminated):
                    return _wire_answer(found, f"connection closed (HTTP/2 error {event.error_code})")
                if isinstance(event, h2.events.StreamEnded):
                    return _wire_answer(found, "")
            sock.sendall(connection.data_to_send())
    return GrpcAnswer(None, f"no answer within {timeout} s")


def _wire_answer(found: dict, ended: str) -> GrpcAnswer:
    from urllib.parse import unquote

    import grpc

    if "grpc-status" in found:
        names = {code.value[0]: code.name for code in grpc.StatusCode}
        code = names.get(int(found["grpc-status"]), f"code {found['grpc-status']}")
        return GrpcAnswer(code, unquote(found.get("grpc-message", "")))
    # a reset stream without a status: the transport refused the stream (the client sees CANCELLED / INTERNAL)
    return GrpcAnswer("RESET" if ended else None, ended or "the stream ended without a grpc-status")


def grpc_problems(case: GrpcCase, answer: GrpcAnswer) -> list[str]:
    """What is wrong with ``answer``: no answer (a hang), a status outside :data:`EXPECTED` (a wire case
    may also get grpc's transport codes, :data:`TRANSPORT`, or a reset stream), or the servicer's own
    internal error whatever the case."""
    if answer.code is None:
        return [f"no answer: {answer.message}"]
    if _SERVICER_INTERNAL in answer.message:
        return [f"servicer internal error: {answer.code} {answer.message[:300]}"]
    allowed = EXPECTED | ({"RESET", *TRANSPORT} if case.wire else set())
    if answer.code not in allowed:
        return [f"status {answer.code} is not one a hostile call may get: {answer.message[:300]}"]
    if answer.code != "OK" and not answer.message.strip() and not case.wire:
        return [f"status {answer.code} came without a message"]
    return []


def grpc_alive(send: GrpcSender, token: str | None, model: str = "digits", input_name: str = "image") -> list[str]:
    """Problems with the door after a campaign: ServerLive must answer live, and a correct ModelInfer (one
    8x8 image, FP32) must answer one row of outputs."""
    messages = _messages()
    found = []
    live = send(GrpcCase("liveness", "ServerLive", b""))
    if live.code != "OK" or not messages.ServerLiveResponse.FromString(live.body).live:
        found.append(f"ServerLive answered {live.code} {live.message[:200]}")
    import numpy as np

    body = infer_body(model, input_name, np.full((1, 8, 8, 1), 0.5, dtype=np.float32), raw=False)
    answer = send(GrpcCase("liveness", "ModelInfer", body, token))
    if answer.code != "OK":
        found.append(f"a correct ModelInfer answered {answer.code} {answer.message[:200]}")
    elif list(messages.ModelInferResponse.FromString(answer.body).outputs[0].shape)[:1] != [1]:
        found.append("a correct ModelInfer answered without its one row of outputs")
    return found


# --- well-formed calls -----------------------------------------------------------------------------

def infer_body(model: str, input_name: str, x, raw: bool) -> bytes:
    """A serialized ``ModelInferRequest`` for one FP32 input ``x``: raw bytes or typed ``fp32_contents``."""
    import numpy as np

    request = _messages().ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name=input_name, datatype="FP32", shape=list(x.shape))
    if raw:
        request.raw_input_contents.append(np.asarray(x, dtype="<f4").tobytes())
    else:
        tensor.contents.fp32_contents.extend(np.asarray(x, dtype=np.float32).ravel().tolist())
    return request.SerializeToString()


_FLOATS = {"FP32": ("<f4", "fp32_contents"), "FP64": ("<f8", "fp64_contents")}


def infer_outputs(data: bytes) -> tuple[str, dict]:
    """The version that answered and the FP32 / FP64 outputs (name -> array in its shape) of a serialized
    ``ModelInferResponse``, raw or typed."""
    import numpy as np

    answer = _messages().ModelInferResponse.FromString(data)
    outputs = {}
    for index, tensor in enumerate(answer.outputs):
        layout, field = _FLOATS.get(tensor.datatype, (None, None))
        if layout is None:
            raise ValueError(f"output {tensor.name} is {tensor.datatype}; expected FP32 or FP64")
        if answer.raw_output_contents:
            values = np.frombuffer(answer.raw_output_contents[index], dtype=layout)
        else:
            values = np.asarray(getattr(tensor.contents, field), dtype=layout)
        outputs[tensor.name] = values.reshape(list(tensor.shape))
    return answer.model_version, outputs


class _InProcessDetails:
    """What grpcio hands a generic handler to find the method."""
    method = f"/{SERVICE}/ModelInfer"
    invocation_metadata = ()


class _InProcessContext:
    """The part of a ``grpc.ServicerContext`` the servicer uses on a successful call."""

    def invocation_metadata(self):
        return ()

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    def set_trailing_metadata(self, trailing) -> None:
        pass

    def abort(self, code, message):
        raise RuntimeError(f"{code}: {message}")


def model_infer_in_process(runtime):
    """The servicer's whole ModelInfer handler over ``runtime`` (``app.modelpress``) as grpcio calls it, with
    no transport: ``call(body) -> answer bytes``, for measuring what the door itself costs a call; a call the
    servicer refuses raises ``RuntimeError`` with its status and message::

        call = model_infer_in_process(app.modelpress)
        version, outputs = infer_outputs(call(infer_body("digits", "image", x, raw=True)))
    """
    from modelpress.runtime.grpc.servicer import InferenceServicer

    handler = InferenceServicer(runtime).handler().service(_InProcessDetails()).unary_unary
    context = _InProcessContext()
    return lambda body: handler(body, context)
