"""Run a model on TFLite Micro's own kernels (the ``tflite-micro`` wheel's host interpreter).

    micro = MicroModel(data, arena_bytes=64_000)      # ConstraintError naming an op TFLite Micro lacks
    outputs = micro.run([x_int8])                     # one sample, raw integer outputs

TFLite Micro reports through ``MicroPrintf``, which writes to file descriptor 2; it is captured here so
that a failure becomes one message with TFLite Micro's own reason.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator

import numpy as np

from modelpress.errors import ConstraintError, ConversionError, ModelpressError

INSTALL_HINT = "pip install 'modelpress[mcu]' (tflite-micro and ethos-u-vela)"
_MISSING_OP = re.compile(r"Didn't find op for builtin opcode '([A-Z0-9_]+)'|"
                         r"Failed to get registration from op code ([A-Za-z0-9_-]+)")


class MicroError(ConversionError):
    """TFLite Micro could not load or run the model; the message carries its own reason."""


def require_tflite_micro(who: str = "running a model on TFLite Micro"):
    """The ``tflite_micro`` runtime module, or a ModelpressError saying how to install it.

        runtime = require_tflite_micro("profile cortex-m")
    """
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        raise ModelpressError(f"{who} builds a microcontroller package, checked on TFLite Micro, which is not "
                              f"installed: {INSTALL_HINT}") from None
    return runtime


def micro_version() -> str:
    """The installed tflite-micro build: ``micro_version() == "0.dev20261023182759-g8f6596d"``."""
    from tflite_micro.python.tflite_micro import _version

    return str(_version.__version__)


@contextlib.contextmanager
def captured_fd2() -> Iterator[list[str]]:
    """Collect what native code writes to fd 2 (TFLite Micro's log) into the yielded list.

        with captured_fd2() as lines:
            interpreter.print_allocations()
        lines   # ['[RecordingMicroAllocator] Arena allocation total 6272 bytes', ...]
    """
    lines: list[str] = []
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode("utf-8", "replace").splitlines())


def _reason(lines: list[str], fallback: str) -> str:
    text = "; ".join(line.strip() for line in lines if line.strip())
    return text[:400] if text else fallback


def missing_ops(lines: list[str]) -> list[str]:
    """Op names TFLite Micro said it has no kernel for, from its log lines.

        missing_ops(["Didn't find op for builtin opcode 'GELU'"]) == ["GELU"]
    """
    found = []
    for line in lines:
        for match in _MISSING_OP.finditer(line):
            found.append(match.group(1) or match.group(2))
    return list(dict.fromkeys(found))


class MicroModel:
    """One TFLite Micro interpreter over ``data`` with an arena of ``arena_bytes``.

        MicroModel(data, 20_000).run([np.zeros((1, 8, 8, 1), np.int8)])[0]   # int8 scores
    """

    def __init__(self, data: bytes, arena_bytes: int):
        runtime = require_tflite_micro()
        self.arena_bytes = int(arena_bytes)
        with captured_fd2() as log:
            try:
                self._interpreter = runtime.Interpreter.from_bytes(data, arena_size=self.arena_bytes)
                error = None
            except (RuntimeError, ValueError) as err:
                error = err
        self.log = log
        self.output_count = _output_count(data)
        if error is not None:
            ops = missing_ops(log)
            if ops:
                raise ConstraintError(f"TFLite Micro has no kernel for op(s) {', '.join(ops)} (it says: "
                                      f"{_reason(log, str(error))}); a microcontroller cannot run this model. "
                                      "Replace the layers that produce them and convert again")
            raise MicroError(f"TFLite Micro cannot prepare the model with a {self.arena_bytes:,}-byte arena: "
                             f"{_reason(log, str(error))}")

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Invoke on one sample per input (batch dimension 1); the raw outputs in model order."""
        with captured_fd2() as log:
            try:
                for index, value in enumerate(inputs):
                    self._interpreter.set_input(value, index)
                self._interpreter.invoke()
                error = None
            except (RuntimeError, ValueError) as err:
                error = err
        if error is not None:
            raise MicroError(f"TFLite Micro failed to run the model: {_reason(log, str(error))}")
        return [np.array(self._interpreter.get_output(k), copy=True) for k in range(self.output_count)]

    def allocations(self) -> dict[str, int]:
        """The arena's head (tensor data) and tail (persistent) bytes, from TFLite Micro's recording allocator."""
        with captured_fd2() as log:
            self._interpreter.print_allocations()
        found = {}
        for line in log:
            match = re.search(r"Arena allocation (total|head|tail) (\d+) bytes", line)
            if match:
                found[f"{match.group(1)}_bytes"] = int(match.group(2))
        return found


def _output_count(data: bytes) -> int:
    import tflite

    return int(tflite.Model.GetRootAsModel(data, 0).Subgraphs(0).OutputsLength())
