"""The per-request path kept cheap without changing what it guarantees: the interpreter pool hands each
concurrent request an interpreter of its own (a lone request takes one without waiting), a request that
finds none free waits for the next one returned, and a version being replaced still drains the requests
that hold it. Real models, real threads."""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from modelpress.manifest import read_manifest
from modelpress.runtime.backends import TFLiteBackend
from modelpress.runtime.backends.tflite import InterpreterPool
from tests.runtime.conftest import PACKAGES


def test_concurrent_requests_never_share_an_interpreter(samples):
    x, _ = samples
    backend = TFLiteBackend(PACKAGES / "float32", read_manifest(PACKAGES / "float32"), pool_size=2, threads=1)
    backend.load()
    expected = backend.predict([x[:40]])[0]
    users: dict[int, int] = {}
    overlaps = []
    lock = threading.Lock()
    for key, model in enumerate(backend._pool._free):  # watch every interpreter: who runs it, two at once?
        real = model.predict

        def watched(inputs, dequantize=True, real=real, key=key):
            with lock:
                users[key] = users.get(key, 0) + 1
                overlaps.append(users[key])
            try:
                time.sleep(0.001)  # widen the window in which a second thread would show up
                return real(inputs, dequantize=dequantize)
            finally:
                with lock:
                    users[key] -= 1

        model.predict = watched
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: backend.predict([x[i:i + 1]])[0], range(40)))
    assert np.allclose(np.concatenate(results), expected, atol=1e-6)
    assert max(overlaps) == 1 and len(overlaps) == 40
    assert backend._pool.qsize() == 2
    backend.unload()
    assert backend._pool.qsize() == 0


def test_a_request_waits_for_the_next_free_interpreter_and_gives_up_in_time():
    pool = InterpreterPool(["a", "b"])
    assert pool.get(timeout=1) == "b" and pool.get(timeout=1) == "a"   # last returned first
    started = time.monotonic()
    with pytest.raises(queue.Empty):
        pool.get(timeout=0.1)
    assert time.monotonic() - started >= 0.09
    got = []
    waiter = threading.Thread(target=lambda: got.append(pool.get(timeout=5)))
    waiter.start()
    time.sleep(0.1)
    assert not got                   # nothing free: still waiting
    pool.put("a")
    waiter.join(5)
    assert got == ["a"] and pool.qsize() == 0


def test_many_threads_through_a_small_pool_lose_nothing():
    pool = InterpreterPool(range(3))
    held, peak, errors = set(), [0], []
    lock = threading.Lock()

    def use(_):
        item = pool.get(timeout=10)
        with lock:
            if item in held:
                errors.append(item)
            held.add(item)
            peak[0] = max(peak[0], len(held))
        with lock:
            held.discard(item)
        pool.put(item)

    with ThreadPoolExecutor(12) as workers:
        list(workers.map(use, range(3000)))
    assert not errors and peak[0] <= 3
    assert sorted(pool._free) == [0, 1, 2]


def test_an_unload_waits_for_a_checkout_released_out_of_order(make_app, repo, samples):
    x, _ = samples
    app = make_app(repo, unload_timeout=10)
    registry = app.modelpress.registry
    first = registry.acquire("digits", "2")
    second = registry.acquire("digits", "2")
    with first as served:
        assert served.inflight == 2
    retired = threading.Thread(target=served.retire, args=(10,))
    retired.start()
    time.sleep(0.2)
    assert retired.is_alive() and served.inflight == 1   # one request still holds the version
    with second:
        assert served.predict([x[:1]])[0].shape == (1, 10)
    retired.join(5)
    assert not retired.is_alive() and served.state == "END" and served.inflight == 0
