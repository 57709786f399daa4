"""Hostile requests for every route of the runtime, as hypothesis strategies.

Routes come from the served ``/openapi.json``, so a new route is fuzzed without touching this file. A
strategy draws one :class:`Hostile` request (wrong types, shapes and dtypes; huge and deeply nested
JSON; broken binary headers; invalid base64; unknown or tricky names; wrong methods and content
types); :mod:`modelpress.testing.fuzz_driver` sends them and checks the answers::

    targets = Targets(token="s3cret", max_body=1 << 20)
    strategy = hostile_requests(routes_of(client.get("/openapi.json").json), targets)
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from urllib.parse import quote

import numpy as np
from hypothesis import strategies as st

from modelpress.runtime.codecs import V2_DATATYPES

IMAGE = [[[0.0] for _ in range(8)] for _ in range(8)]  # one 8x8x1 instance of the fixture models
TRICKY_NAMES = ["..", ".", "%2e%2e", "../../etc/passwd", "..%2f..%2fetc", "a/../b", "digits/../int8", "%00",
                "digits%00", "\x00", "~root", " digits", "digits ", "DIGITS", "a" * 300, "é", "²", "٣", "-1",
                "+1", "1.0", "1e3", "0x1", "0", "99", "9" * 40, "9" * 5000, "$(id)", "';--", "{model}", ":predict",
                "digits:predict", "%", "%zz", "\u202e", "CON", ".hidden", "digits.", "-", "_"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE"]
CONTENT_TYPES = ["application/json", "text/plain", "application/octet-stream", "multipart/form-data; boundary=zz",
                 "application/x-www-form-urlencoded", "application/json; charset=utf-16", "application/xml",
                 "image/png", "garbage", "*/*", "application/json, text/plain", ""]
HEADER_LENGTHS = ["abc", "", "-1", "-0", "0", "1.5", "1e3", "0x10", "+5", "5_0", "٣", "9" * 40, "9" * 5000,
                  "18446744073709551617", "NaN", "null", "[]"]
DATATYPES = [*V2_DATATYPES, "BYTES", "fp32", "FLOAT32", "", "FP8", "INT128"]


@dataclass(frozen=True)
class Route:
    method: str
    template: str          # "/v2/models/{model}/infer"
    protected: bool

    @property
    def label(self) -> str:
        return f"{self.method} {self.template}"

    @property
    def kind(self) -> str:
        if self.template.endswith(":predict"):
            return "v1"
        if self.template.endswith("/infer"):
            return "v2"
        return "other"


@dataclass(frozen=True)
class Targets:
    """What the served repository holds and how the service is set up, to aim the fuzzing."""

    models: tuple = ("digits", "int8", "edgetpu")
    versions: tuple = ("1", "2")
    labels: tuple = ("stable", "canary")
    token: str | None = None
    max_body: int = 16 * 1024 * 1024
    max_depth: int = 32


@dataclass(frozen=True)
class Repeat:
    """A large body kept small until it is sent: ``piece * times`` for each part, joined, cut to ``cut`` bytes."""

    parts: tuple
    cut: int

    def __bytes__(self) -> bytes:
        return b"".join(piece * times for piece, times in self.parts)[:self.cut]


@dataclass
class Hostile:
    route: Route
    category: str
    method: str
    path: str
    headers: dict = field(default_factory=dict)
    body: bytes | Repeat | None = None
    chunked: bool = False

    def payload(self) -> bytes | None:
        return bytes(self.body) if isinstance(self.body, Repeat) else self.body

    def __repr__(self) -> str:  # short enough for a failure report, complete enough to replay
        body = self.body if not isinstance(self.body, bytes) or len(self.body) <= 300 else self.body[:300] + b"..."
        return f"Hostile({self.category}: {self.method} {self.path[:200]} headers={self.headers} body={body!r})"


def routes_of(document: dict) -> list[Route]:
    """Every operation of an OpenAPI document."""
    return [Route(method.upper(), path, "security" in op) for path, item in sorted(document["paths"].items())
            for method, op in sorted(item.items())]


# --- strategies -----------------------------------------------------------------------------------

def _json_values(max_leaves: int = 12):
    scalars = (st.none() | st.booleans() | st.integers() | st.sampled_from([2**63, -2**63 - 1, 10**30, 10**400])
               | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=max_leaves)


def _nested(shape: list[int], value) -> object:
    if not shape:
        return value
    return [_nested(shape[1:], value) for _ in range(shape[0])]


def _segment(value: str, raw: bool) -> str:
    return quote(value, safe="/%.:" if raw else "")


@st.composite
def _path(draw, route: Route, targets: Targets, hostile: bool) -> str:
    path = route.template
    params = [p for p in ("model", "version", "label") if "{" + p + "}" in path]
    bad = set(draw(st.sets(st.sampled_from(params), min_size=1))) if hostile and params else set()
    for name in params:
        known = {"model": targets.models, "version": targets.versions, "label": targets.labels}[name]
        if name in bad:
            value = draw(st.sampled_from(TRICKY_NAMES) | st.text(min_size=1, max_size=40))
            path = path.replace("{" + name + "}", _segment(value, draw(st.booleans())))
        else:
            path = path.replace("{" + name + "}", draw(st.sampled_from(known)))
    return path


def _scalar():
    return st.sampled_from([None, True, 5, -1, 1.5, "x", "", [], {}, [1], {"a": 1}, 2**64, 1e12, float("nan")])


_SHAPES = (st.lists(st.integers(-2, 9), max_size=6)
           | st.lists(st.sampled_from([0, 1, 2**31, 2**32, 2**63, 10**12, 10**30, -1]), min_size=1, max_size=4)
           | st.lists(st.just(1), min_size=30, max_size=70) | _scalar()
           | st.sampled_from([[0, 8, 8, 1], [8, 8, 1], [1, 64], [64], [True, 8, 8, 1], [1.0, 8, 8, 1], ["1", 8, 8, 1],
                              [[1], 8], [1e12]]))
_VALUES = st.sampled_from([0, 0.5, -1, 255, 1e39, True, "0", None, 300, -129, float("nan")])


@st.composite
def v2_tensor(draw) -> dict:
    """A v2 input tensor for the fixture models: right, then 0 to 3 things about it made wrong (name,
    datatype, shape, data, parameters, a missing field), so that some requests reach the model."""
    rows = draw(st.integers(1, 3))
    tensor: dict = {"name": "image", "datatype": draw(st.sampled_from(["FP32", "FP16", "FP64", "UINT8", "INT8"])),
                    "shape": [rows, 8, 8, 1], "data": [0] * (rows * 64)}
    faults = draw(st.sets(st.sampled_from(["name", "datatype", "shape", "data", "nested", "parameters", "missing"]),
                          max_size=3))
    for fault in sorted(faults):  # sorted: set order follows PYTHONHASHSEED, and a run must repeat
        if fault == "name":
            tensor["name"] = draw(st.sampled_from(["IMAGE", "", "output_0", "image "]) | _scalar())
        elif fault == "datatype":
            tensor["datatype"] = draw(st.sampled_from(DATATYPES) | _scalar())
        elif fault == "shape":
            tensor["shape"] = draw(_SHAPES)
        elif fault == "data":
            count = draw(st.sampled_from([rows * 64 - 1, rows * 64 + 1, 0, 64, 1]))
            pattern = draw(st.lists(_VALUES, min_size=1, max_size=3))
            tensor["data"] = draw(st.just((pattern * count)[:count]) | st.lists(_scalar() | st.floats(), max_size=8)
                                  | _json_values())
        elif fault == "nested":
            tensor["data"] = _nested(draw(st.sampled_from([[rows, 8, 8, 1], [rows, 64], [8, 8], [rows, 8, 7]])),
                                     draw(_VALUES))
        elif fault == "parameters":
            tensor["parameters"] = draw(st.fixed_dictionaries({"binary_data_size": st.integers(-1, 1024) | _scalar()})
                                        | _scalar())
        else:
            tensor.pop(draw(st.sampled_from(["name", "datatype", "shape", "data"])))
    return tensor


@st.composite
def v2_body(draw) -> dict:
    """A v2 inference request: its tensor(s) from :func:`v2_tensor`, and outputs, parameters and id each
    absent, right or wrong."""
    body: dict = {"inputs": draw(st.lists(v2_tensor(), min_size=1, max_size=1) | st.lists(v2_tensor(), max_size=3)
                                 | _scalar())}
    outputs = st.lists(st.fixed_dictionaries({"name": st.just("output_0")}, optional={
        "parameters": st.fixed_dictionaries({"binary_data": st.booleans()})}), max_size=2)
    bad_outputs = st.lists(st.fixed_dictionaries({"name": st.sampled_from(["output_0", "nope"]) | _scalar()},
                                                 optional={"parameters": _scalar()}), max_size=3) | _scalar()
    for key, right, wrong in [("outputs", outputs, bad_outputs),
                              ("parameters", st.fixed_dictionaries({"binary_data_output": st.booleans()}),
                               st.fixed_dictionaries({"binary_data_output": _scalar()}) | _scalar()),
                              ("id", st.text(max_size=20), _scalar())]:
        choice = draw(st.sampled_from(["absent", "right", "wrong"]))
        if choice != "absent":
            body[key] = draw(right if choice == "right" else wrong)
    return body


@st.composite
def v1_body(draw) -> object:
    """A TF Serving predict body for the fixture models (rows, columns, named, b64): right, or with its
    instance shape, values, row count, form or signature made wrong."""
    faults = draw(st.sets(st.sampled_from(["shape", "value", "rows", "signature", "extra"]), max_size=2))
    shape = draw(st.sampled_from([[8, 8], [64], [1, 8, 8, 1], [8, 8, 2], [], [0, 8, 1]])) if "shape" in faults \
        else [8, 8, 1]
    value = draw(st.sampled_from([1e39, True, "a", None, {"b64": "AAAA"}, 10**30, [], -1e39])) \
        if "value" in faults else draw(st.sampled_from([0.0, 1, 0.5]))
    rows = draw(st.sampled_from([0, 40])) if "rows" in faults else draw(st.integers(1, 3))
    instance = _nested(shape, value)
    form = draw(st.sampled_from(["rows", "columns", "named rows", "named columns", "both", "neither", "any"]))
    name = draw(st.sampled_from(["x", "", "IMAGE"])) if "extra" in faults else "image"
    body: object
    if form == "rows":
        body = {"instances": [instance] * rows}
    elif form == "columns":
        body = {"inputs": [instance] * rows}
    elif form == "named rows":
        body = {"instances": [{name: instance} for _ in range(rows)]}
    elif form == "named columns":
        body = {"inputs": {name: [instance] * rows}}
    elif form == "both":
        body = {"instances": [instance], "inputs": [instance]}
    elif form == "neither":
        body = {"signature_name": "serving_default"}
    else:
        body = draw(_json_values())
    if isinstance(body, dict) and "signature" in faults:
        body["signature_name"] = draw(st.sampled_from(["serving_default", "", "other"]) | _scalar())
    return body


def _dumps(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


@st.composite
def v2_binary(draw) -> tuple[bytes, bytes]:
    """A v2 request in the binary tensor data extension (JSON head, raw tail): tensors moved to the tail
    with the byte count they need, then the tail made right, short, long or empty."""
    body = draw(v2_body())
    tail = b""
    for tensor in body["inputs"] if isinstance(body["inputs"], list) else []:
        shape, datatype = (tensor.get("shape"), tensor.get("datatype")) if isinstance(tensor, dict) else (0, 0)
        movable = isinstance(shape, list) and isinstance(datatype, str) and datatype in V2_DATATYPES
        if movable and draw(st.integers(0, 3)):
            size = np.dtype(V2_DATATYPES[datatype]).itemsize
            for d in shape:
                size = size * d if type(d) is int and 0 <= d <= 4096 else -1
            size = min(size, 1 << 16) if size >= 0 else draw(st.integers(0, 300))
            tensor.pop("data", None)
            tensor["parameters"] = {"binary_data_size": size}
            tail += bytes(size)
    tail = draw(st.sampled_from([tail, tail, tail, tail[:-1], tail + b"\x01", b"", b"\x00" * 256]))
    return _dumps(body), tail


@st.composite
def hostile_request(draw, route: Route, targets: Targets) -> Hostile:
    """One hostile request on ``route``; the category says what is wrong with it."""
    inference = route.kind in ("v1", "v2")
    categories = ["names", "method", "content-type", "json", "nesting", "size", "bytes"] if inference else \
        ["names", "names", "method", "size"] + (["json", "bytes"] if route.method == "POST" else [])
    categories += {"v1": ["v1", "v1", "v1", "base64"], "v2": ["v2", "v2", "v2", "binary", "binary"]}.get(route.kind, [])
    categories += ["auth"] if route.protected and targets.token else []
    category = draw(st.sampled_from(categories))
    method, headers, chunked = route.method, {}, False
    path = draw(_path(route, targets, hostile=category == "names"))
    good = ({"instances": [IMAGE]} if route.kind == "v1" else
            {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 8, 8, 1], "data": [0.0] * 64}]})
    body: bytes | Repeat | None = _dumps(good) if inference else None
    if category == "method":
        method = draw(st.sampled_from([m for m in METHODS if m != route.method]))
    elif category == "content-type":
        headers["Content-Type"] = draw(st.sampled_from(CONTENT_TYPES))
        body = draw(st.sampled_from([body or b"{}", b"a=b&c=d", b"--zz\r\n\r\n--zz--", b"<x/>"]))
    elif category == "json":
        body = _dumps(draw(_json_values(24)))
    elif category == "nesting":
        depth = draw(st.sampled_from([targets.max_depth, targets.max_depth + 1, 1000, 100_000]))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b'[{"a":', b"}]")]))
        closed = draw(st.booleans())
        body = Repeat(((opener, depth), (b"0", 1), (closer, depth if closed else 0)), targets.max_body)
    elif category == "size":
        over = draw(st.booleans())
        size = targets.max_body + draw(st.integers(1, targets.max_body // 2)) if over else \
            draw(st.integers(1, max(1, targets.max_body // 4)))
        filler = draw(st.sampled_from([b" ", b"0,", b"[", b"\x00"]))
        body = Repeat(((b'{"inputs":[', 1), (filler, size)), size)
        chunked = draw(st.booleans())
    elif category == "bytes":
        body = draw(st.binary(max_size=64) | st.sampled_from([b"", b"\xff\xfe\x00", b'"\xff"', b"null", b"NaN"]))
    elif category == "v1":
        body = _dumps(draw(v1_body()))
    elif category == "base64":
        text = draw(st.sampled_from(["AAAA", "!!!", "é", "", "A" * 340 + "AA==", "A" * 344, "AA==AA==", "\n",
                                     "A" * 341, base64.b64encode(bytes(256)).decode()]) | st.text(max_size=20))
        body = _dumps({"instances": [{"b64": text}]} if draw(st.booleans()) else {"inputs": {"b64": text}})
    elif category == "v2":
        body = _dumps(draw(v2_body()))
    elif category == "binary":
        head, tail = draw(v2_binary())
        headers["Content-Type"] = "application/octet-stream"
        length = draw(st.sampled_from(["right", "right", "right", "past", "short", "bad"]))
        headers["Inference-Header-Content-Length"] = {
            "right": str(len(head)), "past": str(len(head) + len(tail) + draw(st.integers(1, 10**6))),
            "short": str(max(1, len(head) - draw(st.integers(1, 10)))),
            "bad": draw(st.sampled_from(HEADER_LENGTHS))}[length]
        body = head + tail
    elif category == "auth":
        headers["Authorization"] = draw(st.sampled_from(
            ["", "Bearer", "Bearer ", "bearer " + targets.token, "Basic Zm9vOmJhcg==", "Bearer " + "x" * 5000,
             "Bearer " + targets.token + "x", "Bearer " + targets.token[:-1], "Token " + targets.token])
            | st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=40))
    if targets.token and route.protected and "Authorization" not in headers:
        headers["Authorization"] = f"Bearer {targets.token}"
    return Hostile(route, category, method, path, headers, body, chunked)


def hostile_requests(routes: list[Route], targets: Targets):
    """Hostile requests over every route in ``routes``, the inference routes (with bodies to get wrong) drawn
    three times as often as the others."""
    weighted = [r for r in routes for _ in range(3 if r.kind != "other" else 1)]
    return st.sampled_from(weighted).flatmap(lambda route: hostile_request(route, targets))

