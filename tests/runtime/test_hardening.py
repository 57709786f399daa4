"""Loose ends an operator would meet months later (issue 15): ambiguous version folders, leftovers of
killed deploys, slow loads holding up the other models. Token sources that hold no token are in
test_config_cli.py; durable publication in tests/deploy/test_interrupted.py."""

from __future__ import annotations

import os
import shutil
import threading
import time

from modelpress.atomic import TEMP_PREFIX
from tests.runtime.conftest import FakeBackend, write_fake_package


def _states(client, model):
    return {row["version"]: row for row in client.get("/status").json["models"][model]["versions"]}


def _infer(client, model, x, version=None):
    where = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    return client.post(where, json={"inputs": [{"name": "image", "datatype": "FP32", "shape": list(x.shape),
                                                 "data": x.ravel().tolist()}]})


# --- two folders naming one version (item 2) ---------------------------------------------------------

def test_two_folders_naming_one_version_are_refused_and_reported(make_app, repo, samples):
    x, _ = samples
    shutil.copytree(repo / "digits" / "1", repo / "digits" / "01")
    app = make_app(repo)
    client = app.test_client()
    row = _states(client, "digits")[1]
    assert row["state"] == "FAILED"
    assert "'01' and '1' all name version 1" in row["error"] and "'1' would have been served" in row["error"]
    assert _infer(client, "digits", x[:1], version=1).status_code == 404
    assert _infer(client, "digits", x[:1], version=2).status_code == 200   # the others serve on
    shutil.rmtree(repo / "digits" / "01")                                  # resolved: served again
    client.post("/admin/reload")
    assert _states(client, "digits")[1]["state"] == "AVAILABLE" and _states(client, "digits")[1]["error"] is None
    assert _infer(client, "digits", x[:1], version=1).status_code == 200


def test_a_served_version_that_becomes_ambiguous_is_taken_down(make_app, repo, samples):
    x, _ = samples
    app = make_app(repo)
    client = app.test_client()
    assert _infer(client, "digits", x[:1], version=2).status_code == 200
    shutil.copytree(repo / "digits" / "2", repo / "digits" / "002")
    client.post("/admin/reload")
    assert _states(client, "digits")[2]["state"] == "FAILED"
    assert _infer(client, "digits", x[:1], version=2).status_code == 404


# --- leftovers of killed deploys (item 3) ------------------------------------------------------------

def _staging(repo, name: str, hours_old: float):
    folder = repo / name
    (folder / "pkg").mkdir(parents=True)
    (folder / "pkg" / "model.tflite").write_bytes(b"half a model")
    then = time.time() - hours_old * 3600
    os.utime(folder, (then, then))
    return folder


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid  # finished and reaped: no process has this id (until the system reuses it)


def test_stale_staging_folders_are_removed_at_start_up_and_on_scans(make_app, repo, caplog):
    dead = _dead_pid()
    stale = _staging(repo, f"{TEMP_PREFIX}deploy-{dead}-digits-abc", hours_old=2)
    legacy = _staging(repo, f"{TEMP_PREFIX}deploy-digits-old", hours_old=2)        # before pids were recorded
    fresh = _staging(repo, f"{TEMP_PREFIX}deploy-{dead}-digits-new", hours_old=0)   # a minute ago: maybe copying
    live = _staging(repo, f"{TEMP_PREFIX}deploy-{os.getpid()}-digits-run", hours_old=2)  # its deploy still runs
    other = _staging(repo, f"{TEMP_PREFIX}something-else", hours_old=2)             # not a deploy's
    with caplog.at_level("WARNING", logger="modelpress.runtime.repository"):
        app = make_app(repo)
    assert not stale.exists() and not legacy.exists()
    assert fresh.exists() and live.exists() and other.exists()
    assert f"removed {stale}, left by a killed deploy (process {dead} is gone" in caplog.text
    assert f"removed {legacy}, left by a killed deploy (no process recorded" in caplog.text
    later = _staging(repo, f"{TEMP_PREFIX}deploy-{dead}-digits-later", hours_old=3)   # a scan while serving
    app.test_client().post("/admin/reload")
    assert not later.exists()
    assert app.test_client().get("/v2/models/digits/ready").status_code == 200


def test_a_deploy_records_its_pid_in_its_staging_folder(tmp_path):
    from modelpress.converters.publish import staging
    from modelpress.runtime.leftovers import deploy_pid

    with staging(tmp_path, "digits") as folder:
        assert deploy_pid(folder.name) == os.getpid()


# --- a slow load does not hold up the other models (item 5) -----------------------------------------

class GatedBackend(FakeBackend):
    """Loads of the model named "aaa-slow" wait for ``gate``: a load that takes as long as the test wants."""

    gate = threading.Event()

    def load(self) -> None:
        if self.folder.parent.name == "aaa-slow":
            assert type(self).gate.wait(60), "the test never opened the gate"
        super().load()


def test_a_slow_load_does_not_hold_up_the_other_models(tmp_path):
    from modelpress.runtime import create_app

    root = tmp_path / "repo"
    for model in ("aaa-slow", "bbb-fast", "ccc-fast"):      # the slow one first in the scan's order
        write_fake_package(root / model / "1")
    GatedBackend.gate.clear()
    app = create_app({"repository": str(root), "poll_interval": 0}, backends={"tflite": GatedBackend}, start=False)
    registry = app.modelpress.registry
    client = app.test_client()
    loading = threading.Thread(target=registry.start, daemon=True)
    loading.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not {"bbb-fast", "ccc-fast"} <= set(registry.models):
            time.sleep(0.01)
        # the fast models are loaded, warmed up and answer while the slow one is still loading ...
        assert {"bbb-fast", "ccc-fast"} <= set(registry.models), "the fast models waited for the slow one"
        x = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
        answer = client.post("/v2/models/bbb-fast/infer", json=x)
        assert answer.status_code == 200 and answer.json["outputs"][0]["data"] == [10.0]
        # ... which takes no traffic before it is ready, and holds back the service's readiness
        assert "aaa-slow" not in registry.models and client.get("/v2/health/ready").status_code == 503
        assert client.post("/v2/models/aaa-slow/infer", json=x).status_code == 404
    finally:
        GatedBackend.gate.set()
        loading.join(timeout=30)
    assert client.get("/v2/health/ready").status_code == 200
    assert client.post("/v2/models/aaa-slow/infer", json=x).status_code == 200
    app.modelpress.close()
