"""HTTPS on a real `modelpress serve` (granian) with a CA and certificates made in the test: answers over TLS,
mutual TLS that refuses a client certificate from another CA, a certificate rotated on disk served without a
restart and without losing a request, and a clear refusal where the server cannot do TLS."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest
import requests

pytest.importorskip("granian", reason="TLS needs granian (the runtime extra has it)")
pytest.importorskip("cryptography", reason="the test makes its certificates with cryptography")

from modelpress.runtime.tls import CertificateWatcher, TLSFiles  # noqa: E402
from modelpress.testing.pki import CertificateAuthority  # noqa: E402
from tests.runtime.conftest import ROOT  # noqa: E402

BODY = {"inputs": [{"name": "image", "shape": [1, 8, 8, 1], "datatype": "FP32", "data": [0.5] * 64}]}


@pytest.fixture
def pki(tmp_path):
    ca = CertificateAuthority("modelpress test CA")
    files = {"ca": ca.write(tmp_path / "ca.crt")}
    files["cert"], files["key"] = ca.issue(tmp_path / "server", "first", usage="server")
    files["client"] = ca.issue(tmp_path / "client", "a client", usage="client")
    stranger = CertificateAuthority("another CA")
    files["stranger"] = stranger.issue(tmp_path / "stranger", "a stranger", usage="client")
    return ca, files


def _peer_name(hostport: str, cafile, client=None) -> str:
    """The common name of the certificate the server presents on a new connection."""
    host, port = hostport.split(":")
    context = ssl.create_default_context(cafile=str(cafile))
    if client:
        context.load_cert_chain(*map(str, client))
    with socket.create_connection((host, int(port)), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        subject = dict(pair[0] for pair in tls.getpeercert()["subject"])
        return subject["commonName"]


def test_https_answers_with_settings_from_the_environment(start_server, repo, pki):
    _, files = pki
    server = start_server(repo, "--poll-interval", "0", "--server", "granian",
                          env={"MODELPRESS_TLS_CERT": str(files["cert"]), "MODELPRESS_TLS_KEY": str(files["key"])})
    assert server.url.startswith("https://127.0.0.1:")
    answer = requests.post(server.url + "/v2/models/digits/infer", json=BODY, verify=str(files["ca"]), timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["shape"] == [1, 10]
    with pytest.raises(requests.exceptions.ConnectionError):  # no plain HTTP on the TLS port
        requests.get(server.url.replace("https", "http") + "/v2/health/live", timeout=10)


def test_mutual_tls_accepts_our_clients_and_rejects_others(start_server, repo, pki):
    _, files = pki
    server = start_server(repo, "--poll-interval", "0", "--tls-cert", str(files["cert"]), "--tls-key",
                          str(files["key"]), "--tls-client-ca", str(files["ca"]))
    url, ca = server.url + "/v2/models/digits/infer", str(files["ca"])
    answer = requests.post(url, json=BODY, verify=ca, cert=tuple(map(str, files["client"])), timeout=30)
    assert answer.status_code == 200, answer.text
    for client in (files["stranger"], None):  # a certificate from another CA, and none at all
        with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
            requests.post(url, json=BODY, verify=ca, cert=tuple(map(str, client)) if client else None, timeout=30)


def test_a_rotated_certificate_is_served_without_restart_or_lost_request(start_server, repo, pki, tmp_path):
    """Clients keep sending through the rotation, each request on a new connection. Every request the service
    received (its access log) was answered; what a client saw fail was a connection the old worker cut during
    its TLS handshake as it stopped (granian drains requests, not handshakes), which reached no handler."""
    ca, files = pki
    server = start_server(repo, "--poll-interval", "0", "--tls-cert", str(files["cert"]), "--tls-key",
                          str(files["key"]))
    pid = server.proc.pid
    assert _peer_name(server.hostport, files["ca"]) == "first"
    host, port = server.hostport.split(":")
    context = ssl.create_default_context(cafile=str(files["ca"]))
    body = json.dumps(BODY).encode()
    failed, answered, stop = [], [], threading.Event()

    def load() -> None:
        while not stop.is_set():
            connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=30)
            try:
                connection.connect()
                connection.request("POST", "/v2/models/digits/infer", body=body,
                                   headers={"Content-Type": "application/json"})
                answer = connection.getresponse()
                answer.read()
                (answered if answer.status == 200 else failed).append(answer.status)
            except (OSError, http.client.HTTPException) as err:
                failed.append(repr(err))
            finally:
                connection.close()

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    # the way cert-manager / a Secret update replaces it: new files renamed over the old ones
    new_cert, new_key = ca.issue(tmp_path / "rotated", "second", usage="server")
    os.replace(new_key, files["key"])
    os.replace(new_cert, files["cert"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _peer_name(server.hostport, files["ca"]) != "second":
        time.sleep(0.5)
    time.sleep(5)  # the old worker finishes and exits while the clients keep sending
    stop.set()
    for thread in threads:
        thread.join(60)
    assert _peer_name(server.hostport, files["ca"]) == "second"
    assert server.proc.poll() is None and server.proc.pid == pid  # the same service, not restarted
    assert any("changed on disk" in line for line in server.lines)
    time.sleep(1)  # the log reader catches up
    received = sum('"path":"/v2/models/digits/infer"' in line for line in server.lines)
    assert answered and received == len(answered), (
        f"the service handled {received} requests and {len(answered)} were answered; failed: {failed[:3]}")
    assert all(isinstance(f, str) and ("EOF" in f or "Reset" in f or "Disconnected" in f) for f in failed), failed
    print(f"rotation: {len(answered)} requests answered, {len(failed)} connection(s) cut during the handshake")


def test_a_half_replaced_pair_keeps_the_old_certificate(tmp_path, pki):
    ca, files = pki
    changes = []
    watcher = CertificateWatcher(TLSFiles(files["cert"], files["key"]), on_change=lambda: changes.append(1))
    new_cert, new_key = ca.issue(tmp_path / "rotated", "second", usage="server")
    os.replace(new_cert, files["cert"])  # the key is not replaced yet: the pair does not load
    assert not watcher.poll() and not changes
    os.replace(new_key, files["key"])
    assert watcher.poll() and changes == [1]
    assert not watcher.poll()  # nothing changed since


def _serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelpress.cli.main", "serve", *args, "--port", "0"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_tls_on_waitress_is_refused_in_one_line(repo, pki):
    _, files = pki
    result = _serve(str(repo), "--server", "waitress", "--tls-cert", str(files["cert"]), "--tls-key",
                    str(files["key"]))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: TLS is set but the HTTP server is waitress"), lines
    assert "refusing to serve in clear" in lines[0]


@pytest.mark.parametrize("case", ["key of another certificate", "key missing", "file missing"])
def test_bad_tls_settings_are_refused_with_a_clear_error(repo, pki, tmp_path, case):
    ca, files = pki
    other_cert, other_key = ca.issue(tmp_path / "other", "other", usage="server")
    args = {"key of another certificate": ["--tls-cert", str(files["cert"]), "--tls-key", str(other_key)],
            "key missing": ["--tls-cert", str(files["cert"])],
            "file missing": ["--tls-cert", str(tmp_path / "nope.crt"), "--tls-key", str(files["key"])]}[case]
    result = _serve(str(repo), *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("Error: TLS") and "Traceback" not in result.stderr


# --- gRPC: the same files, rotation at each new connection's handshake -----------------------------------

def _grpc_echo(files: TLSFiles):
    """A gRPC server on 127.0.0.1 with one unary method echoing its bytes, over ``grpc_credentials``."""
    grpc = pytest.importorskip("grpc")
    from concurrent.futures import ThreadPoolExecutor

    from modelpress.runtime.tls import grpc_credentials

    handler = grpc.method_handlers_generic_handler("test.Echo", {"Say": grpc.unary_unary_rpc_method_handler(
        lambda request, context: request)})
    server = grpc.server(ThreadPoolExecutor(max_workers=2), handlers=(handler,))
    port = server.add_secure_port("127.0.0.1:0", grpc_credentials(files))
    server.start()
    return server, f"127.0.0.1:{port}"


def _grpc_say(address: str, ca, client=None) -> bytes:
    import grpc

    key, chain = (client[1].read_bytes(), client[0].read_bytes()) if client else (None, None)
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes(), private_key=key,
                                               certificate_chain=chain)
    with grpc.secure_channel(address, credentials) as channel:
        return channel.unary_unary("/test.Echo/Say")(b"hello", timeout=10)


def _grpc_peer_name(address: str, cafile) -> str:
    context = ssl.create_default_context(cafile=str(cafile))
    context.set_alpn_protocols(["h2"])
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        return dict(pair[0] for pair in tls.getpeercert()["subject"])["commonName"]


def test_grpc_tls_answers_and_follows_a_rotated_certificate(pki, tmp_path):
    ca, files = pki
    server, address = _grpc_echo(TLSFiles(files["cert"], files["key"]))
    try:
        assert _grpc_say(address, files["ca"]) == b"hello"
        assert _grpc_peer_name(address, files["ca"]) == "first"
        new_cert, new_key = ca.issue(tmp_path / "rotated", "second", usage="server")
        os.replace(new_key, files["key"])
        os.replace(new_cert, files["cert"])
        assert _grpc_peer_name(address, files["ca"]) == "second"
        assert _grpc_say(address, files["ca"]) == b"hello"
    finally:
        server.stop(None)


def test_grpc_mutual_tls_rejects_a_client_from_another_ca(pki):
    grpc = pytest.importorskip("grpc")

    _, files = pki
    server, address = _grpc_echo(TLSFiles(files["cert"], files["key"], files["ca"]))
    try:
        assert _grpc_say(address, files["ca"], files["client"]) == b"hello"
        for client in (files["stranger"], None):
            with pytest.raises(grpc.RpcError) as refused:
                _grpc_say(address, files["ca"], client)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(None)


def test_the_grpc_door_serves_tls_beside_https_never_in_clear(start_server, repo, pki):
    """With a certificate set, `--grpc-port` serves gRPC over TLS with the same files (and mTLS when asked)."""
    grpc = pytest.importorskip("grpc")
    from modelpress.testing.grpc import grpc_target

    _, files = pki
    server = start_server(repo, "--poll-interval", "0", "--grpc-port", "0", "--tls-cert", str(files["cert"]),
                          "--tls-key", str(files["key"]))
    address = grpc_target(server)
    live = "/inference.GRPCInferenceService/ServerLive"
    credentials = grpc.ssl_channel_credentials(root_certificates=files["ca"].read_bytes())
    with grpc.secure_channel(address, credentials) as channel:
        assert channel.unary_unary(live)(b"", timeout=10) == b"\x08\x01"  # ServerLiveResponse(live=true)
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as refused:
        channel.unary_unary(live)(b"", timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # no plain gRPC on the TLS door
