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


def _error(call) -> str:
    from modelpress.errors import BadRequestError

    with pytest.raises(BadRequestError) as caught:
        call()
    return str(caught.value)


def test_inputs_checked_once_are_still_checked_for_every_new_shape_and_dtype(app, samples):
    """A request like one already accepted reuses its validation; any other name, shape or dtype is
    checked again and refused with the same words as the first time."""
    from modelpress.runtime.inference import run_inference

    x, _ = samples
    runtime = app.modelpress
    first = run_inference(runtime, "digits", None, [("image", x[:3])]).outputs["output_0"]
    again = run_inference(runtime, "digits", None, [("image", x[:3])]).outputs["output_0"]
    assert np.array_equal(first, again)
    widened = run_inference(runtime, "digits", None, [("image", x[:3].astype(np.float64))]).outputs["output_0"]
    assert widened.dtype == np.float32 and np.allclose(widened, first, atol=1e-6)
    for _ in range(2):  # refused alike whether or not a valid request came first
        assert "expects shape [None, 8, 8, 1], got [3, 8, 8, 2]" in _error(
            lambda: run_inference(runtime, "digits", None, [("image", np.zeros((3, 8, 8, 2), np.float32))]))
        assert "expects FP32, got INT32" in _error(
            lambda: run_inference(runtime, "digits", None, [("image", x[:3].astype(np.int32))]))
        assert "unknown input(s) picture" in _error(
            lambda: run_inference(runtime, "digits", None, [("picture", x[:3])]))
    with runtime.registry.acquire("digits") as served:
        plans = len(served.input_plans)
    assert plans == 2  # float32 and float64 rows of three: the refused requests left no plan behind


def test_quantized_and_real_inputs_keep_their_own_plans(app, samples):
    from modelpress.runtime.inference import run_inference

    x, _ = samples
    runtime = app.modelpress
    for _ in range(2):
        real = run_inference(runtime, "edgetpu", None, [("image", x[:1])]).outputs
        raw = run_inference(runtime, "edgetpu", None, [("image", np.round(x[:1] * 255).astype(np.uint8))]).outputs
        (real,), (raw,) = real.values(), raw.values()
        assert real.dtype == np.float32 and raw.dtype == np.uint8   # integers in, integers out


def test_input_plans_stay_bounded_when_every_request_has_a_new_shape(app, samples):
    from modelpress.runtime.dataplane import INPUT_PLANS
    from modelpress.runtime.inference import run_inference

    x, _ = samples
    runtime = app.modelpress
    for rows in range(1, INPUT_PLANS + 10):
        batch = np.resize(x, (rows, 8, 8, 1)).astype(np.float32)
        assert run_inference(runtime, "digits", None, [("image", batch)]).outputs["output_0"].shape == (rows, 10)
    with runtime.registry.acquire("digits") as served:
        assert 0 < len(served.input_plans) <= INPUT_PLANS


def test_a_request_without_batching_counts_its_compute_rows_and_no_queue(client, samples):
    x, _ = samples
    for rows in (1, 3):
        body = {"inputs": [{"name": "image", "shape": [rows, 8, 8, 1], "datatype": "FP32",
                            "data": x[:rows].ravel().tolist()}]}
        assert client.post("/v2/models/digits/infer", json=body).status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    series = '{model="digits",version="2"}'
    assert f"modelpress_compute_duration_seconds_count{series} 2.0" in text
    assert f"modelpress_batch_size_count{series} 2.0" in text and f"modelpress_batch_size_sum{series} 4.0" in text
    assert f"modelpress_queue_duration_seconds_count{series} 2.0" in text
    assert f"modelpress_queue_duration_seconds_sum{series} 0.0" in text
