"""Security checks: bearer tokens on every inference and admin route, loopback by default, oversized bodies
refused before they are read, no path out of the repository. No TensorFlow needed."""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys

import numpy as np
import pytest

from modelpress.runtime.config import RuntimeConfig
from tests.runtime.conftest import PACKAGES, SERVERS, add_version

TOKEN = "s3cret-token-0123456789"
#: every route that runs a model or changes the server (all of them POST); the others only read
PROTECTED = {"v1.predict", "v1.version_predict", "v1.label_predict", "v2.infer", "v2.version_infer", "ops.reload",
             "repository.index", "repository.load", "repository.unload", "repository.version_load",
             "repository.version_unload"}
BAD_AUTH = [None, "", "Bearer", "Bearer ", f"Basic {TOKEN}", TOKEN, f"Token {TOKEN}", "Bearer wrong",
            f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN.upper()}", f"Bearer {TOKEN},{TOKEN}",
            f"Bearer wrong Bearer {TOKEN}"]
FILL = {"model": "digits", "version": "1", "label": "stable"}


def _path(rule) -> str:
    path = rule.rule
    for name in rule.arguments:
        path = path.replace(f"<{name}>", FILL[name])
    return path


def _body(endpoint: str, x) -> dict | None:
    if endpoint.startswith("v1."):
        return {"instances": x[:1].tolist()}
    if endpoint.startswith("v2."):
        return {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 8, 8, 1], "data": x[0].ravel().tolist()}]}
    return None


@pytest.fixture
def locked(make_app, repo):
    return make_app(repo, tokens=["another-token", TOKEN])


def test_every_inference_and_admin_route_refuses_a_missing_malformed_or_wrong_token(locked, samples):
    x, _ = samples
    client = locked.test_client()
    rules = [r for r in locked.url_map.iter_rules() if r.endpoint != "static"]
    marked = {r.endpoint for r in rules if getattr(locked.view_functions[r.endpoint], "modelpress_protected", False)}
    assert marked == PROTECTED
    assert marked == {r.endpoint for r in rules if "POST" in r.methods}  # every route that takes a body
    for rule in (r for r in rules if r.endpoint in PROTECTED):
        path, body = _path(rule), _body(rule.endpoint, x)
        for header in BAD_AUTH:
            headers = {} if header is None else {"Authorization": header}
            answer = client.post(path, json=body, headers=headers)
            assert answer.status_code == 401, (path, header, answer.data[:200])
            assert answer.is_json and "needs a bearer token" in answer.json["error"]
            assert answer.headers["WWW-Authenticate"] == 'Bearer realm="modelpress"'
        # refused before the body is looked at: an unauthenticated client cannot probe the decoders
        garbage = client.post(path, data=b"\xff{[", headers={"Authorization": "Bearer wrong"})
        assert garbage.status_code == 401
        for token in (TOKEN, "another-token"):
            allowed = client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
            assert allowed.status_code == 200, (path, allowed.data[:200])


def test_status_metadata_and_health_routes_stay_open_by_design(locked):
    """Like TF Serving and KServe, reading what is served (names, versions, signatures, states, metrics)
    needs no token; nothing on these routes runs a model or changes the server. Bind to loopback, or put
    the service behind a proxy, where that must stay private."""
    client = locked.test_client()
    for rule in locked.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint in PROTECTED:
            continue
        assert rule.methods & {"POST", "PUT", "PATCH", "DELETE"} == set(), rule
        answer = client.get(_path(rule))
        assert answer.status_code == 200, (rule.rule, answer.data[:200])


def test_the_default_bind_is_loopback_only(server, monkeypatch, runner, cli):
    monkeypatch.delenv("MODELPRESS_HOST", raising=False)
    monkeypatch.delenv("MODELPRESS_CONFIG", raising=False)
    assert RuntimeConfig().host == RuntimeConfig.load(None, repository="r").host == "127.0.0.1"
    assert "default 127.0.0.1" in runner.invoke(cli, ["serve", "--help"]).output
    assert server.url.startswith("http://127.0.0.1:")
    port = int(server.url.rsplit(":", 1)[1])
    if sys.platform.startswith("linux"):  # all of 127/8 is this machine: a wildcard bind would answer there
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.2", port), timeout=5):
            pass


# --- bodies over max_body_bytes, through the real server (granian and waitress) ---------------------

LIMIT = 4096


