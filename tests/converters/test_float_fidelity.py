"""The float32 criterion fits each output's scale: a detector with three sigmoid heads whose float32
conversion differs by ordinary float reordering (max |err| above 1e-4) converts for server-cpu, a user's
--max-abs-error tightens or loosens the bound, and each refusal's advice fits what was done to the model."""

from __future__ import annotations

import json

import numpy as np
import pytest

import modelpress
from modelpress.errors import FidelityError, UsageError
from modelpress.testing.detectors import HEADS, three_sigmoid_detector

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    """(model path, verification inputs path) of the three-sigmoid detector."""
    folder = tmp_path_factory.mktemp("detector")
    model, x = three_sigmoid_detector()
    model.save(folder / "detector.keras")
    np.save(folder / "spectrograms.npy", x)
    return folder / "detector.keras", folder / "spectrograms.npy"


def test_float_reordering_passes_server_cpu_through_the_cli(detector, runner, cli, tmp_path):
    model, x = detector
    result = runner.invoke(cli, ["convert", str(model), "--profile", "server-cpu", "--verify-data", str(x),
                                 "--out", str(tmp_path / "cpu"), "--json"])
    assert result.exit_code == 0, result.output
    fidelity = json.loads(result.output)["fidelity"]
    per_output = fidelity["outputs"]
    assert sorted(per_output) == sorted(HEADS)
    # the case the old absolute bound (1e-4) refused: float32 rounding above 1e-4 on some head ...
    assert fidelity["max_abs_error"] > 1e-4
    assert fidelity["mean_abs_error"] < 1e-4
    # ... which is well inside 1% of each sigmoid's range over the samples
    assert fidelity["max_relative_error_allowed"] == 0.01 and fidelity["max_abs_error_allowed"] is None
    for out in per_output.values():
        assert 0.5 < out["scale"] <= 1.0
        assert out["max_relative_error"] == pytest.approx(out["max_abs_error"] / out["scale"])
        assert out["max_relative_error"] < 0.01
    report = runner.invoke(cli, ["convert", str(model), "--profile", "server-cpu", "--verify-data", str(x),
                                 "--out", str(tmp_path / "cpu")])
    assert report.exit_code == 0, report.output
    assert "of its range" in report.output


def test_a_tighter_bound_refuses_float32_with_float_advice(detector, runner, cli, tmp_path):
    model, x = detector
    result = runner.invoke(cli, ["convert", str(model), "--profile", "server-cpu", "--verify-data", str(x),
                                 "--max-abs-error", "1e-5", "--out", str(tmp_path / "cpu")])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert "profile server-cpu allows at most 1e-05" in result.output
    assert "Nothing was quantized" in result.output and "--max-abs-error" in result.output
    assert "milder quantization" not in result.output
    assert not (tmp_path / "cpu").exists()


def test_a_bound_set_in_python_replaces_the_profile_s(detector, tmp_path):
    model, x = detector
    art = modelpress.convert(model, "server-cpu", tmp_path / "loose", verify_data=x, max_abs_error=5e-3)
    fidelity = art.manifest.fidelity
    assert fidelity["max_abs_error_allowed"] == 5e-3 and fidelity["max_relative_error_allowed"] is None
    assert fidelity["max_abs_error"] <= 5e-3
    with pytest.raises(FidelityError, match=r"output '\w+': max absolute error .*allows at most 1e-06\. "
                                            r"Nothing was quantized"):
        modelpress.convert(model, "server-cpu", tmp_path / "tight", verify_data=x, max_abs_error=1e-6)


def test_a_quantized_refusal_suggests_a_milder_mode(detector, tmp_path):
    model, x = detector
    with pytest.raises(FidelityError) as err:
        modelpress.convert(model, "server-cpu", tmp_path / "dyn", verify_data=x, quantization="dynamic",
                           max_abs_error=1e-6)
    message = str(err.value)
    assert "Choose a milder quantization than dynamic (--quantization float16)" in message
    assert "--max-abs-error" in message and "Nothing was quantized" not in message


def test_relative_bound_in_a_user_profile_refuses_with_the_range(detector, tmp_path):
    model, x = detector
    strict = tmp_path / "strict.yaml"
    strict.write_text("name: strict\nmax_relative_error: 0.0000001\n")
    with pytest.raises(FidelityError, match=r"[\d.]+% of the output's range [\d.]+; profile strict allows "
                                            r"1e-05% of the range\. Nothing was quantized"):
        modelpress.convert(model, strict, tmp_path / "pkg", verify_data=x)


@pytest.mark.parametrize("bound", [-1.0, "tight", True])
def test_a_bad_bound_is_named(detector, tmp_path, bound):
    with pytest.raises(UsageError, match=r"max_abs_error .* must be a number 0 or more"):
        modelpress.convert(detector[0], "server-cpu", tmp_path / "pkg", max_abs_error=bound)


def test_a_negative_bound_on_the_cli_is_a_usage_error(detector, runner, cli, tmp_path):
    result = runner.invoke(cli, ["convert", str(detector[0]), "--profile", "server-cpu", "--max-abs-error", "-1",
                                 "--out", str(tmp_path / "pkg")])
    assert result.exit_code == 2 and "--max-abs-error" in result.output
