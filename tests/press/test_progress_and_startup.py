"""press says what runs in each phase, and press.json records what starting local worker processes cost."""

from __future__ import annotations

import json


def test_the_progress_line_names_each_phase_as_it_runs(runner, cli, tmp_path, data_dir, mlp_path):
    result = runner.invoke(cli, ["press", str(mlp_path), "-p", "raspberry-pi-4", "-d", str(data_dir / "data.npz"),
                                 "-o", str(tmp_path / "out"), "--only", "prune", "--epochs", "1", "--no-cache",
                                 "--max-drop", "5"])
    assert result.exit_code == 0, result.output
    shown = result.stderr
    assert "press raspberry-pi-4: fine-tuning prune" in shown and "1 epoch(s)" in shown
    for phase in ("converting to int8", "scoring on 359 held-out samples", "timing latency"):
        assert f"press raspberry-pi-4: {phase}" in shown, phase
    # the result table goes to stdout, the progress line to stderr only
    assert "fine-tuning" not in result.stdout


def test_the_progress_line_names_training_by_its_first_step():
    """A pruned or gated candidate ends on the int4 grid (a short QAT step): it is still fine-tuning or gate
    training, not quantization-aware training (a new user's run said "quantization-aware training L0 gates")."""
    from modelpress.search.engine import _training_text
    from modelpress.search.space import Settings, l0_steps

    grid = {"type": "qat", "bits": 4, "epochs": 1}
    pruned = Settings("prune", ({"type": "prune", "sparsity": 0.9}, grid), epochs=3, quantization="int4")
    gated = Settings("l0", (*l0_steps(17.8, 3, 18000), grid), epochs=3, quantization="int4")
    qat = Settings("qat", ({"type": "qat", "epochs": 4},), epochs=4)
    assert _training_text(pruned).startswith("fine-tuning prune 90%") and "4 epoch(s)" in _training_text(pruned)
    assert _training_text(gated).startswith("training L0 gates") and "31 epoch(s)" in _training_text(gated)
    assert _training_text(qat).startswith("quantization-aware training")


def test_press_json_records_worker_start_up_with_two_workers(tmp_path, mlp_path, data_dir):
    import modelpress

    result = modelpress.press(mlp_path, ["raspberry-pi-4"], data_dir / "data.npz", out=tmp_path / "out",
                              max_drop=5.0, families=["quantize"], use_cache=False, progress=False, workers=2)
    execution = json.loads(result.press_json.read_text())["execution"]
    assert execution["kind"] == "processes"
    startup = execution["worker_startup_s"]
    ran = {t.worker for t in result.search.trials if not t.cached}
    assert {w["worker"] for w in startup["workers"]} == ran and 1 <= len(ran) <= 2
    for worker in startup["workers"]:
        assert worker["seconds"] > worker["search_s"] > 0
    assert startup["max"] == max(w["seconds"] for w in startup["workers"]) and startup["median"] <= startup["max"]


def test_one_worker_runs_in_the_driver_and_records_no_start_up(pressed):
    result, _ = pressed
    assert "worker_startup_s" not in json.loads(result.press_json.read_text())["execution"]