def _exchange(server, head: bytes, parts: list[bytes]) -> tuple[int, dict]:
    """Send the head and some body parts, never the rest, then read the answer: a server that waited for
    the body would time out here instead of answering."""
    host, port = server.hostport.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        for part in parts:
            sock.sendall(part)
        received = b""
        while b"\r\n\r\n" not in received or len(received.split(b"\r\n\r\n", 1)[1]) < _length(received):
            chunk = sock.recv(65536)  # socket.timeout fails the test: the server waited for the body
            if not chunk:
                break
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in headers.lower(), received[:300]
    return int(status_line.split()[1]), json.loads(body)


def _length(received: bytes) -> int:
    for line in received.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 1 << 30


def _head(extra: str) -> bytes:
    return (f"POST /v2/models/digits/infer HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"{extra}\r\n").encode()


@pytest.fixture(scope="module", params=SERVERS)
def small_server(tmp_path_factory, request):
    from tests.runtime.conftest import ServerProcess

    root = tmp_path_factory.mktemp("small") / "repo"
    add_version(root, "digits", 1)
    process = ServerProcess(root, "--max-body-bytes", str(LIMIT), "--poll-interval", "0", "--server", request.param)
    yield process
    process.stop()


@pytest.mark.parametrize("length", [LIMIT + 1, 10 * LIMIT, 10**15])
def test_a_content_length_over_the_limit_is_a_413_before_the_body_is_sent(small_server, length):
    status, body = _exchange(small_server, _head(f"Content-Length: {length}\r\n"), [b'{"inputs": ['])
    assert status == 413 and f"over {LIMIT} bytes (max_body_bytes)" in body["error"]


def test_a_chunked_body_is_cut_off_at_the_limit_without_its_end(small_server):
    chunk = b" " * 1000
    parts = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * (LIMIT // len(chunk) + 2)  # no terminating 0-chunk
    status, body = _exchange(small_server, _head("Transfer-Encoding: chunked\r\n"), parts)
    assert status == 413 and "max_body_bytes" in body["error"]


def test_a_body_of_exactly_the_limit_is_served(small_server, samples):
    x, _ = samples
    payload = json.dumps({"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 8, 8, 1],
                                      "data": np.round(x[0], 2).ravel().tolist()}]}).encode()
    payload += b" " * (LIMIT - len(payload))
    status, body = _exchange(small_server, _head(f"Content-Length: {LIMIT}\r\n"), [payload])
    assert status == 200 and len(body["outputs"][0]["data"]) == 10


# --- nothing a client sends reaches outside the repository ------------------------------------------

ESCAPES = ["..", ".", "%2e%2e", "%2E%2E", "..%2f..%2foutside%2fsecret", "%2e%2e%2f%2e%2e%2foutside%2fsecret",
           "..%5c..%5coutside%5csecret", "..\\..\\outside", "../outside/secret", "..;/secret", "secret%00",
           "digits%00.json", "%00", "%2fetc%2fpasswd", "/etc/passwd", "~", "~root", "outside", "linked", "x" * 129,
           "y" * 5000, "%c0%ae%c0%ae", "%252e%252e", "digits%2f1"]
TEMPLATES = [("GET", "/v1/models/{}"), ("GET", "/v1/models/{}/metadata"), ("POST", "/v1/models/{}:predict"),
             ("GET", "/v2/models/{}"), ("GET", "/v2/models/{}/ready"), ("POST", "/v2/models/{}/infer"),
             ("GET", "/v1/models/digits/versions/{}/metadata"), ("POST", "/v2/models/digits/versions/{}/infer"),
             ("GET", "/v1/models/digits/labels/{}/metadata"), ("POST", "/v1/models/digits/labels/{}:predict")]


@pytest.fixture
def fenced(tmp_path):
    """A repository with a sentinel package just outside it, and links pointing there from inside."""
    outside = tmp_path / "outside" / "secret"
    add_version(tmp_path / "outside", "secret", 1)
    repo = tmp_path / "repo"
    add_version(repo, "digits", 1)
    (repo / "digits" / "config.yaml").write_text("labels: {stable: 1}\n")
    os.symlink(outside, repo / "linked")                          # a model folder linking out
    os.symlink(outside / "1", repo / "digits" / "9")              # a version folder linking out
    (repo / "sneaky" / "1").mkdir(parents=True)                   # a package whose model file links out
    (repo / "sneaky" / "1" / "modelpress.json").write_bytes((PACKAGES / "float32" / "modelpress.json").read_bytes())
    os.symlink(outside / "1" / "model.tflite", repo / "sneaky" / "1" / "model.tflite")
    return repo


