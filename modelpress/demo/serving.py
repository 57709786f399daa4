"""Start ``modelpress serve`` on loopback, ask it through both protocols, stop it (the demo's last step).

    with running_server(Path("runs/demo/repo")) as url:
        answers = ask_both_protocols(url, "digits", x[:1], input_name="image")

Plain HTTP from the standard library, as any client would send it; the server is a separate process
running the real CLI command, so this is exactly what a user gets.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from modelpress.errors import ServingError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_json(method: str, url: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
    """(status, decoded JSON body) of one request; HTTP errors are answers too."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (loopback only)
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


@contextlib.contextmanager
def running_server(repo: Path, model: str | None = None, timeout: float = 60.0) -> Iterator[str]:
    """A ``modelpress serve`` process on 127.0.0.1, ready (``model`` ready, when given) before yielding."""
    port = free_port()
    command = [sys.executable, "-m", "modelpress.cli.main", "serve", str(repo), "--host", "127.0.0.1",
               "--port", str(port), "--poll-interval", "0.5"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    ready_path = f"/v2/models/{model}/ready" if model else "/v2/health/ready"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode(errors="replace") if process.stdout else ""
                raise ServingError(f"modelpress serve exited with code {process.returncode}: {output.strip()[-500:]}")
            with contextlib.suppress(OSError):
                if http_json("GET", url + ready_path, timeout=2.0)[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise ServingError(f"modelpress serve did not become ready on {url} within {timeout:.0f} s")
            time.sleep(0.2)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout:
            process.stdout.close()


def ask_both_protocols(url: str, model: str, sample: np.ndarray, input_name: str) -> dict[str, Any]:
    """One prediction through TF Serving REST v1 and one through Open Inference v2, with their answers."""
    status_v1, v1 = http_json("POST", f"{url}/v1/models/{model}:predict", {"instances": sample.tolist()})
    body_v2 = {"inputs": [{"name": input_name, "shape": list(sample.shape), "datatype": "FP32",
                           "data": sample.astype(np.float32).ravel().tolist()}]}
    status_v2, v2 = http_json("POST", f"{url}/v2/models/{model}/infer", body_v2)
    if status_v1 != 200 or status_v2 != 200:
        raise ServingError(f"the server answered v1 {status_v1} {v1}, v2 {status_v2} {v2}")
    return {"v1": {"status": status_v1, "request": "POST /v1/models/{m}:predict", "response": v1},
            "v2": {"status": status_v2, "request": "POST /v2/models/{m}/infer", "response": v2}}
