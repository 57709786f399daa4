"""press on a real Ray cluster: a head and a second node on loopback, trials recorded on both."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_press_on_a_two_node_loopback_ray_cluster_runs_trials_on_both_nodes(tmp_path, mlp_path, data_dir):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'modelpress[distributed]')")
    import modelpress
    from modelpress.testing.ray_cluster import loopback_cluster

    with loopback_cluster(nodes=2, cpus_per_node=1) as address:
        result = modelpress.press(mlp_path, ["cortex-m"], data_dir / "data.npz", out=tmp_path / "out", max_drop=1.0,
                                  epochs=2, families=["prune"], cache=tmp_path / "cache", progress=False,
                                  ray=address, trial_cpus=1)
    document = json.loads(result.press_json.read_text())
    execution = document["execution"]
    assert execution["kind"] == "ray" and execution["cluster_nodes"] == 2 and execution["workers"] == 2
    ran = [t for t in document["trials"] if not t["cached"]]
    nodes = {t["worker"].partition(" node ")[2] for t in ran}
    assert len(nodes) == 2 and "" not in nodes, [t["worker"] for t in ran]
    assert sorted(nodes) == execution["nodes_used"]
    # the driver's cache holds what the tasks sent back: the chosen package was made from it
    chosen = result.chosen["cortex-m"]
    assert chosen is not None and (result.out / "cortex-m" / "modelpress.json").is_file()
    assert (tmp_path / "cache" / "trials" / f"{chosen.artifact_key}.tflite").is_file()


def test_ray_without_a_cluster_is_one_clear_error(runner, cli, tmp_path, data_dir, mlp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'modelpress[distributed]')")
    from modelpress.testing.ray_cluster import free_port

    result = runner.invoke(cli, ["press", str(mlp_path), "-p", "cortex-m", "-d", str(data_dir / "data.npz"),
                                 "-o", str(tmp_path / "out"), "--no-cache", "--ray", f"127.0.0.1:{free_port()}"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "cannot join the Ray cluster" in result.output
