"""Sending hostile requests and judging the answers: the same campaign through a Flask test client or
over real HTTP, plus a schemathesis run against a live server's own ``/openapi.json``.

Every answer must be a status below 500, every error a JSON object with a non-empty "error" message,
and the service must still answer ``/v2/health/live`` afterwards::

    cases = plan(hostile_requests(routes, targets), 8000, seed_value=1)
    tally = run_campaign(cases, http_sender(url, requests.Session()), time_cap=300)
    run_schemathesis(url, targets, max_examples=10, time_cap=60, seed_value=1, tally=tally)
    assert not tally.failures and not alive(http_sender(url, requests.Session()))
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings

from modelpress.testing.fuzzing import Hostile, Route, Targets


@dataclass
class Answer:
    status: int | None
    headers: dict
    body: bytes
    error: str | None = None

def client_sender(client):
    """Send through a Flask test client."""
    def send(request: Hostile) -> Answer:
        response = client.open(request.path, method=request.method, headers=request.headers, data=request.payload())
        return Answer(response.status_code, dict(response.headers), response.get_data())
    return send


def http_sender(base_url: str, session, timeout: float = 30.0):
    """Send over real HTTP with a ``requests`` session; no answer within ``timeout`` s counts as a hang."""
    import requests

    def send(request: Hostile) -> Answer:
        data = request.payload()
        if request.chunked and data is not None:
            data = iter([data[i:i + 65536] for i in range(0, len(data), 65536)])
        # a header value outside latin-1 goes as its UTF-8 bytes, as a raw client would send it
        headers = {k: v if v.isascii() else v.encode() for k, v in request.headers.items()}
        try:
            response = session.request(request.method, base_url + request.path, headers=headers, data=data,
                                       timeout=timeout, allow_redirects=False)
        except requests.RequestException as err:
            return Answer(None, {}, b"", f"{type(err).__name__}: {err}")
        return Answer(response.status_code, dict(response.headers), response.content)
    return send


def problems(request: Hostile, answer: Answer, allow_busy: bool = False) -> list[str]:
    """What is wrong with ``answer``: no answer (a hang or a dropped connection), a 5xx, or an error that is
    not a JSON object with a non-empty "error" message. ``allow_busy`` accepts a 503 with Retry-After (a
    full queue under load), which is not a fault in the request handling."""
    if answer.status is None:
        return [f"no answer: {answer.error}"]
    found = []
    headers = {k.lower(): v[0] if isinstance(v, list) else v for k, v in answer.headers.items()}
    busy = answer.status == 503 and "retry-after" in headers and allow_busy
    # readiness is 503 while nothing is served (the campaign's own repository calls may unload every model)
    not_ready = answer.status == 503 and request.path.split("?")[0] == "/v2/health/ready" and b'"ready":false' in \
        answer.body.replace(b" ", b"")
    if answer.status >= 500 and not busy and not not_ready:
        found.append(f"server error {answer.status}: {answer.body[:300]!r}")
    if answer.status >= 400 and request.method != "HEAD":
        content_type = headers.get("content-type", "")
        try:
            payload = json.loads(answer.body)
        except ValueError:
            payload = None
        if not content_type.startswith("application/json"):
            found.append(f"error {answer.status} has Content-Type {content_type!r}, not application/json")
        if not (isinstance(payload, dict) and isinstance(payload.get("error"), str) and payload["error"].strip()):
            found.append(f'error {answer.status} lacks a JSON {{"error": "..."}} message: {answer.body[:300]!r}')
    return found


def alive(send) -> list[str]:
    """Problems with the liveness route after a campaign (it must still answer 200 {"live": true})."""
    route = Route("GET", "/v2/health/live", False)
    answer = send(Hostile(route, "liveness", "GET", route.template))
    if answer.status != 200:
        return [f"/v2/health/live answered {answer.status} {answer.error or answer.body[:200]!r}"]
    return []


@dataclass
class Tally:
    """Cases per route and category, statuses seen, 5xx count and the failures (the first 50 kept in full)."""

    cases: int = 0
    seconds: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    by_route: dict = field(default_factory=lambda: defaultdict(Counter))
    by_category: dict = field(default_factory=lambda: defaultdict(Counter))
    server_errors: int = 0
    failure_count: int = 0
    failures: list = field(default_factory=list)

    def add(self, key: tuple[str, str], status: int | None, found: list[str], what: str = "") -> None:
        self.cases += 1
        code = str(status) if status is not None else "none"
        self.statuses[code] += 1
        self.by_route[key[0]][code] += 1
        self.by_category[key[1]][code] += 1
        self.server_errors += status is not None and status >= 500
        if found:
            self.failure_count += 1
            if len(self.failures) < 50:
                self.failures.append({"case": what, "problems": found})


class _TimeUp(Exception):
    pass


def plan(strategy, count: int, seed_value: int) -> list:
    """``count`` examples of ``strategy``, the same for the same seed (and PYTHONHASHSEED). Drawn before anything
    is sent: hypothesis's choices shift with what its test function and other threads do meanwhile."""
    drawn: list = []

    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet)
    @seed(seed_value)
    @given(strategy)
    def collect(example) -> None:
        drawn.append(example)

    collect()
    return drawn[:count]


