"""Parallel trials in local worker processes: the same search, run by two processes beside the driver."""

from __future__ import annotations

import json
import os

from modelpress.search.bisection import gallop_points, tree_points
from modelpress.search.executor import ProcessPool, WorkerDied, default_workers, threads_per_worker


def test_two_workers_run_trials_in_other_processes_and_choose_as_the_sequential_search(tmp_path, mlp_path,
                                                                                         data_dir):
    import modelpress

    runs = {}
    for workers in (1, 2):
        runs[workers] = modelpress.press(mlp_path, ["cortex-m"], data_dir / "data.npz", out=tmp_path / f"out{workers}",
                                         max_drop=1.0, epochs=2, families=["prune", "prune-mn"],
                                         cache=tmp_path / f"cache{workers}",
                                         progress=False, workers=workers)
    sequential = json.loads(runs[1].press_json.read_text())
    parallel = json.loads(runs[2].press_json.read_text())
    assert sequential["execution"] == {"kind": "in-process", "workers": 1}
    assert {t["worker"] for t in sequential["trials"]} == {None}
    assert parallel["execution"]["kind"] == "processes" and parallel["execution"]["workers"] == 2
    ran = [t for t in parallel["trials"] if not t["cached"]]
    where = {t["worker"] for t in ran}
    assert ran and None not in where
    assert all(not w.endswith(f":{os.getpid()}") for w in where), where
    # the sequential path is a subset of the parallel trials, and the choice is the same
    assert {t["variant"] for t in sequential["trials"]} <= {t["variant"] for t in parallel["trials"]}
    assert runs[2].chosen["cortex-m"].describe() == runs[1].chosen["cortex-m"].describe()
    assert (runs[2].out / "cortex-m" / "modelpress.json").is_file()


def test_a_worker_that_dies_costs_its_payload_only_and_the_pool_goes_on():
    pool = ProcessPool(2, os._exit)
    try:
        died = pool.map([3])
        assert isinstance(died[0], WorkerDied) and "died twice" in str(died[0])
        assert pool.restarts == 2
        assert pool.map([]) == []
    finally:
        pool.close()
    healthy = ProcessPool(2, abs)
    try:
        assert healthy.map([-1, -2, 3]) == [1, 2, 3]
    finally:
        healthy.close()


def test_the_default_shares_the_cores_and_one_gpu_per_worker():
    assert default_workers(cores=2, gpus=0) == 1
    assert default_workers(cores=16, gpus=0) == 4
    assert default_workers(cores=16, gpus=2) == 2
    assert threads_per_worker(2, cores=2) == 1 and threads_per_worker(4, cores=16) == 4


def test_lookahead_points_are_the_sequential_bisection_tree():
    assert tree_points(0.5, 0.0, 1.0, 2, 0.1) == [0.75, 0.25]
    assert tree_points(0.9, 0.5, 0.99, 3, 0.02) == [0.945, 0.7, 0.9675]
    assert tree_points(3, 0, 4, 3, 1.0, discrete=True) == [1, 2]
    assert gallop_points(1, 10) == [1, 2, 4, 8, 10]


def test_workers_must_be_a_positive_whole_number(runner, cli, tmp_path, data_dir, mlp_path):
    result = runner.invoke(cli, ["press", str(mlp_path), "-p", "cortex-m", "-d", str(data_dir / "data.npz"),
                                 "-o", str(tmp_path / "out"), "--workers", "0"])
    assert result.exit_code == 2 and "--workers" in result.output


def test_trial_resources_without_ray_are_refused(runner, cli, tmp_path, data_dir, mlp_path):
    result = runner.invoke(cli, ["press", str(mlp_path), "-p", "cortex-m", "-d", str(data_dir / "data.npz"),
                                 "-o", str(tmp_path / "out"), "--trial-gpus", "1", "--no-cache"])
    assert result.exit_code != 0 and "--ray" in result.output and "Traceback" not in result.output
