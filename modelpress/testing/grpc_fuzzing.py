"""Hostile Open Inference gRPC calls, as hypothesis strategies (sent and judged by
:mod:`modelpress.testing.grpc`)::

    cases = plan(hostile_grpc(GrpcTargets(token="s3cret")), 2000, seed_value=1)   # fuzz_driver.plan
    [send(case) for case in cases]                                                # send = GrpcSender(target)

A case is a message sent through grpcio as bytes (whatever protobuf it is, or none), or with ``wire`` the
whole DATA of an HTTP/2 stream (broken length prefixes, compressed flags without an encoding, two messages
in a unary call), so the framing itself can be wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from modelpress.testing.grpc import RPCS, GrpcCase, frame


@dataclass(frozen=True)
class GrpcTargets:
    """What the served repository holds, to aim the fuzzing."""

    models: tuple = ("digits", "int8", "edgetpu")
    input_name: str = "image"
    token: str | None = None
    max_body: int = 1 << 20


def _messages():
    from modelpress.runtime.grpc import messages
    return messages


DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32",
             "FP64", "BYTES", "BF16", "", "fp32", "FLOAT32", "INT128", "\x00", "FP32 "]
FIELDS = ["bool_contents", "int_contents", "int64_contents", "uint_contents", "uint64_contents", "fp32_contents",
          "fp64_contents", "bytes_contents"]
NAMES = ["", "x", "..", "../../etc/passwd", "%00", "\x00", "a" * 300, "é", "digits ", "DIGITS", "9" * 40]
DIMS = st.one_of(st.integers(-3, 10), st.sampled_from([0, 1, 8, 64, 2**31, 2**32 + 1, 2**40, 2**62, -2**63,
                                                       2**63 - 1]))
FIELD_VALUES = {
    "bool_contents": st.booleans(), "int_contents": st.integers(-2**31, 2**31 - 1),
    "int64_contents": st.integers(-2**63, 2**63 - 1), "uint_contents": st.integers(0, 2**32 - 1),
    "uint64_contents": st.integers(0, 2**64 - 1), "fp32_contents": st.floats(width=32),
    "fp64_contents": st.floats(), "bytes_contents": st.binary(max_size=20),
}


@st.composite
def infer_request(draw, targets: GrpcTargets) -> bytes:
    """A ModelInferRequest that protobuf parses and the data plane must refuse (or, by chance, answer):
    unknown models and versions, wrong datatypes, shapes that contents do not fill, huge or negative
    dimensions, raw and typed contents mixed, missing contents, unknown outputs and parameters."""
    if draw(st.booleans()):
        return draw(near_valid_request(targets))
    messages = _messages()
    request = messages.ModelInferRequest(
        model_name=draw(st.sampled_from([*targets.models, *NAMES])),
        model_version=draw(st.sampled_from(["", "", "1", "2", "99", "abc", "-1", "0", "1.0", "9" * 40])),
        id=draw(st.sampled_from(["", "id-1", "\x00" * 3, "x" * 1000])))
    raw = draw(st.sampled_from(["none", "raw", "typed", "both"]))
    for _ in range(draw(st.integers(0, 3))):
        shape = draw(st.one_of(st.just([1, 8, 8, 1]), st.lists(DIMS, max_size=6),
                               st.lists(st.integers(0, 2), min_size=33, max_size=40)))
        tensor = request.inputs.add(name=draw(st.sampled_from([targets.input_name, targets.input_name, *NAMES])),
                                    datatype=draw(st.sampled_from(DATATYPES)), shape=shape)
        if raw in ("typed", "both"):
            field = draw(st.sampled_from(FIELDS))
            getattr(tensor.contents, field).extend(draw(st.lists(FIELD_VALUES[field], max_size=80)))
        if raw in ("raw", "both"):
            size = draw(st.sampled_from([0, 1, 3, 4, 255, 256, 257, 512, 1024]))
            request.raw_input_contents.append(draw(st.binary(min_size=size, max_size=size)))
    if draw(st.booleans()) and raw in ("raw", "both"):
        request.raw_input_contents.append(b"\0" * 4)  # one more entry than inputs
    for name in draw(st.lists(st.sampled_from(["output_0", "output_0", *NAMES]), max_size=3)):
        request.outputs.add(name=name)
    parameter = draw(st.sampled_from([None, "bool", "int", "string", "unknown"]))
    if parameter == "bool":
        request.parameters["binary_data_output"].bool_param = draw(st.booleans())
    elif parameter == "int":
        request.parameters["binary_data_output"].int64_param = 1
    elif parameter == "string":
        request.parameters["binary_data_output"].string_param = "true"
    elif parameter == "unknown":
        request.parameters["priority"].int64_param = draw(st.integers(-2**63, 2**63 - 1))
    return request.SerializeToString()


MUTATIONS = ["none", "values", "batch", "datatype", "rank", "flat", "extra input", "short raw", "long raw",
             "version", "output", "typed and raw", "no contents"]


@st.composite
def near_valid_request(draw, targets: GrpcTargets) -> bytes:
    """A request for a real model's real input (FP32 [n, 8, 8, 1]) with one thing wrong, so that the
    checks past decoding run: odd values (NaN, infinities, huge), batches the model refuses (0, many, more
    than the Edge TPU package's fixed 1), another datatype with the right count, a wrong rank, a second
    input, raw contents a byte short or long, versions, unknown outputs, contents sent twice or not at all."""
    import numpy as np

    messages = _messages()
    mutation = draw(st.sampled_from(MUTATIONS))
    rows = draw(st.sampled_from([0, 2, 9, 64])) if mutation == "batch" else draw(st.integers(1, 3))
    values = draw(st.lists(st.floats(width=32) if mutation == "values" else st.floats(0, 1, width=32),
                           min_size=rows * 64, max_size=rows * 64))
    x = np.asarray(values, dtype="<f4")
    request = messages.ModelInferRequest(model_name=draw(st.sampled_from(targets.models)))
    shape = {"rank": [rows, 8, 8], "flat": [rows, 64]}.get(mutation, [rows, 8, 8, 1])
    datatype = draw(st.sampled_from(["FP64", "FP16", "INT8", "UINT8", "INT32"])) if mutation == "datatype" else "FP32"
    tensor = request.inputs.add(name=targets.input_name, datatype=datatype, shape=shape)
    raw = draw(st.booleans()) or mutation in ("short raw", "long raw")
    data = x.tobytes()
    if mutation == "short raw":
        data = data[:-1]
    elif mutation == "long raw":
        data += b"\0"
    if raw:
        request.raw_input_contents.append(data)
    if not raw or mutation == "typed and raw":
        if datatype == "FP32":
            tensor.contents.fp32_contents.extend(x.tolist())
        elif datatype == "FP64":
            tensor.contents.fp64_contents.extend(x.tolist())
        else:
            tensor.contents.int_contents.extend([int(v * 255) for v in x.tolist()])
    if mutation == "no contents":
        del request.raw_input_contents[:]
        tensor.ClearField("contents")
    if mutation == "extra input":
        request.inputs.add(name=draw(st.sampled_from([targets.input_name, "other"])), datatype="FP32", shape=[1])
        (request.raw_input_contents.append(b"\0" * 4) if raw else request.inputs[1].contents.fp32_contents.append(0))
    if mutation == "version":
        request.model_version = draw(st.sampled_from(["1", "2", "3", "0", "00001", "18446744073709551617"]))
    if mutation == "output":
        request.outputs.add(name=draw(st.sampled_from(["output_0", "output_1", "", "\x00"])))
    return request.SerializeToString()


@st.composite
def _other_rpc(draw, targets: GrpcTargets) -> tuple[str, bytes]:
    """A valid message of one of the other RPCs with hostile names, versions and parameters."""
    messages = _messages()
    rpc = draw(st.sampled_from(["ModelReady", "ModelMetadata", "RepositoryIndex", "RepositoryModelLoad",
                                "RepositoryModelUnload"]))
    name = draw(st.sampled_from([*targets.models, *NAMES]))
    version = draw(st.sampled_from(["", "1", "99", "abc", "-1", "9" * 40]))
    if rpc in ("ModelReady", "ModelMetadata"):
        message = getattr(messages, f"{rpc}Request")(name=name, version=version)
    elif rpc == "RepositoryIndex":
        message = messages.RepositoryIndexRequest(repository_name=name, ready=draw(st.booleans()))
    else:
        message = getattr(messages, f"{rpc}Request")(model_name=name)
        key = draw(st.sampled_from(["version", "version", "unload_dependents", "config", "file:1/model.tflite"]))
        value = message.parameters[key]
        kind = draw(st.sampled_from(["string_param", "int64_param", "bool_param"]))
        setattr(value, kind, {"string_param": version, "int64_param": draw(st.integers(-2**63, 2**63 - 1)),
                              "bool_param": True}[kind])
    return rpc, message.SerializeToString()


def _wire(draw, message: bytes) -> bytes:
    """The DATA of one stream with its framing broken."""
    kind = draw(st.sampled_from(["short", "long", "huge", "flag1", "flag", "two", "empty", "prefix", "split"]))
    if kind == "short":     # the prefix promises more than comes: the stream ends mid-message
        return frame(message, length=len(message) + draw(st.integers(1, 1000)))
    if kind == "long":      # bytes after the message the prefix announced
        if not message:
            return frame(b"") + b"\xff"
        return frame(message, length=max(0, len(message) - draw(st.integers(1, 10))))
    if kind == "huge":      # a declared length far over the message cap
        return frame(message, length=draw(st.sampled_from([2**31, 2**32 - 1, 1 << 24])))
    if kind == "flag1":     # compressed, with no grpc-encoding header
        return frame(message, flag=1)
    if kind == "flag":      # a flag byte gRPC does not define
        return frame(message, flag=draw(st.integers(2, 255)))
    if kind == "two":       # two messages in a unary call
        return frame(message) + frame(message)
    if kind == "empty":     # no message at all
        return b""
    if kind == "prefix":    # half a prefix
        return frame(message)[:draw(st.integers(1, 4))]
    return frame(message)[:-1] if message else b"\0"


@st.composite
def hostile_grpc_case(draw, targets: GrpcTargets) -> GrpcCase:
    good = targets.token  # every category but "auth" sends the right token, mostly, so the checks past it run
    token = draw(st.sampled_from([good] * 8 + [None, "wrong"]))
    category = draw(st.sampled_from(["random bytes", "infer message", "infer message", "infer message",
                                     "other rpc", "wire", "oversized", "auth"]))
    if category == "random bytes":
        return GrpcCase(category, draw(st.sampled_from(RPCS)), draw(st.binary(max_size=600)), token)
    if category == "other rpc":
        rpc, body = draw(_other_rpc(targets))
        if rpc == "RepositoryModelUnload" and token == good:
            token = "wrong"  # an unload that works would take the models the rest of the campaign aims at
        return GrpcCase(category, rpc, body, token)
    if category == "wire":
        rpc = draw(st.sampled_from(["ModelInfer", "ModelInfer", "ServerLive", "ModelMetadata"]))
        message = draw(infer_request(targets)) if rpc == "ModelInfer" else draw(st.binary(max_size=100))
        return GrpcCase(category, rpc, _wire(draw, message), token, wire=True)
    if category == "oversized":
        size = targets.max_body + draw(st.sampled_from([1, 1000, 1 << 20]))
        return GrpcCase(category, "ModelInfer", _oversized(targets, size), token)
    if category == "auth":
        return GrpcCase(category, "ModelInfer", draw(infer_request(targets)),
                        draw(st.sampled_from([None, "", "wrong", "Bearer", "é", "x" * 5000])))
    return GrpcCase(category, "ModelInfer", draw(infer_request(targets)), token)


def _oversized(targets: GrpcTargets, size: int) -> bytes:
    messages = _messages()
    request = messages.ModelInferRequest(model_name=targets.models[0])
    request.inputs.add(name=targets.input_name, datatype="FP32", shape=[size // 4])
    request.raw_input_contents.append(b"\0" * size)
    return request.SerializeToString()


def hostile_grpc(targets: GrpcTargets):
    """A strategy of :class:`GrpcCase`, every RPC and every way above."""
    return hostile_grpc_case(targets)
