"""modelpress.press through the Python API, on a real model and real held-out data."""

from __future__ import annotations

import json

import numpy as np
import pytest

import modelpress
from modelpress.errors import UsageError

pytestmark = pytest.mark.integration


def test_the_chosen_package_keeps_the_budget_on_held_out_data(pressed, mlp_path, data_dir):
    result, _ = pressed
    assert result.met and not result.messages
    reference = modelpress.evaluate(mlp_path, data_dir / "data.npz")["accuracy"]
    for profile in ("cortex-m",):
        package = result.packages[profile]
        measured = modelpress.evaluate(package, data_dir / "data.npz")  # the package as written, run again
        assert (reference - measured["accuracy"]) * 100 <= 1.0 + 1e-9
        assert measured["profile"] == profile
        chosen = result.chosen[profile]
        assert chosen.passed and chosen.drop_points <= 1.0
        assert measured["accuracy"] == pytest.approx(chosen.accuracy)
    cortex = modelpress.read_manifest(result.packages["cortex-m"])
    assert cortex.inputs[0].dtype == "int8"  # the profile's I/O types, as convert would build
    assert cortex.profile["name"] == "cortex-m" and "chosen by modelpress press" in cortex.notes[0]


def test_press_json_lists_every_trial_with_its_verdicts(pressed):
    result, _ = pressed
    doc = json.loads(result.press_json.read_text())
    assert len(doc["trials"]) == len(result.search.trials) >= 4
    for trial in doc["trials"]:
        assert {"settings", "bytes", "gzip_bytes", "p50_ms", "accuracy", "drop_points", "constraints", "seconds",
                "verdict", "why_not"} <= set(trial)
        assert trial["verdict"] in ("passed", "over budget", "constraints", "failed")
        assert trial["why_not"]  # chosen, or the reason it lost
    families = {t["settings"]["family"] for t in doc["trials"]}
    assert families == {"quantize", "prune"}  # int8 of the source always, then the branch asked for
    for name, info in doc["profiles"].items():
        chosen = info["chosen"]
        passers = [t for t in doc["trials"] if t["profile"] == name and t["verdict"] == "passed"]
        assert chosen["gzip_bytes"] == min(t["gzip_bytes"] for t in passers)  # objective: size
        assert info["float32_tflite"]["gzip_bytes"] > chosen["gzip_bytes"]
    # the cortex-m search tried int8 only: the device runs nothing else
    assert {t["settings"]["quantization"] for t in doc["trials"] if t["profile"] == "cortex-m"} == {"int8"}


