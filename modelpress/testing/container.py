"""The runtime image built and run with podman, for the container test (``make test-container``)::

    problem = engine_problem()            # None, or why the image cannot be built here (a skip reason)
    seconds = build_image("localhost/modelpress-runtime:test")
    with running(tag, models_dir, env={"MODELPRESS_MODEL_NAME": "digits"}) as box:
        requests.get(box.url + "/v2/health/ready"); box.exec("id", "-u"); box.healthcheck()

No image registry needs to be reachable: the Dockerfile's ``BASE`` is a local Debian bookworm image built by
``deploy/podman/base-image.sh`` (once; later builds reuse it), and builds run with ``--pull=never``.
podman reads ``deploy/podman/containers.conf`` (runc, ulimits within what such hosts allow) unless
``CONTAINERS_CONF`` names another file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "localhost/modelpress-base:bookworm"
CONTAINERS_CONF = ROOT / "deploy" / "podman" / "containers.conf"


def _env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(CONTAINERS_CONF))}


def podman(*args: str, check: bool = True, timeout: float = 900, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], env=_env(), capture_output=True, text=True, check=check,
                          timeout=timeout, **kwargs)


def engine_problem() -> str | None:
    """Why the image cannot be built and run here, or None: podman and runc installed, and either the base
    image already built or root and debootstrap to build it (``make image`` installs all three)."""
    for tool in ("podman", "runc"):
        if shutil.which(tool) is None:
            return f"no container engine: {tool} is not installed (make image installs podman, runc, debootstrap)"
    try:
        podman("info", timeout=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        return f"podman does not work here: {(getattr(err, 'stderr', '') or str(err)).strip()[:200]}"
    if podman("image", "exists", BASE_IMAGE, check=False).returncode != 0:
        if os.geteuid() != 0 or shutil.which("debootstrap") is None:
            return f"the base image {BASE_IMAGE} is missing and building it needs root and debootstrap"
    return None


def build_base() -> None:
    """The local stand-in for python:3.11-slim (skipped when it exists)."""
    subprocess.run(["sh", str(ROOT / "deploy" / "podman" / "base-image.sh"), BASE_IMAGE], env=_env(), check=True,
                   capture_output=True, text=True, timeout=1800)


def build_image(tag: str) -> float:
    """Build the Dockerfile on the local base image; returns the seconds the build took."""
    build_base()
    started = time.perf_counter()
    podman("build", "--pull=never", "--format", "docker", "--build-arg", f"BASE={BASE_IMAGE}", "-t", tag,
           str(ROOT), timeout=1800)
    return time.perf_counter() - started


def image_size(tag: str) -> int:
    """Bytes of the image, as ``podman images`` reports it."""
    return int(json.loads(podman("image", "inspect", tag).stdout)[0]["Size"])


def layer_sizes(tag: str) -> list[tuple[str, int]]:
    """(instruction, bytes) per layer of the image, newest first."""
    rows = json.loads(podman("history", "--format", "json", tag).stdout)
    return [(row.get("CreatedBy", row.get("created_by", "")), int(row.get("Size", row.get("size", 0))))
            for row in rows]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Container:
    id: str
    url: str
    grpc: str = ""        # host:port of the image's gRPC door (container port 8081)

    def exec(self, *command: str) -> str:
        return podman("exec", self.id, *command, timeout=60).stdout.strip()

    def healthcheck(self) -> subprocess.CompletedProcess:
        """``podman healthcheck run``: the image's HEALTHCHECK, run now (no systemd timers needed)."""
        return podman("healthcheck", "run", self.id, check=False, timeout=60)

    def logs(self) -> str:
        result = podman("logs", self.id, check=False, timeout=60)
        return result.stdout + result.stderr

    def stop(self, timeout: int = 60) -> int:
        """SIGTERM (the image's STOPSIGNAL, what Kubernetes sends), then the container's exit code."""
        podman("kill", "--signal", "TERM", self.id, check=False, timeout=60)
        return int(podman("wait", self.id, timeout=timeout + 30).stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def running(tag: str, models: Path, env: dict[str, str] | None = None, mounts: dict[Path, str] | None = None,
            scheme: str = "http") -> Iterator[Container]:
    """The image serving ``models`` mounted read-only at /mnt/models (as KServe's storage initializer leaves
    it), and ``mounts`` (host folder -> container path) read-only, its HTTP and gRPC ports published on free ports of
    127.0.0.1;
    removed however the block ends."""
    port, grpc_port = free_port(), free_port()
    args = ["run", "-d", "-p", f"127.0.0.1:{port}:8080", "-p", f"127.0.0.1:{grpc_port}:8081",
            "-v", f"{models}:/mnt/models:ro"]
    for source, target in (mounts or {}).items():
        args += ["-v", f"{source}:{target}:ro"]
    for key, value in (env or {}).items():
        args += ["-e", f"{key}={value}"]
    cid = podman(*args, tag, timeout=120).stdout.strip().splitlines()[-1]
    try:
        yield Container(cid, f"{scheme}://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}")
    finally:
        podman("rm", "-f", "-t", "5", cid, check=False, timeout=120)
