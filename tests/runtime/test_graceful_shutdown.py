"""SIGTERM under load (what Kubernetes sends before it stops a pod): the requests the server has received
are answered before it exits; readiness turns 503 while it drains; new connections are refused."""

from __future__ import annotations

import re
import signal
import threading
import time

import numpy as np
import requests


def test_sigterm_drains_in_flight_requests(start_server, repo, samples):
    x, _ = samples
    server = start_server(repo, "--poll-interval", "0", "--threads", "8", "--max-body-bytes", str(64 * 2**20))
    rows = np.tile(x, (60, 1, 1, 1))  # 6,000 rows as JSON: a request the server needs a while for
    body = {"instances": np.round(rows, 3).tolist()}
    sessions = [requests.Session() for _ in range(6)]
    watcher = requests.Session()
    for session in [*sessions, watcher]:  # connections accepted before the signal, as a client pool holds them
        assert session.get(server.url + "/v2/health/live", timeout=10).status_code == 200
    answers: list = [None] * len(sessions)
    started = threading.Barrier(len(sessions) + 1)

    def send(i: int) -> None:
        started.wait()
        try:
            answers[i] = sessions[i].post(server.url + "/v1/models/digits:predict", json=body, timeout=120)
        except requests.RequestException as err:  # a lost request: what this test is here to catch
            answers[i] = err

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(sessions))]
    for thread in threads:
        thread.start()
    started.wait()
    time.sleep(0.2)  # the bodies (~2.5 MB of JSON each) are on the wire; the server needs seconds for them
    server.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    while "SIGTERM: draining" not in "".join(server.lines) and time.monotonic() < deadline:
        time.sleep(0.01)
    probe = watcher.get(server.url + "/v2/health/ready", timeout=10)  # an open connection, asked mid-drain
    for thread in threads:
        thread.join(timeout=180)
    server.proc.wait(timeout=60)
    log = server.stop()

    assert probe.status_code == 503  # load balancers and Kubernetes stop sending new requests
    busy = re.search(r"SIGTERM: draining (\d+) busy connection", log)
    assert busy and int(busy.group(1)) >= 1, log[-2000:]  # requests really were in flight at the signal
    assert "drained: every request received was answered" in log
    assert server.proc.returncode == 0
    for answer in answers:
        assert isinstance(answer, requests.Response), answer
        assert answer.status_code == 200, answer.text[:300]
        assert np.asarray(answer.json()["predictions"]).shape == (len(rows), 10)
    refused = None
    try:
        requests.get(server.url + "/v2/health/live", timeout=5)
    except requests.ConnectionError as err:
        refused = err
    assert refused is not None  # the process is gone: nothing listens any more
