"""The soak of benchmarks/soak_bench.py, reduced: a real `modelpress serve` process under concurrent load
over three models and both protocols, with a new version published in the middle of the run. Every answer
is checked (status, shape, values); nothing here is timed, so a slow machine cannot fail it
(time only bounds a run that hangs)."""

from __future__ import annotations

import pytest

from benchmarks.soak_bench import SoakOptions, run_soak

#: the run's time cap only bounds a run that hangs (it takes well under a minute on a loaded 2-core machine)
HUNG = 600
SMALL = SoakOptions(requests=400, concurrency=8, time_cap=HUNG, threads=4, poll_interval=0.1, warmup=40, rows=16,
                    after_swap=20, windows=4)


@pytest.mark.slow
def test_soak_with_a_publish_mid_run_loses_no_request(tmp_path):
    result = run_soak(SMALL, tmp_path, say=lambda _: None)
    totals, swap = result["totals"], result["swap"]
    assert totals["stopped_by"] == "count", (f"hung: {totals['requests']} of {SMALL.requests} requests answered "
                                             f"in {HUNG} s")
    assert totals["errors"] == 0, (totals["errors_by_reason"], totals["error_examples"])
    grpc = result["by_protocol"]["grpc"]  # a third of the mix goes through the gRPC door, the swap included
    assert grpc["requests"] > 0 and grpc["errors"] == 0 and grpc["requests_during_swap"] > 0
    assert totals["warmup_errors"] == 0
    assert totals["requests"] >= SMALL.requests
    assert swap["error"] is None
    assert (swap["from_version"], swap["to_version"]) == (1, 2)
    assert swap["requests_during_swap"] > 0 and swap["failed_requests"] == 0
    assert swap["new_version_answers"] >= SMALL.after_swap
    assert swap["new_version_served"] and swap["served_after"] == [2]
    assert {(r["version"], r["state"]) for r in swap["status_after"]} == {("2", "AVAILABLE"), ("1", "END")}
    assert result["server_log_problems"] == []
    assert len(result["windows"]) == SMALL.windows and result["rss"]["end_mb"] > 0
