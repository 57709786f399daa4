"""Defaults that fit the host: a profile's interpreter threads describe the device a model was made for;
by default interpreters x threads stay within this host's usable cores, the log says what was chosen and
why, and explicit settings still win."""

from __future__ import annotations

import re

import pytest

from modelpress.runtime.backends import tflite
from modelpress.runtime.config import RuntimeConfig, usable_cpus
from modelpress.testing.server import served


@pytest.mark.parametrize("wanted, pool, cores, threads", [
    (4, 2, 2, 1),    # a Pi profile's 4 threads, 2 interpreters, 2 cores: 1 thread each
    (4, 1, 8, 4),    # the profile's threads fit
    (4, 2, 6, 3),    # as many as fit
    (2, 4, 2, 1),    # more interpreters than cores: one thread each, never none
])
def test_fit_threads_keeps_interpreters_times_threads_within_the_cores(wanted, pool, cores, threads):
    assert tflite.fit_threads(wanted, pool, cores=cores) == threads


def _threads(app, model: str = "digits") -> tuple[int, int]:
    with app.modelpress.registry.acquire(model, None) as version:
        return version.backend.pool_size, version.backend.threads


@pytest.mark.parametrize("cores, threads", [(2, 1), (8, 4), (1, 1)])
def test_profile_threads_are_fitted_to_the_usable_cores(make_app, repo, monkeypatch, cores, threads):
    monkeypatch.setattr("modelpress.runtime.config.usable_cpus", lambda: cores)
    app = make_app(repo, threads=2)  # 2 interpreters per model; the packages' profile says 4 threads
    assert _threads(app) == (2, threads)


def test_explicit_interpreter_threads_are_not_fitted(make_app, repo, monkeypatch):
    monkeypatch.setattr("modelpress.runtime.config.usable_cpus", lambda: 2)
    assert _threads(make_app(repo, threads=2, interpreter_threads=3)) == (2, 3)
    (repo / "digits" / "config.yaml").write_text("interpreter_threads: 2\npool_size: 3\n")
    assert _threads(make_app(repo, threads=2)) == (3, 2)


def test_serve_with_no_flags_logs_what_it_chose_and_why(repo):
    cores = usable_cpus()
    pool = min(RuntimeConfig().request_threads("granian" if _has_granian() else "waitress"), cores)
    threads = max(1, min(4, cores // pool))
    with served(repo, "--poll-interval", "0") as server:
        log = "".join(server.lines)
    assert re.search(rf"host: {cores} usable core\(s\) .*; {pool} interpreter\(s\) per model \(one per core at "
                     rf"most\); interpreter threads: each profile's, at most {max(1, cores // pool)}", log), log
    assert f"loaded model digits version 2 (tflite, {pool} interpreter(s), {threads} thread(s) each" in log, log
    if threads != 4:
        assert f"digits: {threads} interpreter thread(s) instead of the profile's 4" in log, log


def test_flags_still_override(repo):
    with served(repo, "--poll-interval", "0", "--threads", "3", "--interpreter-threads", "2") as server:
        log = "".join(server.lines)
    assert "3 interpreter(s) per model (--threads); interpreter threads: 2 (--interpreter-threads)" in log, log
    assert "loaded model digits version 2 (tflite, 3 interpreter(s), 2 thread(s) each" in log, log


def _has_granian() -> bool:
    import importlib.util

    return importlib.util.find_spec("granian") is not None
