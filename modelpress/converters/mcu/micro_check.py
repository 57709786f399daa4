"""Run a model on TFLite Micro's own kernels (the ``tflite-micro`` wheel) and hold it against LiteRT.

    micro = MicroModel(data, arena_bytes=64_000)      # MicroError naming the op TFLite Micro lacks
    outputs = micro.run([x_int8])                     # one sample, raw integer outputs
    agreement = compare_with_litert(data, x_float, arena_bytes=64_000)
    agreement.max_lsb                                 # 0 or 1, else FidelityError says what differs

TFLite Micro reports through ``MicroPrintf``, which writes to file descriptor 2; it is captured here so
that a failure becomes one message with TFLite Micro's own reason.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np

from modelpress.errors import ConstraintError, ConversionError, FidelityError, ModelpressError, excerpt

INSTALL_HINT = "pip install 'modelpress[mcu]' (tflite-micro and ethos-u-vela)"
_MISSING_OP = re.compile(r"Didn't find op for builtin opcode '([A-Z0-9_]+)'|"
                         r"Failed to get registration from op code ([A-Za-z0-9_-]+)")
MAX_LSB = 1
LIMIT_PRESERVE = 16 * 1024 * 1024  # every intermediate tensor kept: room beyond the planned arena


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


@dataclass
class MicroAgreement:
    """TFLite Micro against LiteRT on the same integer inputs.

    ``max_lsb`` is against LiteRT's built-in kernels (the reference the check enforces);
    ``max_lsb_xnnpack`` against LiteRT with its default XNNPACK delegate (what ``modelpress serve``
    runs), recorded for information: XNNPACK rounds some int8 ops (softmax) its own way.
    """

    samples: int
    max_lsb: int
    differing_values: int
    equal_outputs: float
    max_lsb_xnnpack: int
    top1_agreement: float
    max_lsb_allowed: int
    data: str
    runtime: str

    def to_dict(self) -> dict:
        return asdict(self)


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """Real values to the model's integer input type, as LiteRT and a firmware would.

        quantize(np.array([0.0, 1.0]), scale=1 / 255, zero_point=-128, dtype=np.int8)   # [-128, 127]
    """
    info = np.iinfo(dtype)
    return np.clip(np.round(x.astype(np.float32) / scale + zero_point), info.min, info.max).astype(dtype)


class _LiteRT:
    """LiteRT on raw integer tensors, with its built-in kernels or with the default (XNNPACK) delegate."""

    def __init__(self, data: bytes, builtin_only: bool, preserve: bool = False):
        try:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
        except ImportError:  # the full environment's TensorFlow carries the same interpreter
            import tensorflow as tf

            Interpreter, OpResolverType = tf.lite.Interpreter, tf.lite.experimental.OpResolverType
        kind = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if builtin_only else OpResolverType.AUTO
        self._it = Interpreter(model_content=data, experimental_op_resolver_type=kind,
                               experimental_preserve_all_tensors=preserve)
        self._it.allocate_tensors()
        self.inputs = self._it.get_input_details()
        self.outputs = self._it.get_output_details()

    def run(self, sample: np.ndarray) -> list[np.ndarray]:
        self._it.set_tensor(self.inputs[0]["index"], sample)
        self._it.invoke()
        return [self._it.get_tensor(d["index"]).copy() for d in self.outputs]

    def tensor(self, index: int) -> np.ndarray:
        return self._it.get_tensor(index)


def integer_inputs(data: bytes, x: np.ndarray) -> np.ndarray:
    """``x`` (real values) as the model's first input type, quantized with its scale and zero point.

        x_int8 = integer_inputs(Path("pkg/model.tflite").read_bytes(), x_verify[:1])
    """
    detail = _LiteRT(data, builtin_only=True).inputs[0]
    scale, zero_point = detail["quantization"]
    dtype = np.dtype(detail["dtype"])
    if scale and np.issubdtype(dtype, np.integer):
        return quantize(x, scale, zero_point, dtype)
    return x.astype(dtype)


def first_divergence(data: bytes, sample: np.ndarray) -> str:
    """Where TFLite Micro and LiteRT's built-in kernels first part on ``sample``: the op, its output tensor
    and by how many steps, found by keeping every intermediate tensor in both.

        first_divergence(data, x_int8[:1])   # "op #2 CONV_2D (output 'conv1/...'): 1 LSB"
    """
    import tflite

    runtime = require_tflite_micro()
    reference = _LiteRT(data, builtin_only=True, preserve=True)
    reference.run(sample)
    with captured_fd2():
        micro = runtime.Interpreter.from_bytes(data, arena_size=4 * len(data) + LIMIT_PRESERVE,
                                               intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
        micro.set_input(sample, 0)
        micro.invoke()
    model = tflite.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    for o in range(graph.OperatorsLength()):
        op = graph.Operators(o)
        for index in (int(i) for i in op.OutputsAsNumpy() if i >= 0):
            want = reference.tensor(index)
            with captured_fd2():
                got = np.asarray(micro.GetTensor(index, 0)["tensor_data"])
            if got.size != want.size or not np.issubdtype(want.dtype, np.integer):
                continue
            diff = int(np.abs(want.astype(np.int64) - got.reshape(want.shape).astype(np.int64)).max(initial=0))
            if diff:
                code = model.OperatorCodes(op.OpcodeIndex())
                name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
                tensor = graph.Tensors(index).Name().decode("utf-8", "replace")
                return f"op #{o} {name} (output {excerpt(tensor, 60)!r}): {diff} LSB"
    return "no intermediate tensor differs"


def compare_with_litert(data: bytes, x: np.ndarray, arena_bytes: int, source: str,
                        max_lsb: int = MAX_LSB) -> MicroAgreement:
    """Run every sample of ``x`` (real values) through TFLite Micro and LiteRT; FidelityError when an
    integer output differs from LiteRT's built-in kernels by more than ``max_lsb`` steps, naming the op
    where the two first part.

        compare_with_litert(data, verify_x[:200], arena_bytes=8_000, source="verify.npy").max_lsb
    """
    reference, served = _LiteRT(data, builtin_only=True), _LiteRT(data, builtin_only=False)
    x_int = integer_inputs(data, x)
    micro = MicroModel(data, arena_bytes)
    worst, worst_served, differing, equal, total, same_top = -1, 0, 0, 0, 0, 0
    worst_at, worst_sample = "", 0
    for i in range(len(x_int)):
        sample = x_int[i:i + 1]
        got = micro.run([sample])
        want_all = reference.run(sample)
        same_top += int(all(np.argmax(w.reshape(-1)) == np.argmax(g.reshape(-1)) for w, g in zip(want_all, got)))
        for k, (w, s, g) in enumerate(zip(want_all, served.run(sample), got)):
            g = g.reshape(w.shape).astype(np.int64)
            diff = np.abs(w.astype(np.int64) - g)
            worst_served = max(worst_served, int(np.abs(s.astype(np.int64) - g).max(initial=0)))
            total += diff.size
            equal += int((diff == 0).sum())
            differing += int((diff > max_lsb).sum())
            if diff.size and int(diff.max()) > worst:
                worst, worst_sample = int(diff.max()), i
                j = int(diff.argmax())
                worst_at = (f"output {reference.outputs[k]['name']!r}, sample {i}, element {j}: TFLite Micro "
                            f"{int(g.reshape(-1)[j])} vs LiteRT {int(w.reshape(-1)[j])}")
    top1 = same_top / max(len(x_int), 1)
    if worst > max_lsb:
        raise FidelityError(
            f"TFLite Micro and LiteRT disagree by up to {worst} LSB ({differing} of {total} output values differ "
            f"by more than {max_lsb}; worst at {worst_at}). They first part at "
            f"{first_divergence(data, x_int[worst_sample:worst_sample + 1])} and the gap grows through the graph; "
            f"TFLite Micro picks LiteRT's top class on {top1:.1%} of {len(x_int)} samples. The firmware would not "
            f"compute what was verified: if that agreement is enough, allow it with micro_max_lsb: {worst} in a "
            "profile YAML (start from `modelpress profiles show NAME`)")
    return MicroAgreement(samples=len(x_int), max_lsb=max(worst, 0), differing_values=differing,
                          equal_outputs=equal / max(total, 1), max_lsb_xnnpack=worst_served, top1_agreement=top1,
                          max_lsb_allowed=max_lsb, data=source, runtime=f"tflite-micro {micro_version()}")
