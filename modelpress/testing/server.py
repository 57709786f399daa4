"""A real ``modelpress serve`` process on 127.0.0.1, for tests and benchmarks::

    with served(repo, "--threads", "8") as server:      # stopped (SIGTERM, then SIGKILL) however the block exits
        requests.post(server.url + "/v2/models/digits/infer", json=body)
    server.lines                                          # its log, read continuously (a full pipe blocks it)

The process runs ``python -m modelpress.cli.main serve REPO --port 0 ARGS`` with this interpreter; its URL
comes from its start-up log line.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class ServerProcess:
    """``modelpress serve`` in a child process; ``url`` once it listens, ``stop()`` returns its log::

        server = ServerProcess(repo, "--poll-interval", "0"); ...; log = server.stop()
    """

    def __init__(self, repository: Path, *args: str, env: dict | None = None, timeout: float = 60):
        command = [sys.executable, "-m", "modelpress.cli.main", "serve", str(repository), "--port", "0", *args]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     cwd=ROOT, env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            found = re.search(r"serving .* on (https?://[\d.]+:\d+)", line)
            if found:
                self.url = found.group(1)
                # keep reading the log (the access log fills a pipe quickly; a full pipe blocks the server)
                self._reader = threading.Thread(target=self._drain, daemon=True)
                self._reader.start()
                return
        self.stop()
        raise RuntimeError("server did not start:\n" + "".join(self.lines))

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def hostport(self) -> str:
        return self.url.split("://", 1)[1]

    def stop(self) -> str:
        stop_process(self.proc)
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.join(timeout=10)
        return "".join(self.lines)


def stop_process(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM a child, then SIGKILL it if it has not exited within ``timeout`` seconds::

        stop_process(subprocess.Popen(["mlserver", "start", "."]))
    """
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


@contextlib.contextmanager
def served(repo: Path, *args: str, access_log: bool = False, env: dict | None = None) -> Iterator[ServerProcess]:
    """A ``modelpress serve REPO --port 0 ARGS`` process, stopped when the block exits, on error too::

        with served(repo, "--workers", "2") as server: ...
    """
    server = ServerProcess(repo, *args, env={"MODELPRESS_ACCESS_LOG": "true" if access_log else "false",
                                             **(env or {})})
    try:
        yield server
    finally:
        server.stop()


def serving_pid(pid: int) -> int:
    """The process that holds the models of the server ``pid``: the server itself (waitress), or its worker
    (granian's main process forks one per ``--workers``; the largest one when there are several)::

        psutil.Process(serving_pid(server.proc.pid)).memory_info().rss
    """
    import psutil  # a test dependency; imported here so that importing this module needs nothing

    process = psutil.Process(pid)
    children = process.children(recursive=True)
    return max(children, key=lambda c: c.memory_info().rss).pid if children else pid
