"""Native crashes never escape: conversion, calibration and the first invoke run in a child process, so a
signal becomes one error naming the step and the signal (exit 5), and nothing half-written is left."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from modelpress.converters.isolation import run_isolated, step
from modelpress.errors import ConversionError, DataError
from modelpress.testing.models import crash_prone_keras_model

pytestmark = pytest.mark.integration


def _die(sig: int) -> None:
    step("a step that dies")
    os.kill(os.getpid(), sig)


def _answer(x: np.ndarray) -> np.ndarray:
    return x * 2


def _refuse() -> None:
    raise DataError("bad data, said the child")


def _break() -> None:
    raise ZeroDivisionError("division by zero")


def test_results_and_errors_come_back_from_the_child():
    np.testing.assert_array_equal(run_isolated("doubling", _answer, np.arange(3)), [0, 2, 4])
    with pytest.raises(DataError, match="bad data, said the child"):
        run_isolated("refusing", _refuse)
    with pytest.raises(ConversionError, match="breaking failed: ZeroDivisionError: division by zero"):
        run_isolated("breaking", _break)


@pytest.mark.parametrize("sig", [signal.SIGFPE, signal.SIGSEGV, signal.SIGABRT])
def test_a_signal_becomes_an_error_naming_the_step(sig):
    with pytest.raises(ConversionError) as err:
        run_isolated("outer step", _die, sig)
    assert f"a step that dies crashed in native code (signal {signal.Signals(sig).name}" in str(err.value)
    assert run_isolated("after the crash", _answer, 1) == 2  # the server lives on


def test_int8_calibration_that_dies_of_sigfpe_is_one_error_line(runner, cli, tmp_path):
    model = crash_prone_keras_model()
    model.save(tmp_path / "spectro.keras")
    np.save(tmp_path / "one_frame.npy", np.random.default_rng(0).random((20, 4, 1, 1), dtype=np.float32))
    # the converter's own calibration is what dies (LiteRT's quantizer, raspberry-pi-4's default, calibrates
    # this model without a crash): a copy of the profile that quantizes with the converter
    (tmp_path / "rpi.yaml").write_text("name: rpi-converter\nquantization: int8\nop_set: int8_builtins\n"
                                       "quantizer: converter\n")
    result = runner.invoke(cli, ["convert", str(tmp_path / "spectro.keras"), "-p", str(tmp_path / "rpi.yaml"),
                                 "-o", str(tmp_path / "pkg"), "-c", str(tmp_path / "one_frame.npy")])
    assert result.exit_code == ConversionError.exit_code == 5
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(
        "Error: TFLite conversion (int8 by the converter, with calibration) crashed")
    assert "SIGFPE" in lines[0] and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one_frame.npy", "rpi.yaml", "spectro.keras"]