def test_report_has_pareto_plots_and_reasons(pressed):
    result, _ = pressed
    report = result.out / "report"
    assert (report / "pareto_cortex-m_size.png").stat().st_size > 1000
    assert (report / "pareto_cortex-m_latency.png").is_file()
    markdown = (report / "report.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in markdown.splitlines() if line.startswith("| ")}
    trials = json.loads(result.press_json.read_text())["trials"]
    for trial in trials:  # every trial has its row, ending in why it was chosen or why it lost
        assert rows[str(trial["id"])].rstrip(" |").endswith(trial["why_not"]), trial["id"]
    assert sum(t["why_not"] == "chosen" for t in trials) == 1
    assert all(t["why_not"].startswith(("over budget", "larger:", "same size", "breaks the profile"))
               for t in trials if t["why_not"] != "chosen")
    page = (report / "report.html").read_text()
    assert "src='pareto_cortex-m_size.png'" in page and "src='pareto_cortex-m_latency.png'" in page


def test_a_rerun_and_a_second_profile_reuse_the_cache(pressed, mlp_path, data_dir, tmp_path):
    first, folder = pressed
    cache = folder / "cache"
    models = sorted(p.name for p in (cache / "models").glob("*.keras"))
    compressions = {t.settings.compression_key() for t in first.search.trials if t.settings.compressed}
    assert len(models) == len(compressions) >= 3
    again = modelpress.press(mlp_path, ["cortex-m"], data_dir / "data.npz", out=tmp_path / "again", max_drop=1.0,
                             epochs=2, families=["prune"], cache=cache, progress=False)
    assert again.search.trials and all(t.cached and t.seconds == 0 for t in again.search.trials)
    assert [t.settings for t in again.search.trials] == [t.settings for t in first.search.trials]
    assert again.chosen["cortex-m"].settings == first.chosen["cortex-m"].settings
    # a second profile converts and scores again, but trains nothing: every fine-tuned model comes from the cache
    second = modelpress.press(mlp_path, ["coral-edgetpu"], data_dir / "data.npz", out=tmp_path / "second",
                              max_drop=1.0, epochs=2, families=["prune"], cache=cache, progress=False)
    assert sorted(p.name for p in (cache / "models").glob("*.keras")) == models
    assert [t.settings for t in second.search.trials] == [t.settings for t in first.search.trials]
    assert not any(t.cached for t in second.search.trials)  # measured for the new profile


def test_a_budget_nothing_meets_ends_with_the_closest_candidate(mlp_path, data_dir, tmp_path):
    profile = tmp_path / "tiny.yaml"
    profile.write_text("name: tiny-mcu\nhardware: mcu\nquantization: int8\ninput_dtype: int8\noutput_dtype: int8\n"
                       "op_set: int8_builtins\nmax_artifact_bytes: 2048\n")
    result = modelpress.press(mlp_path, [str(profile)], data_dir / "data.npz", out=tmp_path / "out", max_drop=0.5,
                              families=["quantize"], cache=tmp_path / "cache", progress=False)
    assert not result.met and result.chosen["tiny-mcu"] is None
    closest = result.search.closest["tiny-mcu"]
    assert closest is not None and closest.problems
    assert "tiny-mcu" in result.messages[0] and "closest" in result.messages[0] and "2,048" in result.messages[0]
    doc = json.loads(result.press_json.read_text())
    assert doc["met"] is False and doc["profiles"]["tiny-mcu"]["closest"]["id"] == closest.id
    assert not (tmp_path / "out" / "tiny-mcu").exists()  # no package that breaks the device


def test_the_time_budget_stops_the_search(mlp_path, data_dir, tmp_path):
    result = modelpress.press(mlp_path, "raspberry-pi-4", data_dir / "data.npz", out=tmp_path / "out",
                              time_budget="0.01s", use_cache=False, progress=False)
    # the first trial starts, then only the post-training int8 every profile gets; none else after the budget
    assert [t.settings.quantization for t in result.search.trials] == ["int4", "int8"]
    assert "time budget" in result.search.stopped
    assert json.loads(result.press_json.read_text())["stopped"] == result.search.stopped


@pytest.mark.parametrize("kwargs, words", [
    ({"max_drop": -1}, "max_drop"), ({"objective": "speed"}, "objective"), ({"time_budget": "soon"}, "90s"),
    ({"families": ["prune", "magic"]}, "magic"),
])
def test_bad_options_are_refused_with_the_fix(mlp_path, data_dir, tmp_path, kwargs, words):
    with pytest.raises(UsageError, match=words):
        modelpress.press(mlp_path, "raspberry-pi-4", data_dir / "data.npz", out=tmp_path / "out", **kwargs)


def test_out_folder_with_other_files_is_not_replaced(mlp_path, data_dir, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="not modelpress press results"):
        modelpress.press(mlp_path, "raspberry-pi-4", data_dir / "data.npz", out=tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_per_layer_fallback_keeps_the_named_layers_in_float(mlp_path, digits):
    from modelpress.model_io import load_model
    from modelpress.search.fallback import rank_layers, selective_int8
    from modelpress.tflite_graph import read_graph
    from modelpress.tflite_interpreter import TFLiteModel

    model = load_model(mlp_path).model
    ranked = rank_layers(model, digits.x_train[:100])
    layers = [r.name for r in ranked]
    assert len(layers) == 3 and {r.short.split("_")[0] for r in ranked} == {"fc1", "fc2", "fc3"}
    assert all(0 <= r.relative_error < 1 and r.rmse_per_scale >= 0 for r in ranked)  # a trained MLP: small errors
    assert [r.relative_error for r in ranked] == sorted((r.relative_error for r in ranked), reverse=True)
    full = read_graph(selective_int8(model, digits.x_train[:100], []))
    mixed_blob = selective_int8(model, digits.x_train[:100], layers[:1])
    mixed = read_graph(mixed_blob)
    assert full.ops.count("DEQUANTIZE") == 1 and mixed.ops.count("DEQUANTIZE") == 2
    # the mixed model runs and still answers as the float model does
    (scores,) = TFLiteModel(mixed_blob).predict([digits.x_test])
    assert scores.shape == (len(digits.x_test), 10)
    agreement = np.mean(scores.argmax(1) == np.asarray(model(digits.x_test)).argmax(1))
    assert agreement >= 0.95, agreement


def test_int8_that_misses_the_budget_falls_back_to_float_for_the_harmful_layer(mlp_path, data_dir, tmp_path):
    """fc1 gets one unit 1000x louder (fc2 reads it 1000x softer: the float model is unchanged), so int8's
    single activation scale for fc1's output wipes out every other unit; keeping that layer in float fixes it."""
    from modelpress.model_io import load_model

    model = load_model(mlp_path).model
    w1, b1 = model.get_layer("fc1").get_weights()
    w2, b2 = model.get_layer("fc2").get_weights()
    w1[:, 0], b1[0], w2[0, :] = w1[:, 0] * 1000, b1[0] * 1000, w2[0, :] / 1000  # relu(1000 z) / 1000 = relu(z)
    model.get_layer("fc1").set_weights([w1, b1])
    model.get_layer("fc2").set_weights([w2, b2])
    loud = tmp_path / "loud.keras"
    model.save(loud)
    result = modelpress.press(loud, "raspberry-pi-4", data_dir / "data.npz", out=tmp_path / "out", max_drop=1.0,
                              families=["fallback"], use_cache=False, progress=False)
    int8, *fallbacks = result.search.trials
    assert int8.settings.quantization == "int8" and not int8.within_budget  # full int8 misses the budget
    assert fallbacks and all(t.settings.family == "fallback" for t in fallbacks)
    chosen = result.chosen["raspberry-pi-4"]
    assert chosen is not None and chosen.settings.fallback and chosen.drop_points <= 1.0
    manifest = modelpress.read_manifest(result.packages["raspberry-pi-4"])
    assert "kept in float" in " ".join(manifest.notes)
    ranking = next(note for note in result.search.notes if "ranked by their error against float" in note)
    assert ranking.split(": ", 2)[2].startswith("fc1")  # the loud layer ranks first ...
    # fc2 reads fc1's output through the same blown-up scale, so fc1 alone in float is not enough; galloping
    # tries k = 1 then k = 2 (fc1 + fc2), which fits: two trials, not one per layer
    assert [len(t.settings.fallback) for t in fallbacks] == [1, 2] and chosen is fallbacks[-1]
    assert "fc1" in chosen.settings.fallback[0]
    assert result.search.phases["raspberry-pi-4: fallback ranking"] > 0


def test_a_candidate_fitting_only_without_the_margin_is_refused(pressed, mlp_path, data_dir):
    """A heavily pruned copy loses a few points on the 359 held-out digits: a budget between its drop and its
    drop plus one standard error refuses it; a budget above drop + margin lets it pass."""
    from modelpress.compressor.data import load_data
    from modelpress.device_profiles import load_profile
    from modelpress.model_io import load_model
    from modelpress.search import Search, SearchOptions, Settings
    from modelpress.search.cache import TrialCache
    from modelpress.search.space import prune_steps

    _, folder = pressed
    model, data = load_model(mlp_path).model, load_data(data_dir / "data.npz")
    profile = load_profile("cortex-m")
    settings = Settings("prune", prune_steps(0.97), epochs=1)

    def verdict(max_drop: float):
        search = Search(model, "keras3", data, [profile], SearchOptions(max_drop=max_drop, progress=False),
                        TrialCache(folder / "cache"))
        return search.trial(profile, search.measurer(profile), settings)

    first = verdict(100.0)
    n = len(data.y_val)
    assert first.worse + first.better > 0 and first.drop_points > 0
    assert first.drop_points == pytest.approx((first.worse - first.better) / n * 100, abs=1e-3)
    var = (first.worse + first.better) / n - ((first.worse - first.better) / n) ** 2
    assert first.margin_points == pytest.approx(100 * np.sqrt(var / n), abs=1e-3) and first.margin_points > 0
    tight = verdict(first.drop_points + first.margin_points / 2)   # fits the drop alone, not with the margin
    assert tight.cached and tight.drop_points == first.drop_points
    assert not tight.within_budget and not tight.passed and tight.verdict == "over budget"
    assert verdict(first.drop_points + first.margin_points * 1.01).passed


def test_an_upgrade_does_not_answer_from_a_cache_older_code_wrote(pressed, data_dir, mlp_path, monkeypatch):
    """Every cache key holds the code's versions: the same trial after a modelpress upgrade runs again."""
    from modelpress.compressor.data import load_data
    from modelpress.device_profiles import load_profile
    from modelpress.model_io import load_model
    from modelpress.search import Search, SearchOptions, Settings
    from modelpress.search import cache as cache_module
    from modelpress.search.space import prune_steps

    _, folder = pressed
    model, data = load_model(mlp_path).model, load_data(data_dir / "data.npz")
    profile = load_profile("cortex-m")
    settings = Settings("prune", prune_steps(0.5), epochs=1)

    def trial():
        search = Search(model, "keras3", data, [profile], SearchOptions(max_drop=100.0, progress=False),
                        cache_module.TrialCache(folder / "upgrade-cache"))
        return search.trial(profile, search.measurer(profile), settings)

    assert not trial().cached
    assert trial().cached                                  # same code: the cache answers
    real_version = cache_module.metadata.version
    monkeypatch.setattr(cache_module.metadata, "version",
                        lambda name: "99.0" if name == "modelpress" else real_version(name))
    cache_module.code_versions.cache_clear()
    try:
        assert "modelpress=99.0" in cache_module.code_versions()
        assert not trial().cached                          # an upgrade: made and measured again
    finally:
        monkeypatch.undo()
        cache_module.code_versions.cache_clear()


def test_press_json_records_the_margin_per_trial(pressed):
    result, _ = pressed
    doc = json.loads(result.press_json.read_text())
    assert "standard error" in doc["reference"]["margin"]
    for trial in doc["trials"]:
        assert trial["margin_points"] >= 0
        assert trial["within_budget"] == (trial["drop_points"] + trial["margin_points"] <= 1.0 + 1e-9)
    assert "margin pt" in (result.out / "report" / "report.md").read_text()
