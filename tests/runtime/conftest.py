"""Runtime fixtures: a model repository built from the committed packages (real TFLite models made by
``make_fixtures.py``), the app and its Flask test client, a real server process on loopback, and a tiny
fake backend for fast HTTP-stack tests. Nothing here needs TensorFlow."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest

from modelpress.manifest import Manifest, TensorSpec, write_manifest
from modelpress.runtime.backends.base import Backend
from modelpress.testing import repository as testing_repository
from modelpress.testing.server import ServerProcess

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PACKAGES = FIXTURES / "packages"
ROOT = Path(__file__).resolve().parents[2]
# the HTTP servers the runtime runs on: the real-server tests of its promises run on each one installed
SERVERS = [name for name in ("granian", "waitress") if importlib.util.find_spec(name) is not None]


def add_version(repo: Path, model: str, version: int, package: str = "float32") -> Path:
    """Copy a fixture package into ``repo/model/version`` the way a deploy should: complete, then renamed."""
    return testing_repository.add_version(repo, model, version, package, PACKAGES)


def build_repository(root: Path) -> Path:
    """digits (float32, versions 1 and 2, labels stable=1 canary=2, latest 2 served), int8 and edgetpu."""
    return testing_repository.build_repository(root, PACKAGES)


@pytest.fixture(scope="session")
def samples():
    """100 real held-out digits (float32 in [0, 1], 8x8x1) and their labels."""
    return np.load(FIXTURES / "x_test.npy"), np.load(FIXTURES / "y_test.npy")


@pytest.fixture
def repo(tmp_path) -> Path:
    """digits (float32, versions 1 and 2, labels stable=1 canary=2, latest 2 served), int8 and edgetpu."""
    return build_repository(tmp_path / "repo")


@pytest.fixture
def make_app():
    from modelpress.runtime import create_app

    apps = []

    def make(repository, **settings):
        settings.setdefault("poll_interval", 0)
        app = create_app({"repository": str(repository), **settings})
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.modelpress.close()


@pytest.fixture
def app(make_app, repo):
    return make_app(repo)


@pytest.fixture
def client(app):
    return app.test_client()


# --- a real server process (modelpress.testing.server) ----------------------------------------------

@pytest.fixture
def start_server():
    servers = []

    def start(repository, *args, env=None):
        server = ServerProcess(repository, *args, env=env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One real `modelpress serve` process on loopback over the standard repository, for a module."""
    root = build_repository(tmp_path_factory.mktemp("served") / "repo")
    process = ServerProcess(root, "--poll-interval", "0")
    yield process
    process.stop()


# --- a tiny fake backend ---------------------------------------------------------------------------

class FakeBackend(Backend):
    """Sums each row of a [n, 4] float input into a [n, 1] output, after ``delay`` seconds; records the
    batch sizes it was called with. Exercises the whole HTTP stack without an interpreter."""

    platform = "fake"
    delay = 0.0
    calls: list[int] = []

    def load(self) -> None:
        if (self.folder / self.manifest.model_file).read_bytes() == b"corrupt":
            raise ValueError("the fake model file says it is corrupt")

    def predict(self, inputs, raw=False):
        time.sleep(self.delay)
        type(self).calls.append(len(inputs[0]))
        return [inputs[0].reshape(len(inputs[0]), -1).sum(axis=1, keepdims=True).astype(np.float32)]

    def unload(self) -> None:
        pass


def write_fake_package(folder: Path, content: bytes = b"fake") -> Path:
    folder.mkdir(parents=True)
    (folder / "model.fake").write_bytes(content)
    write_manifest(folder, Manifest(name="adder", model_format="tflite", model_file="model.fake",
                                    inputs=[TensorSpec("x", [-1, 4], "float32")],
                                    outputs=[TensorSpec("sum", [-1, 1], "float32")]))
    return folder


@pytest.fixture
def fake_repo(tmp_path) -> Path:
    root = tmp_path / "fake_repo"
    write_fake_package(root / "adder" / "1")
    return root


@pytest.fixture
def fake_app(fake_repo):
    from modelpress.runtime import create_app

    FakeBackend.delay, FakeBackend.calls = 0.0, []
    apps = []

    def make(**settings):
        settings.setdefault("poll_interval", 0)
        app = create_app({"repository": str(fake_repo), **settings}, backends={"tflite": FakeBackend})
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.modelpress.close()