def test_no_name_a_client_sends_reaches_outside_the_repository(start_server, fenced, samples):
    x, _ = samples
    server = start_server(fenced, "--poll-interval", "0")
    host, port = server.hostport.split(":")
    bodies = {"POST": json.dumps({"instances": x[:1].tolist()})}
    for method, template in TEMPLATES:
        for name in ESCAPES:
            connection = http.client.HTTPConnection(host, int(port), timeout=10)
            connection.request(method, template.format(name), body=bodies.get(method),
                               headers={"Content-Type": "application/json"})
            answer = connection.getresponse()
            text = answer.read()
            connection.close()
            where = (method, template.format(name)[:80], answer.status, text[:200])
            assert answer.status in (400, 404, 405), where
            assert json.loads(text)["error"], where
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", "/status")
    status = json.loads(connection.getresponse().read())["models"]
    assert sorted(status) == ["digits", "sneaky"]                  # neither "linked" nor "secret"
    assert [row["version"] for row in status["digits"]["versions"]] == [1]   # not 9
    sneaky = status["sneaky"]["versions"][0]
    assert sneaky["state"] == "FAILED" and "links outside the repository" in sneaky["error"]
    log = server.stop()
    assert "Traceback" not in log and "loaded model sneaky" not in log  # never loaded


def test_a_long_name_is_quoted_only_in_part(client):
    answer = client.get("/v2/models/" + "y" * 5000)
    assert answer.status_code == 404 and "is not a valid name" in answer.json["error"]
    assert len(answer.json["error"]) < 300
    label = client.get("/v1/models/digits/labels/" + "z" * 3000 + "/metadata")
    assert label.status_code == 404 and len(label.json["error"]) < 300


def test_the_bearer_scheme_is_case_insensitive(locked, samples):
    """RFC 7235: 'bearer' and 'BEARER' name the same scheme; the token itself stays case-sensitive."""
    x, _ = samples
    client = locked.test_client()
    body = _body("v2.infer", x)
    for scheme in ("bearer", "BEARER", "  Bearer"):
        assert client.post("/v2/models/digits/infer", json=body,
                           headers={"Authorization": f"{scheme} {TOKEN}"}).status_code == 200, scheme
    assert client.post("/v2/models/digits/infer", json=body,
                       headers={"Authorization": f"bearer {TOKEN.upper()}"}).status_code == 401


def test_an_unknown_long_path_is_quoted_only_in_part(client):
    answer = client.get("/nowhere/" + "q" * 5000)
    assert answer.status_code == 404 and answer.is_json
    assert "no route /nowhere/" in answer.json["error"] and len(answer.json["error"]) < 200
    wrong = client.delete("/v2/health/live" + "")
    assert wrong.status_code == 405 and len(wrong.json["error"]) < 200


def test_an_unexpected_error_keeps_its_details_in_the_log(fake_app, caplog):
    """A bug's message may hold paths or internals: the client gets its type and a reference, the log the rest."""
    app = fake_app()

    @app.route("/boom")
    def boom():
        raise RuntimeError("/secret/path/inside/the/server")

    with caplog.at_level("ERROR", logger="modelpress.runtime"):
        answer = app.test_client().get("/boom")
    assert answer.status_code == 500 and answer.is_json
    assert "/secret/path" not in answer.json["error"] and "RuntimeError" in answer.json["error"]
    reference = answer.json["error"].rsplit(" ", 1)[-1]
    assert reference in caplog.text and "/secret/path/inside/the/server" in caplog.text


def test_the_status_page_shows_hostile_names_and_errors_as_text(make_app, tmp_path):
    """A load error quotes the package (here its model format) and the page names the repository's folder:
    both reach the HTML page as text, never as markup."""
    script = "<script>alert('x')</script>"
    root = tmp_path / "<b>repo</b>"
    add_version(root, "digits", 1)
    manifest = root / "digits" / "1" / "modelpress.json"
    manifest.write_text(manifest.read_text().replace('"model_format": "tflite"', f'"model_format": "{script}"'))
    client = make_app(root).test_client()
    assert script in client.get("/status").json["models"]["digits"]["versions"][0]["error"]
    page = client.get("/").get_data(as_text=True)
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page and "&lt;b&gt;repo&lt;/b&gt;" in page
    assert "FAILED" in page and "digits" in page
