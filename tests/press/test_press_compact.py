"""press's compact storage: where the device runs int4 weights, pruned candidates end on the int4 grid and ship as
int4; an integer-only microcontroller keeps int8 codes."""

from __future__ import annotations

import numpy as np
import pytest

import modelpress

pytestmark = pytest.mark.integration


def test_pruned_candidates_ship_as_int4_where_the_device_runs_it(mlp_path, data_dir, tmp_path):
    pytest.importorskip("litert_quantizer")
    from modelpress.search.cache import TrialCache
    from modelpress.tflite_graph import read_graph

    result = modelpress.press(mlp_path, ["raspberry-pi-4", "cortex-m"], data_dir / "data.npz", out=tmp_path / "out",
                              max_drop=3.0, epochs=2, families=["quantize", "prune"], cache=tmp_path / "cache",
                              progress=False)
    pruned = {profile: [t for t in result.search.trials if t.profile == profile and t.settings.family == "prune"]
              for profile in ("raspberry-pi-4", "cortex-m")}
    assert pruned["raspberry-pi-4"] and pruned["cortex-m"]
    for trial in pruned["raspberry-pi-4"]:
        assert trial.settings.quantization == "int4"
        grid = trial.settings.steps[-1]
        assert (grid["type"], grid["bits"]) == ("qat", 4) and grid["epochs"] == max(1, trial.settings.epochs // 2)
    assert all(t.settings.quantization == "int8" and t.settings.steps[-1]["type"] == "prune"
               for t in pruned["cortex-m"])  # an MCU runs no int4: int8 codes as before
    best = min((t for t in pruned["raspberry-pi-4"] if t.passed), key=lambda t: t.gzip_bytes)
    plain_int8 = next(t for t in result.search.trials if t.profile == "raspberry-pi-4"
                      and t.settings.family == "quantize" and t.settings.quantization == "int8")
    assert best.gzip_bytes < plain_int8.gzip_bytes / 2
    cache = TrialCache(tmp_path / "cache")
    graph = read_graph(cache.artifact(best.artifact_key))
    assert graph.quantization == "int4" and "float16" not in graph.weight_types  # channelwise: sparse layers
    model, _ = cache.load_model(best.model_key)
    fc1 = np.asarray(model.get_layer("fc1").kernel)
    scale = np.abs(fc1).max(axis=0) / 7
    codes = fc1 / np.where(scale > 0, scale, 1.0)
    np.testing.assert_allclose(codes, np.round(codes), atol=1e-3)  # on the int4 grid the artifact stores
    assert (fc1 == 0).mean() >= 0.5
