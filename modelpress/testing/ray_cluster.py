"""A real two-node Ray cluster on loopback, for the tests and the scaling benchmark of ``press --ray``::

    from modelpress.testing.ray_cluster import loopback_cluster

    with loopback_cluster(nodes=2, cpus_per_node=1) as address:     # "127.0.0.1:PORT"
        modelpress.press(..., ray=address)

A head (``ray start --head``) and the other nodes (``ray start --address``), each a Ray node of its own with its
own CPUs, on 127.0.0.1 with free ports and a private temp folder; the nodes' workers import modelpress from the
same place this process does. On the way out each node's process group is stopped (not ``ray stop``, which would
end every Ray on the machine).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray_cli() -> str:
    beside = Path(sys.executable).with_name("ray")
    return str(beside) if beside.is_file() else shutil.which("ray") or "ray"


@contextlib.contextmanager
def loopback_cluster(nodes: int = 2, cpus_per_node: int = 1, timeout: float = 120.0) -> Iterator[str]:
    """Start ``nodes`` Ray nodes on 127.0.0.1 (the first the head); yield the head's address; stop them."""
    import modelpress

    port = free_port()
    temp = Path(tempfile.mkdtemp(prefix="mp-ray-"))  # short: Ray's socket paths must stay under 108 bytes
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join([str(Path(modelpress.__file__).parent.parent),
                                          os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    common = ["--node-ip-address=127.0.0.1", f"--num-cpus={cpus_per_node}", "--disable-usage-stats", "--block"]
    address = f"127.0.0.1:{port}"
    started: list[subprocess.Popen] = []

    def node(*args: str) -> None:
        # --block keeps each node's processes under one process of ours (its own session): stopping the cluster
        # ends exactly these, never another Ray on the machine (``ray stop`` would end every one of them)
        log = open(temp / f"node{len(started)}.log", "wb")  # noqa: SIM115 - closed with the process group
        started.append(subprocess.Popen([_ray_cli(), "start", *args, *common], env=env, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True))

    try:
        node("--head", f"--port={port}", f"--temp-dir={temp}", "--include-dashboard=false",
             f"--ray-client-server-port={free_port()}")
        _wait_for_nodes(address, 1, timeout, env, temp)
        for _ in range(nodes - 1):
            node(f"--address={address}")
        _wait_for_nodes(address, nodes, timeout, env, temp)
        yield address
    finally:
        for process in reversed(started):
            _stop(process)
        shutil.rmtree(temp, ignore_errors=True)


def _stop(process: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
            time.sleep(1)
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever the node left in its group (workers, raylet)


def _wait_for_nodes(address: str, nodes: int, timeout: float, env: dict, temp: Path) -> None:
    code = ("import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
            "print(sum(1 for n in ray.nodes() if n['Alive']))")
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run([sys.executable, "-c", code, address], env=env, capture_output=True, text=True,
                             timeout=timeout)
        if out.returncode == 0 and out.stdout.strip().isdigit() and int(out.stdout.strip()) >= nodes:
            return
        if time.monotonic() > deadline:
            logs = " | ".join(p.read_text(errors="replace")[-800:] for p in sorted(temp.glob("node*.log")))
            raise RuntimeError(f"the loopback Ray cluster at {address} did not come up with {nodes} nodes: "
                               f"{out.stdout[-300:]} {out.stderr[-800:]} {logs}")
        time.sleep(2)