def run_campaign(cases: list, send, *, time_cap: float, tally: Tally | None = None,
                 allow_busy: bool = False) -> Tally:
    """Send ``cases`` (a :func:`plan`) in order, stopping at ``time_cap`` seconds; every answer is checked
    with :func:`problems` and counted, nothing is raised."""
    tally = tally or Tally()
    started = time.monotonic()
    for request in cases:
        if time.monotonic() - started > time_cap:
            break
        answer = send(request)
        tally.add((request.route.label, request.category), answer.status, problems(request, answer, allow_busy),
                  repr(request))
    tally.seconds += time.monotonic() - started
    return tally


# --- schemathesis against the served document -----------------------------------------------------

def json_error_check(ctx, response, case) -> None:  # noqa: ARG001 - schemathesis's check signature
    """A schemathesis check: every 4xx / 5xx is a JSON object with a non-empty "error" message."""
    request = Hostile(Route(case.method.upper(), case.path, False), "schemathesis", case.method.upper(), case.path)
    answer = Answer(response.status_code, dict(response.headers), response.content)
    found = [p for p in problems(request, answer) if not p.startswith("server error")]
    if found:
        raise AssertionError("; ".join(found))


def run_schemathesis(base_url: str, targets: Targets, *, max_examples: int, time_cap: float, seed_value: int,
                     tally: Tally | None = None, modes: tuple = ("positive", "negative")) -> Tally:
    """Generate requests for every operation of ``base_url``/openapi.json with schemathesis (positive and
    negative data; path parameters free, and pinned to names that exist so bodies reach a model), send them
    and check each with ``not_a_server_error`` and :func:`json_error_check`. Bounded per operation and by
    ``time_cap`` seconds over all; failures are counted in the tally, not raised."""
    import requests
    import schemathesis
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    tally = tally or Tally()
    started = time.monotonic()
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json", timeout=30)
    session = requests.Session()
    headers = {"Authorization": f"Bearer {targets.token}"} if targets.token else {}
    known = {"model": targets.models[0], "version": targets.versions[0], "label": targets.labels[0]}
    for result in schema.get_all_operations():
        operation = result.ok()
        params = [p for p in known if "{" + p + "}" in operation.path]
        for mode in modes:
            for pinned in ([False, True] if params else [False]):
                strategy = operation.as_strategy(generation_mode=GenerationMode(mode),
                                                 path_parameters={p: known[p] for p in params} if pinned else None)
                category = f"schemathesis-{mode}" + ("-pinned" if pinned else "")
                send = _schemathesis_sender(base_url, session, headers, tally, category, started + time_cap)
                run = settings(max_examples=max_examples, database=None, deadline=None, phases=[Phase.generate],
                               suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet)(
                    seed(seed_value)(given(strategy)(send)))
                try:
                    run()
                except Unsatisfiable:
                    continue  # e.g. no negative data exists for an operation without parameters or body
                except _TimeUp:
                    tally.seconds += time.monotonic() - started
                    return tally
    tally.seconds += time.monotonic() - started
    return tally


def _schemathesis_sender(base_url: str, session, headers: dict, tally: Tally, category: str, deadline: float):
    import requests
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.failures import FailureGroup

    def send(case) -> None:
        if time.monotonic() > deadline:
            raise _TimeUp
        label = f"{case.operation.method.upper()} {case.operation.path}"
        try:
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
        except requests.exceptions.InvalidHeader:
            return  # a header value requests itself refuses to send: nothing reached the server
        except requests.RequestException as err:
            tally.add((label, category), None, [f"no answer: {type(err).__name__}: {err}"], case.as_curl_command())
            return
        found = []
        try:
            case.validate_response(response, checks=[not_a_server_error, json_error_check], headers=headers)
        except (AssertionError, FailureGroup) as err:
            found.append(str(err)[:1000])
        tally.add((label, category), response.status_code, found, case.as_curl_command(headers=headers)[:2000])

    return send
