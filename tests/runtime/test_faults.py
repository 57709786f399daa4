"""Faults while serving: broken packages and settings appearing in the repository, a model folder removed,
backends that raise. The server keeps serving everything else, reports what broke where clients and
operators look (/status, /v1/models/{m}, /v2/models/{m}/ready, /metrics), answers requests for the broken
model with a JSON error that says why, and never dies. No TensorFlow needed."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.runtime.conftest import PACKAGES, SERVERS, FakeBackend, write_fake_package

REAL = (PACKAGES / "float32" / "model.tflite").read_bytes()
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x08\x00\x00\x00\x08\x08\x00\x00\x00\x00" + bytes(40)


def _model_file(content: bytes):
    return lambda folder: (folder / "model.tflite").write_bytes(content)


def _manifest(change):
    def mutate(folder: Path) -> None:
        path = folder / "modelpress.json"
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))
    return mutate


#: model name -> (how its package is broken, words its error must hold)
BROKEN = {
    "corrupt": (_model_file(np.random.default_rng(0).bytes(4000)), "not a valid TFLite model"),
    "truncated": (_model_file(REAL[: len(REAL) // 2]), "not a valid TFLite model"),
    "png": (_model_file(PNG), "not a valid TFLite model"),
    "jsonfile": (_model_file(b'{"model": "not really"}'), "not a valid TFLite model"),
    "savedmodel": (_manifest(lambda m: m.update(model_format="saved_model")), "SavedModel"),
    "badshape": (_manifest(lambda m: m["inputs"][0].update(shape="8x8")), "shape must be a list of integers"),
    "badtypes": (_manifest(lambda m: m.update(model_file=7, profile=[1])), "model_file must be a str"),
    "notjson": (lambda folder: (folder / "modelpress.json").write_bytes(b"\x00\xffgarbage"), "is not valid JSON"),
}
BODY_ROWS = 8


def arrive(repo: Path, model: str, version: int, mutate=None, package: str = "float32") -> Path:
    """A package appearing the way a deploy publishes it: built under a hidden name, then renamed."""
    (repo / model).mkdir(parents=True, exist_ok=True)
    tmp = repo / model / f".incoming-{version}"
    shutil.copytree(PACKAGES / package, tmp)
    if mutate is not None:
        mutate(tmp)
    dest = repo / model / str(version)
    os.replace(tmp, dest)
    return dest


def wait_for(check, timeout: float = 60.0, what: str = "a state change"):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def json_error(answer, *statuses) -> str:
    assert answer.status_code in statuses, (answer.status_code, answer.text[:300])
    assert answer.headers["Content-Type"].startswith("application/json"), answer.text[:300]
    message = (answer.json() if callable(answer.json) else answer.json)["error"]  # requests or Flask
    assert message and "Traceback" not in message
    return message


class Load:
    """Threads asking real questions of some models until stopped. Every answer is recorded (its status in
    ``answers``) and checked; whatever is wrong with one, a failed request included, lands in ``problems``,
    which ``finish`` asserts empty: nothing that goes wrong in a thread is lost with it."""

    def __init__(self, url: str, models: list[str], samples, allowed=(200,)):
        self.x, self.y = samples
        self.url, self.allowed = url, allowed
        self.answers: dict[str, list[int]] = {m: [] for m in models}
        self.problems: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(m,), daemon=True) for m in models]
        for thread in self.threads:
            thread.start()

    def _run(self, model: str) -> None:
        session, i = requests.Session(), 0
        while not self.stop.is_set():
            rows = slice(i % 80, i % 80 + BODY_ROWS)
            i += BODY_ROWS
            try:
                answer = session.post(f"{self.url}/v1/models/{model}:predict", timeout=20,
                                      json={"instances": self.x[rows].tolist()})
                self.answers[model].append(answer.status_code)
                problem = self._check(answer, rows)
            except Exception as err:  # noqa: BLE001 - recorded, so that finish() fails on it
                problem = f"{type(err).__name__}: {err}"
            if problem:
                self.problems.append(f"{model}: {problem}")

    def _check(self, answer, rows: slice) -> str | None:
        """What is wrong with one answer, or None."""
        if answer.status_code not in self.allowed:
            return f"{answer.status_code} {answer.text[:200]}"
        if not answer.headers.get("Content-Type", "").startswith("application/json"):
            return f"{answer.status_code} answer is not JSON: {answer.text[:200]}"
        if answer.status_code == 200:
            hits = np.argmax(answer.json()["predictions"], 1) == self.y[rows]
            return f"wrong predictions {hits}" if hits.mean() < 0.75 else None
        message = answer.json().get("error")
        return None if message and "Traceback" not in message else f"{answer.status_code} error {answer.text[:200]}"

    def finish(self) -> None:
        time.sleep(0.3)  # some answers after the last change, too
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in self.threads), "a load thread hung (no answer in 60 s)"
        assert self.problems == []
        assert all(self.answers.values()), {m: len(a) for m, a in self.answers.items()}


def test_broken_packages_arriving_while_serving_fail_alone(start_server, tmp_path, samples):
    x, y = samples
    repo = tmp_path / "repo"
    arrive(repo, "digits", 1)
    arrive(repo, "int8", 1, package="int8")
    (repo / "int8" / "config.yaml").write_text("labels: {stable: 1}\n")
    server = start_server(repo, "--poll-interval", "0.1", "--threads", "6")
    load = Load(server.url, ["digits", "int8"], samples)
    for name, (mutate, _) in BROKEN.items():
        arrive(repo, name, 1, mutate)
    arrive(repo, "digits", 2, BROKEN["corrupt"][0])       # newer versions of a served model that do not load
    arrive(repo, "digits", 3, BROKEN["truncated"][0])
    (repo / "int8" / "config.yaml").write_bytes(np.random.default_rng(1).bytes(300))  # a settings file mangled

    def status():
        return requests.get(server.url + "/status", timeout=10).json()["models"]

    def settled():
        models = status()
        ready = all(name in models and models[name]["versions"] for name in BROKEN)
        digits = {row["version"]: row["state"] for row in models["digits"]["versions"]}
        config = models["int8"]["versions"][0]["state"] == "CONFIG_ERROR"
        return ready and digits.get(2) == digits.get(3) == "FAILED" and config and models

    models = wait_for(settled, what="every broken package to be reported")
    load.finish()
    metrics = requests.get(server.url + "/metrics", timeout=10).text
    for name, (_, words) in BROKEN.items():
        row = models[name]["versions"][0]
        assert row["state"] == "FAILED" and words in row["error"], (name, row)
        v1 = requests.get(f"{server.url}/v1/models/{name}", timeout=10).json()["model_version_status"]
        assert v1 == [{"version": "1", "state": "END", "status": {"error_code": "UNKNOWN",
                                                                  "error_message": row["error"]}}]
        ready = requests.get(f"{server.url}/v2/models/{name}/ready", timeout=10)
        assert words in json_error(ready, 503) and ready.json()["ready"] is False
        infer = requests.post(f"{server.url}/v2/models/{name}/infer", timeout=10, json={"inputs": [
            {"name": "image", "datatype": "FP32", "shape": [1, 8, 8, 1], "data": x[0].ravel().tolist()}]})
        assert "version 1 failed" in json_error(infer, 503) and infer.headers["Retry-After"]
        assert f'modelpress_model_state{{model="{name}",state="FAILED",version="1"}} 1.0' in metrics
    # the served model's newer versions failed; its version 1 never stopped answering
    digits = {row["version"]: row for row in models["digits"]["versions"]}
    assert digits[1]["state"] == "AVAILABLE" and "not a valid TFLite model" in digits[2]["error"]
    answer = requests.post(server.url + "/v1/models/digits:predict", json={"instances": x[:20].tolist()}, timeout=10)
    assert np.mean(np.argmax(answer.json()["predictions"], 1) == y[:20]) >= 0.9
    assert requests.get(server.url + "/v2/models/digits", timeout=10).json()["parameters"]["version"] == "1"
    assert json_error(requests.get(server.url + "/v2/models/digits/versions/3/ready", timeout=10), 503)
    # the mangled config.yaml is reported; the model keeps its last good settings (its label)
    assert "cannot be read as UTF-8 YAML" in models["int8"]["versions"][0]["error"]
    stable = requests.post(server.url + "/v1/models/int8/labels/stable:predict", timeout=10,
                           json={"instances": x[:4].tolist()})
    assert stable.status_code == 200
    assert server.proc.poll() is None
    log = server.stop()
    assert "Traceback" not in log, log[log.find("Traceback") - 300:][:3000]
    assert "repository scan failed" not in log


def test_a_model_folder_removed_while_serving(start_server, repo, samples):
    server = start_server(repo, "--poll-interval", "0.1", "--threads", "6")
    keeps = Load(server.url, ["digits"], samples)
    going = Load(server.url, ["int8"], samples, allowed=(200, 404, 503))  # 503 while half the folder is gone
    time.sleep(0.3)
    shutil.rmtree(repo / "int8")

    def gone():
        return "int8" not in requests.get(server.url + "/status", timeout=10).json()["models"]

    wait_for(gone, what="the removed model to leave /status")
    time.sleep(0.3)
    going.finish()
    keeps.finish()
    assert going.answers["int8"][0] == 200 and going.answers["int8"][-1] == 404
    assert "is not in the repository" in json_error(requests.get(server.url + "/v1/models/int8", timeout=10), 404)
    assert json_error(requests.get(server.url + "/v2/models/int8/ready", timeout=10), 404)
    metrics = requests.get(server.url + "/metrics", timeout=10).text
    assert 'modelpress_model_state{model="digits"' in metrics and 'modelpress_model_state{model="int8"' not in metrics
    # the same name coming back is served again
    arrive(repo, "int8", 4, package="int8")
    wait_for(lambda: requests.get(server.url + "/v2/models/int8/ready", timeout=10).status_code == 200,
             what="the model to come back")
    assert server.proc.poll() is None
    log = server.stop()
    assert "Traceback" not in log, log[log.find("Traceback") - 300:][:3000]


@pytest.mark.parametrize("http_server", SERVERS)
def test_sigterm_while_requests_are_running_exits_cleanly(start_server, repo, samples, http_server):
    """Every answer is recorded: each one the server gives, before or during the drain, is a 200 with the
    right predictions; before SIGTERM no request fails; after it a client may only find the door closed
    (a connection error), never a wrong answer, an error status or a hung request."""
    x, y = samples
    server = start_server(repo, "--poll-interval", "0", "--threads", "4", "--server", http_server)
    stop = threading.Event()
    answers: list[list[tuple[float, object]]] = [[] for _ in range(4)]  # per client: (when done, what came)

    def ask(mine: list) -> None:
        session = requests.Session()
        while not stop.is_set():
            try:
                answer = session.post(server.url + "/v1/models/digits:predict", json={"instances": x[:64].tolist()},
                                      timeout=30)
            except requests.RequestException as err:
                mine.append((time.monotonic(), err))
                return  # the server went away, as asked
            try:
                hits = float(np.mean(np.argmax(answer.json()["predictions"], 1) == y[:64]))
            except Exception as err:  # noqa: BLE001 - recorded: a 200 must hold right predictions
                hits = f"{type(err).__name__}: {err} in {answer.text[:200]!r}"
            mine.append((time.monotonic(), (answer.status_code, hits)))

    threads = [threading.Thread(target=ask, args=(mine,), daemon=True) for mine in answers]
    for thread in threads:
        thread.start()
    wait_for(lambda: all(len(mine) >= 2 for mine in answers), what="every client to be answered twice")
    sigterm = time.monotonic()
    log = server.stop()                                   # SIGTERM in the middle of it
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a client hung after SIGTERM"
    assert server.proc.returncode == 0
    assert "Traceback" not in log, log[log.find("Traceback") - 300:][:3000]
    assert "unloaded model digits version 2" in log
    for mine in answers:
        assert all(not isinstance(what, Exception) for done, what in mine if done < sigterm), mine
        for _, what in mine:
            if isinstance(what, Exception):  # refused or closed after SIGTERM; a timeout would be a hung drain
                assert isinstance(what, requests.ConnectionError) and not isinstance(what, requests.Timeout), what
            else:                             # answered, before or during the drain: a right answer
                assert what[0] == 200 and isinstance(what[1], float) and what[1] >= 0.9, what


def test_requests_in_flight_when_their_model_is_removed_finish(fake_app, fake_repo):
    app = fake_app(unload_timeout=10)
    FakeBackend.delay = 0.5
    client = app.test_client()
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    answers = []
    thread = threading.Thread(target=lambda: answers.append(client.post("/v2/models/adder/infer", json=body)))
    thread.start()
    wait_for(lambda: app.modelpress.registry.models["adder"].versions[1].inflight, what="a request in flight")
    shutil.rmtree(fake_repo / "adder")
    app.modelpress.registry.scan()
    assert "adder" not in app.modelpress.registry.model_names()
    assert "is not in the repository" in client.post("/v2/models/adder/infer", json=body).json["error"]
    thread.join(timeout=10)
    assert answers[0].status_code == 200 and answers[0].json["outputs"][0]["data"] == [10.0]


class FaultyBackend(FakeBackend):
    """A fake whose model file says where it breaks: in load, in predict or in unload."""

    def load(self) -> None:
        self.fault = (self.folder / self.manifest.model_file).read_bytes()
        if self.fault == b"load":
            raise MemoryError("the accelerator ran out of memory")

    def predict(self, inputs, raw=False):
        if self.fault == b"predict" and inputs[0].any():  # the warm-up's zeros pass: it loads, then fails
            raise RuntimeError("tensor arena overflow in node 3")
        return super().predict(inputs, raw)

    def unload(self) -> None:
        if self.fault == b"unload":
            raise RuntimeError("the delegate would not let go")


@pytest.fixture
def faulty(tmp_path, make_app):
    root = tmp_path / "faulty"
    write_fake_package(root / "adder" / "1")
    write_fake_package(root / "boom" / "1", b"predict")
    FakeBackend.delay, FakeBackend.calls = 0.0, []

    apps = []

    def make(**settings):
        from modelpress.runtime import create_app

        app = create_app({"repository": str(root), "poll_interval": 0, **settings}, backends={"tflite": FaultyBackend})
        apps.append(app)
        return app, root

    yield make
    for app in apps:
        app.modelpress.close()


def _infer(client, model: str):
    return client.post(f"/v2/models/{model}/infer", json={"inputs": [
        {"name": "x", "datatype": "FP32", "shape": [2, 4], "data": [1, 2, 3, 4, 5, 6, 7, 8]}]})


@pytest.mark.parametrize("batching", [False, True])
def test_a_backend_raising_in_predict_is_a_500_naming_the_model(faulty, batching):
    """A model failing on a valid request is the server's fault, and retrying will not help: 500 (as TF
    Serving's INTERNAL), not 503 (which tells clients to retry) nor 4xx (the request was fine). The
    answer names the model and version; the traceback goes to the log, not to the client."""
    app, _ = faulty(batching=batching)
    client = app.test_client()
    for _ in range(3):
        message = json_error(_infer(client, "boom"), 500)
        assert message.startswith("model 'boom' version 1 failed to run the request (RuntimeError: tensor "
                                  "arena overflow in node 3)")
        assert _infer(client, "adder").json["outputs"][0]["data"] == [10.0, 26.0]
    v1 = client.post("/v1/models/boom:predict", json={"instances": [[1, 2, 3, 4]]})
    assert v1.status_code == 500 and "failed to run the request" in v1.json["error"]
    row = client.get("/status").json["models"]["boom"]["versions"][0]
    assert row["state"] == "AVAILABLE"  # loaded: a predict failure may belong to one request only
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'modelpress_requests_total{model="boom",protocol="v2",status="500",version="1"} 3.0' in metrics


def test_a_backend_raising_in_load_or_unload_leaves_the_rest_serving(faulty):
    app, root = faulty()
    client = app.test_client()
    write_fake_package(root / "adder" / "2", b"load")       # a newer version whose load raises MemoryError
    write_fake_package(root / "sticky" / "1", b"unload")
    write_fake_package(root / "stuck" / "1", b"unload")
    assert client.post("/admin/reload").status_code == 200
    rows = {row["version"]: row for row in client.get("/status").json["models"]["adder"]["versions"]}
    assert rows[2]["state"] == "FAILED" and "MemoryError: the accelerator ran out of memory" in rows[2]["error"]
    assert rows[1]["state"] == "AVAILABLE" and _infer(client, "adder").json["model_version"] == "1"
    write_fake_package(root / "sticky" / "2")                # replacing it: its unload raises, in the background
    client.post("/admin/reload")
    assert _infer(client, "sticky").json["model_version"] == "2"
    app.modelpress.close()                                    # and at shutdown ("stuck"): logged, not raised
    assert [v.state for v in app.modelpress.registry.models["stuck"].versions.values()] == []


@pytest.mark.parametrize("text, words", [
    (b"\xff\xfe\x00 not text", "cannot be read as UTF-8 YAML"),
    (b"labels: {'a b': 1}\n", "label 'a b' is not a valid name"),
    (b"interpreter_threads: many\n", "interpreter_threads must be a whole number of at least 1, got 'many'"),
    (b"pool_size: 0\n", "pool_size must be a whole number of at least 1, got 0"),
    (b"batching: {max_batch_size: lots}\n", "batching max_batch_size must be a whole number"),
    (b"batching: {enabled: sometimes}\n", "batching enabled must be true or false"),
    (b"delegate: [gpu]\n", "delegate must be a name"),
])
def test_a_bad_config_yaml_is_reported_and_never_stops_the_server(make_app, repo, text, words):
    (repo / "int8" / "config.yaml").write_bytes(text)
    client = make_app(repo).test_client()                   # starting with it
    first = client.get("/status").json["models"]["int8"]["versions"][0]
    assert first["state"] == "CONFIG_ERROR" and words in first["error"]
    assert client.get("/v2/models/edgetpu/ready").status_code == 200
    (repo / "digits" / "config.yaml").write_bytes(text)     # and breaking a served model's settings later
    assert client.post("/admin/reload").status_code == 200
    rows = client.get("/status").json["models"]["digits"]["versions"]
    assert rows[0]["state"] == "CONFIG_ERROR" and words in rows[0]["error"]
    assert [row["state"] for row in rows[1:]] == ["AVAILABLE", "AVAILABLE"]  # still {latest: 2}
    assert client.get("/v1/models/digits/labels/stable/metadata").status_code == 200


def test_version_folders_with_unicode_digits_are_ignored(make_app, repo):
    (repo / "digits" / "\u00b2").mkdir()                     # '²'.isdigit() is True, int('²') raises
    shutil.copytree(PACKAGES / "float32", repo / "digits" / "\u0663")  # int('٣') == 3
    client = make_app(repo).test_client()
    assert [r["version"] for r in client.get("/status").json["models"]["digits"]["versions"]] == [2, 1]


def test_status_of_a_model_removed_since_its_lookup_is_a_404(make_app, repo):
    from modelpress.errors import NotFoundError

    registry = make_app(repo).modelpress.registry
    shutil.rmtree(repo / "int8")
    registry.scan()
    with pytest.raises(NotFoundError, match="'int8' is not in the repository"):
        registry.status("int8")


