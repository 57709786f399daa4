"""SIGTERM under load (what Kubernetes sends before it stops a pod): the requests the server has received
are answered before it exits, then the port is closed; on both HTTP servers (granian drains by itself;
on waitress the runtime drains, and readiness answers 503 meanwhile)."""

from __future__ import annotations

import http.client
import json
import re
import signal
import threading
import time

import numpy as np
import pytest

from tests.runtime.conftest import SERVERS


def _connection(hostport: str) -> http.client.HTTPConnection:
    """A connection the server has accepted (one request answered on it), as a client's pool holds them."""
    host, port = hostport.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=120)
    connection.request("GET", "/v2/health/live")
    assert connection.getresponse().read() == b'{"live":true}'
    return connection


@pytest.mark.slow  # six 6,000-row requests read and answered during the drain: 20-25 s on a busy 2-core machine
@pytest.mark.parametrize("http_server", SERVERS)
def test_sigterm_drains_in_flight_requests(start_server, repo, samples, http_server):
    x, _ = samples
    server = start_server(repo, "--poll-interval", "0", "--threads", "8", "--max-body-bytes", str(64 * 2**20),
                          "--server", http_server)
    rows = np.tile(x, (60, 1, 1, 1))  # 6,000 rows as JSON: a request the server needs a while to read and run
    body = json.dumps({"instances": np.round(rows, 3).tolist()}).encode()
    connections = [_connection(server.hostport) for _ in range(6)]
    watcher = _connection(server.hostport)
    sent = [threading.Event() for _ in connections]
    answers: list = [None] * len(connections)

    def send(i: int) -> None:
        try:
            connections[i].request("POST", "/v1/models/digits:predict", body=body,
                                   headers={"Content-Type": "application/json"})
            sent[i].set()  # the whole body is on its way: the server holds this request
            answer = connections[i].getresponse()
            answers[i] = (answer.status, answer.read())
        except OSError as err:  # a lost request: what this test is here to catch
            answers[i] = err
        finally:
            sent[i].set()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(connections))]
    for thread in threads:
        thread.start()
    for event in sent:
        assert event.wait(60)
    signalled = time.time()
    server.proc.send_signal(signal.SIGTERM)
    probe = None
    if http_server == "waitress":
        deadline = time.monotonic() + 30
        while "SIGTERM: draining" not in "".join(server.lines) and time.monotonic() < deadline:
            time.sleep(0.01)
        watcher.request("GET", "/v2/health/ready")  # asked mid-drain on an open connection
        probe = watcher.getresponse()
        probe.read()
    for thread in threads:
        thread.join(timeout=180)
    server.proc.wait(timeout=60)
    log = server.stop()

    # requests really were in flight at the signal: the server finished them after it
    finished = [json.loads(line.split("modelpress.access: ", 1)[1])["ts"] for line in log.splitlines()
                if "modelpress.access: " in line and ":predict" in line]
    assert len(finished) == len(connections) and max(finished) > signalled, log[-2000:]
    assert server.proc.returncode == 0
    if http_server == "waitress":
        busy = re.search(r"SIGTERM: draining (\d+) busy connection", log)
        assert busy and int(busy.group(1)) >= 1, log[-2000:]
        assert probe.status == 503  # load balancers and Kubernetes stop sending new requests
        assert "drained: every request received was answered" in log
    for answer in answers:
        assert isinstance(answer, tuple), answer
        status, content = answer
        assert status == 200, content[:300]
        assert np.asarray(json.loads(content)["predictions"]).shape == (len(rows), 10)
    with pytest.raises(OSError):
        _connection(server.hostport)  # the process is gone: nothing listens any more
