"""Killing `modelpress deploy` or `modelpress convert` at any moment never leaves a half-written version.

Two kinds of proof. Without TensorFlow, a child process runs the real deploy (with a stand-in for the
converter that writes the way the converter does) or the real atomic folder writer, and SIGKILLs itself
just before its N-th file-system step, for every N: after each death the repository shows only complete
versions, the server's scan ignores the leftovers, and the next deploy numbers on correctly. With
TensorFlow, the real CLI commands are SIGKILLed from outside at chosen moments while a watcher lists the
repository continuously and checks every version it can see.

Run as a script, this file is that child: ``python test_interrupted.py deploy|overwrite N PATH``, or the
real CLI stopping itself (SIGSTOP) at the first file-system step where a moment has come, for the test to
kill it there: ``python test_interrupted.py stop-when staged|model-file ROOT CLI-ARGS...``. The moment is
decided by the command's own steps, never by how fast a poller looks, so a busy machine cannot miss it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ROOT / "tests" / "runtime" / "fixtures" / "packages"
#: audit events that change the file system (writing opens are counted apart), and the stand-in's own
#: event between the two halves of the model file
STEPS = {"os.rename", "os.mkdir", "os.rmdir", "os.remove", "shutil.rmtree", "tempfile.mkdtemp", "modelpress.test.write"}


# --- the child: runs a write and kills itself before its N-th step ----------------------------------

def _is_step(event: str, args: tuple, inside: str) -> bool:
    """Whether an audit event changes the file system under ``inside`` (a write-open or one of STEPS)."""
    if event == "open":
        path, mode, flags = args
        if mode is None:
            writing = bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        else:
            writing = any(c in str(mode) for c in "wax+")
        return writing and str(path).startswith(inside)
    return event in STEPS and str(args[0] if args else "").startswith(inside)


def _die_before_step(n: int, inside: str) -> list[int]:
    count = [0]

    def hook(event: str, args: tuple) -> None:
        if _is_step(event, args, inside):
            count[0] += 1
            if count[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)

    sys.addaudithook(hook)
    return count


def stop_when(moment: str, root: str, argv: list[str]) -> None:
    """Run the real CLI (``python -m modelpress.cli.main ARGV``) and SIGSTOP it at its first file-system
    step under ``root`` at which MOMENTS[moment] holds, so that the test kills it at that very step."""
    import runpy

    holds, main, stopped = MOMENTS[moment], os.getpid(), []

    def hook(event: str, args: tuple) -> None:
        if not stopped and os.getpid() == main and _is_step(event, args, root) and holds(Path(root)):
            stopped.append(event)
            os.kill(main, signal.SIGSTOP)

    sys.addaudithook(hook)
    sys.argv = ["modelpress", *argv]
    runpy.run_module("modelpress.cli.main", run_name="__main__")


def _write_package(folder: Path, package: str, name: str = "digits", version: str = "1") -> None:
    """Write a package the way the converter's build does: the model file (in two writes), then the manifest."""
    from modelpress.manifest import Manifest, write_manifest

    data = (PACKAGES / package / "model.tflite").read_bytes()
    with open(folder / "model.tflite", "wb") as handle:
        handle.write(data[: len(data) // 2])
        handle.flush()
        sys.audit("modelpress.test.write", str(folder))
        handle.write(data[len(data) // 2:])
    manifest = Manifest.from_dict(json.loads((PACKAGES / package / "modelpress.json").read_text()))
    manifest.name, manifest.version = name, version
    write_manifest(folder, manifest)


def fake_convert(source, profile, out, *, name, version, **options):
    """Stands in for modelpress.api.convert.convert: the same atomic folder, a real package in it."""
    from modelpress.atomic import atomic_directory
    from modelpress.converters.artifact import Artifact

    with atomic_directory(out) as folder:
        _write_package(folder, "float32", name, version)
    return Artifact.open(out)


def fake_deploy(repo: str | Path):
    """The real deploy of a model already loaded, with the stand-in converter."""
    from modelpress.api.deploy import deploy
    from modelpress.model_io import LoadedModel

    return deploy(LoadedModel(model=None, flavor="keras3"), "server-cpu", repo, name="digits")


def child(mode: str, n: int, path: str) -> None:
    import modelpress.api.convert
    from modelpress.atomic import atomic_directory

    modelpress.api.convert.convert = fake_convert
    if mode == "deploy":
        count = _die_before_step(n, str(Path(path).resolve()))
        fake_deploy(path)
    else:  # replacing the package in folder ``path``: its temporary sibling is written beside it
        count = _die_before_step(n, str(Path(path).resolve().parent))
        with atomic_directory(path) as folder:
            _write_package(folder, "int8")
    print(json.dumps({"steps": count[0]}))


def run_child(mode: str, n: int, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, __file__, mode, str(n), str(path)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)


# --- what a reader may see --------------------------------------------------------------------------

def package_problem(folder: Path) -> str | None:
    """None when ``folder`` holds a complete package: a valid manifest and the model file it names, whose
    sha256 matches the manifest's. Read through one handle on the folder, so that a folder exchanged
    meanwhile is read whole (the old one or the new one), never half of each."""
    from modelpress.errors import ArtifactError
    from modelpress.manifest import MANIFEST_NAME, Manifest

    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return f"{folder} is missing"
    try:
        def read(name: str) -> bytes:
            with os.fdopen(os.open(name, os.O_RDONLY, dir_fd=fd), "rb") as handle:
                return handle.read()

        try:
            manifest = Manifest.from_dict(json.loads(read(MANIFEST_NAME)))
            data = read(manifest.model_file)
        except (OSError, ValueError, ArtifactError) as err:
            if os.fstat(fd).st_nlink == 0:
                return None  # replaced and removed while we read: its successor is checked next time
            return f"{folder} is incomplete: {type(err).__name__}: {err}"
        digest = hashlib.sha256(data).hexdigest()  # what the converter records (model_io.file_sha256)
        if digest != manifest.artifact.get("sha256"):
            return f"{folder}: model file sha256 {digest[:12]} is not the manifest's"
        return None
    finally:
        os.close(fd)


def visible_versions(repo: Path) -> dict[str, list[int]]:
    """Every visible model and version folder, each checked complete; a visible model folder holds a version."""
    found = {}
    for model_dir in sorted(p for p in repo.iterdir() if not p.name.startswith(".")):
        versions = sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit())
        assert versions, f"{model_dir} is visible but holds no version: {os.listdir(model_dir)}"
        for version in versions:
            problem = package_problem(model_dir / str(version))
            assert problem is None, problem
        found[model_dir.name] = versions
    return found


class Watcher(threading.Thread):
    """Lists the repository (or checks one package folder) over and over, recording what it sees wrong."""

    def __init__(self, path: Path, package: bool = False):
        super().__init__(daemon=True)
        self.path, self.package = path, package
        self.problems: list[str] = []
        self.looks = 0
        self.seen: set[tuple[str, int]] = set()
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                if self.package:
                    problem = package_problem(self.path)
                    if problem:
                        self.problems.append(problem)
                else:
                    for model, versions in visible_versions(self.path).items():
                        self.seen.update((model, v) for v in versions)
            except AssertionError as err:
                self.problems.append(str(err))
            self.looks += 1
            time.sleep(0.001)  # leave the CPU to the command being watched

    def finish(self) -> None:
        # two more looks first, so that one began after whatever the caller did last (no lost last sighting)
        target, deadline = self.looks + 2, time.monotonic() + 10
        while self.looks < target and self.is_alive() and time.monotonic() < deadline:
            time.sleep(0.001)
        self.halt.set()
        self.join(timeout=10)
        assert self.problems == [] and self.looks > 10


# --- every step, without TensorFlow --------------------------------------------------------------

def _steps(mode: str, path: Path) -> int:
    dry = run_child(mode, 0, path)
    assert dry.returncode == 0, dry.stderr[-2000:]
    return json.loads(dry.stdout.strip().splitlines()[-1])["steps"]


@pytest.mark.parametrize("seeded", [False, True], ids=["new-model", "next-version"])
def test_deploy_killed_before_any_step_leaves_only_complete_versions(tmp_path, monkeypatch, seeded):
    import modelpress.api.convert
    from modelpress.runtime.repository import scan_repository

    monkeypatch.setattr(modelpress.api.convert, "convert", fake_convert)

    template = tmp_path / "template"
    template.mkdir()
    if seeded:
        shutil.copytree(PACKAGES / "float32", template / "digits" / "1")
    total = _steps("deploy", shutil.copytree(template, tmp_path / "dry"))
    assert total >= 8
    before = {"digits": [1]} if seeded else {}
    for n in range(1, total + 1):
        repo = shutil.copytree(template, tmp_path / f"kill-{n}")
        killed = run_child("deploy", n, repo)
        assert killed.returncode == -signal.SIGKILL, (n, killed.stderr[-2000:])
        after = visible_versions(repo)
        published = [v for v in after.get("digits", []) if v not in before.get("digits", [])]
        assert published in ([], [len(before.get("digits", [])) + 1]), (n, after)
        scanned = {name: sorted(entry.versions) for name, entry in scan_repository(repo).items()}
        assert scanned == after, (n, os.listdir(repo))
        assert fake_deploy(repo).published[0].version == len(after.get("digits", [])) + 1   # the next numbers on
        assert visible_versions(repo)["digits"] == list(range(1, len(after.get("digits", [])) + 2)), n


def test_replacing_a_package_killed_before_any_step_leaves_the_old_or_the_new(tmp_path):
    template = tmp_path / "template"
    shutil.copytree(PACKAGES / "float32", template / "out")
    total = _steps("overwrite", shutil.copytree(template, tmp_path / "dry") / "out")
    old = (PACKAGES / "float32" / "model.tflite").read_bytes()
    new = (PACKAGES / "int8" / "model.tflite").read_bytes()
    outcomes = []
    for n in range(1, total + 1):
        out = shutil.copytree(template, tmp_path / f"kill-{n}") / "out"
        killed = run_child("overwrite", n, out)
        assert killed.returncode == -signal.SIGKILL, (n, killed.stderr[-2000:])
        assert package_problem(out) is None, (n, os.listdir(out.parent))
        outcomes.append({old: "old", new: "new"}[(out / "model.tflite").read_bytes()])
        assert all(p.name.startswith(".") for p in out.parent.iterdir() if p != out)
    assert outcomes[0] == "old" and outcomes[-1] == "new"


def test_next_version_ignores_names_that_only_look_like_numbers(tmp_path):
    from modelpress.converters.publish import next_version

    for name in ("3", "\u00b2", "\u0663", ".modelpress-tmp-deploy-x", "10.bak"):
        (tmp_path / name).mkdir()
    assert next_version(tmp_path) == 4


# --- durable once published (issue 15, item 4) ------------------------------------------------------

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads fsync'ed paths from /proc/self/fd")
def test_a_published_version_is_on_disk_when_publish_returns(tmp_path, monkeypatch):
    """Every file of the package is flushed before its rename, and each folder a rename changed is flushed
    after it (the repository for a new model, the model folder for a next version)."""
    from modelpress.converters.publish import publish_package, staging

    events: list[tuple[str, str]] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def rename(src, dst, *args, **kwargs):
        real_rename(src, dst, *args, **kwargs)
        events.append(("rename", os.path.realpath(dst)))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    repo = (tmp_path / "repo").resolve()
    for version, changed in ((1, repo), (2, repo / "digits")):
        with staging(repo, "digits") as folder:
            shutil.copytree(PACKAGES / "int8", folder / "pkg")
            events.clear()
            final = publish_package(folder / "pkg", repo, "digits", version)
            synced = [path for kind, path in events if kind == "fsync"]
            assert {str(folder / "pkg" / f) for f in ("model.tflite", "modelpress.json")} <= set(synced)
            last_rename = max(i for i, (kind, _) in enumerate(events) if kind == "rename")
            assert ("fsync", str(changed)) in events[last_rename:], (version, events)
        assert (final / "model.tflite").exists()


# --- the real commands, killed from outside ---------------------------------------------------------

def _hidden_model_file(root: Path) -> bool:
    return any(part.startswith(".") for p in root.rglob("model.tflite") for part in p.relative_to(root).parts[:-1])


def _hidden_folder(root: Path) -> bool:
    return any(p.name.startswith(".modelpress-tmp-") for p in root.rglob(".modelpress-tmp-*"))


#: the moments a command is stopped at: it has staged (a hidden folder exists), its model file is being
#: written (a model file exists in a hidden folder)
MOMENTS = {"staged": _hidden_folder, "model-file": _hidden_model_file}
HUNG = 600  # seconds: only a bound on a command that hangs; a normal run takes well under a minute


def _kill_at(args: list[str], root: Path, moment: str, log: Path, delay: float = 0.0) -> int:
    """Run ``modelpress ARGS``, SIGKILL it at the step where ``moment`` first holds (or ``delay`` s of
    running later); its return code (0 if it finished without reaching that moment)."""
    with open(log, "ab") as err:
        proc = subprocess.Popen([sys.executable, __file__, "stop-when", moment, str(root.resolve()), *args],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"})
    deadline = time.monotonic() + HUNG
    while True:  # stopped at the moment, or ended; the state stays until we act, so no moment is missed
        state = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WSTOPPED | os.WNOWAIT | os.WNOHANG)
        if state is not None:
            break
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"hung: `modelpress {' '.join(args)}` neither ended nor reached the moment "
                                 f"{moment!r} in {HUNG} s; its log: {log}")
        time.sleep(0.01)
    if state.si_code == os.CLD_STOPPED:
        if delay:
            proc.send_signal(signal.SIGCONT)
            time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    return proc.wait(timeout=60)


@pytest.mark.integration
@pytest.mark.slow  # four real CLI runs, each starting TensorFlow: 1.5-2.5 min on a busy 2-core machine
def test_the_deploy_command_killed_mid_write(keras3_model, data_dir, tmp_path):
    import modelpress
    from modelpress.runtime import create_app

    repo = tmp_path / "repo"
    shutil.copytree(PACKAGES / "float32", repo / "digits" / "1")
    watcher = Watcher(repo)
    watcher.start()
    command = ["deploy", str(keras3_model), "-p", "server-cpu", "--repo", str(repo), "--name", "digits",
               "--data", str(data_dir / "data.npz"), "--out", str(tmp_path / "run")]
    delay = random.Random(0).uniform(0.05, 0.6)
    log = tmp_path / "killed.log"
    codes = [_kill_at(command, repo, "staged", log),               # as soon as it stages
             _kill_at(command, repo, "model-file", log),           # while the package is being written
             _kill_at(command, repo, "staged", log, delay)]        # at some moment after (it may finish)
    assert codes[:2] == [-signal.SIGKILL] * 2, (codes, log.read_text()[-3000:])
    killed = visible_versions(repo)["digits"]
    assert killed in ([1], [1, 2])                                       # 2 only if the last run had finished
    assert any(p.name.startswith(".modelpress-tmp-deploy-") for p in repo.iterdir())  # leftovers to ignore
    published = modelpress.deploy(keras3_model, "server-cpu", repo, data=data_dir / "data.npz", name="digits")
    assert published.published[0].version == killed[-1] + 1
    watcher.finish()
    assert ("digits", killed[-1] + 1) in watcher.seen
    app = create_app({"repository": str(repo), "poll_interval": 0})
    try:
        client = app.test_client()
        assert sorted(client.get("/status").json["models"]) == ["digits"]
        ready = client.get("/v2/models/digits/ready")
        assert ready.status_code == 200 and ready.json["version"] == str(killed[-1] + 1)
    finally:
        app.modelpress.close()


@pytest.mark.integration
@pytest.mark.slow  # four real CLI runs, each starting TensorFlow: 1.5-2.5 min on a busy 2-core machine
def test_the_convert_command_killed_while_replacing_a_package(keras3_model, data_dir, tmp_path):
    import modelpress

    out = tmp_path / "build" / "rpi"
    shutil.copytree(PACKAGES / "float32", out)
    old = (out / "model.tflite").read_bytes()
    watcher = Watcher(out, package=True)
    watcher.start()
    command = ["convert", str(keras3_model), "-p", "server-cpu", "-o", str(out), "--verify-data",
               str(data_dir / "verify.npy")]
    build = out.parent
    delay = random.Random(1).uniform(0.05, 0.6)
    log = tmp_path / "killed.log"
    codes = [_kill_at(command, build, "staged", log),
             _kill_at(command, build, "model-file", log),
             _kill_at(command, build, "staged", log, delay)]
    assert codes[:2] == [-signal.SIGKILL] * 2, (codes, log.read_text()[-3000:])
    assert package_problem(out) is None
    if codes[2] == -signal.SIGKILL:
        assert (out / "model.tflite").read_bytes() == old
    modelpress.convert(keras3_model, "server-cpu", out, verify_data=data_dir / "verify.npy")   # then one that ends
    watcher.finish()
    assert (out / "model.tflite").read_bytes() != old and package_problem(out) is None
    assert all(p.name.startswith(".") for p in build.iterdir() if p != out)


if __name__ == "__main__":
    if sys.argv[1] == "stop-when":
        stop_when(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        child(sys.argv[1], int(sys.argv[2]), sys.argv[3])
