"""Inference without a web framework: named arrays in, named arrays out (:func:`run_inference`, for any
door), and the Open Inference v2 answer from body bytes to answer bytes (:func:`infer_answer`, which the
Flask v2 route and the fast WSGI path both call)::

    result = run_inference(runtime, "digits", None, [("image", x)])    # a gRPC servicer decodes to this
    result.version, result.outputs                                       # "2", {"output_0": array}

    answer = infer_answer(runtime, "digits", None, body, None)
    answer.body   # b'{"model_name":"digits","model_version":"2","outputs":[...]}'

Errors are raised as :class:`~modelpress.errors.ModelpressError` subclasses (400 for a bad request, 404
for an unknown model or version, 503 when none is available yet) for each door to render.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelpress.errors import BadRequestError
from modelpress.runtime import tracing
from modelpress.runtime.codecs.json import dumps
from modelpress.runtime.codecs.v2 import split_binary_body, v2_body, v2_encode_outputs, v2_inputs, v2_output_choice

#: the header that gives the JSON part's length in a binary tensor data extension body
HEADER_LENGTH = "Inference-Header-Content-Length"


@dataclass(frozen=True)
class InferenceResult:
    """What one inference produced: the version that ran it and its outputs by name, in the model's order."""
    version: str
    outputs: dict[str, np.ndarray]


class Answer:
    """An inference answer ready to send: the version that ran it, body, content type, extra headers."""
    __slots__ = ("version", "body", "content_type", "headers")

    def __init__(self, version: str, body: bytes, content_type: str, headers: dict[str, str]):
        self.version, self.body, self.content_type, self.headers = version, body, content_type, headers


def run_inference(runtime, model: str, version: str | None, tensors: list[tuple[str, np.ndarray]],
                  served_version: list | None = None) -> InferenceResult:
    """Run ``tensors`` (name and array, as the client sent them) on a model's newest available version, or
    on ``version``; the data plane validates them against the signature. ``served_version``, when given,
    receives the version that ran the request as soon as it is known (for metrics, even if a later step
    fails)::

        run_inference(runtime, "digits", "1", [("image", np.zeros([1, 8, 8, 1], np.float32))]).version   # "1"
    """
    tracing.annotate(model, version or "")
    with runtime.plane.model(model, version) as served:
        number = str(served.version)
        tracing.annotate(model, number)
        if served_version is not None:
            served_version.append(number)
        named = dict(tensors)
        if len(named) != len(tensors):
            raise BadRequestError("an input name appears twice in the request; send each input once")
        return InferenceResult(number, runtime.plane.predict(served, named))


def infer_answer(runtime, model: str, version: str | None, raw: bytes, header_length: str | None,
                 served_version: list | None = None) -> Answer:
    """One v2 inference over HTTP, body bytes in, answer bytes out (JSON, or the binary tensor data
    extension when the request asks for binary outputs); ``header_length`` is the
    Inference-Header-Content-Length header as sent, ``served_version`` as for :func:`run_inference`::

        answer = infer_answer(runtime, "digits", None, body, None)
        answer.content_type, answer.headers          # "application/json", {}
    """
    tracing.annotate(model, version or "")
    with tracing.stage("decode"):
        head, tail = split_binary_body(raw, header_length)
        body = v2_body(head, runtime.config.max_json_depth)
        tensors = v2_inputs(body, tail)
    result = run_inference(runtime, model, version, tensors, served_version)
    with tracing.stage("encode"):
        choice = v2_output_choice(body, list(result.outputs))
        encoded, binary = v2_encode_outputs(result.outputs, choice)
        answer = {"model_name": model, "model_version": result.version, "outputs": encoded}
        if "id" in body:
            answer["id"] = body["id"]
        text = dumps(answer)
    if not binary:
        return Answer(result.version, text, "application/json", {})
    return Answer(result.version, text + binary, "application/octet-stream", {HEADER_LENGTH: str(len(text))})
