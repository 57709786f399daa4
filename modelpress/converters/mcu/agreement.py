"""TFLite Micro held against LiteRT on the same integer inputs: does the firmware compute what was verified?

    agreement = compare_with_litert(data, x_verify, arena_bytes=8_000, source="verify.npy")
    agreement.max_lsb, agreement.kernels        # 0, 'optimized'

LiteRT has two kernel sets that round differently: its reference kernels (the op definitions TFLite
Micro's kernels are ported from) and its optimized built-ins; on real models they differ from each
other by many steps (16 LSB on ``fer``). TFLite Micro passes when every integer output is within
``max_lsb`` steps (1 by default) of one of them on every sample; otherwise FidelityError names the
worst output value, the op where TFLite Micro and that kernel set first part (every intermediate
tensor compared) and how often TFLite Micro still picks the same top class. The gap to LiteRT with
its default XNNPACK delegate (what ``modelpress serve`` runs) is recorded, not enforced.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from modelpress.converters.mcu.micro_check import MicroModel, captured_fd2, micro_version, require_tflite_micro
from modelpress.errors import FidelityError, excerpt

MAX_LSB = 1
PRESERVE_BYTES = 16 * 1024 * 1024  # every intermediate tensor kept: room beyond the planned arena
KERNELS = ("reference", "optimized")


@dataclass
class MicroAgreement:
    samples: int
    max_lsb: int               # against the closer kernel set, named in ``kernels``
    kernels: str
    max_lsb_reference: int
    max_lsb_optimized: int
    max_lsb_xnnpack: int
    differing_values: int      # beyond ``max_lsb_allowed``, against ``kernels``
    equal_outputs: float
    top1_agreement: float      # TFLite Micro's top class equal to LiteRT's (``kernels``)
    max_lsb_allowed: int
    data: str
    runtime: str

    def to_dict(self) -> dict:
        return asdict(self)


class LiteRT:
    """LiteRT on raw integer tensors with one kernel set: ``reference``, ``optimized`` or ``xnnpack``.

        LiteRT(data, "reference").run(x_int8[:1])[0]
    """

    def __init__(self, data: bytes, kernels: str, preserve: bool = False):
        try:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
        except ImportError:  # the full environment's TensorFlow carries the same interpreter
            import tensorflow as tf

            Interpreter, OpResolverType = tf.lite.Interpreter, tf.lite.experimental.OpResolverType
        kind = {"reference": OpResolverType.BUILTIN_REF, "xnnpack": OpResolverType.AUTO,
                "optimized": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}[kernels]
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


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """Real values to the model's integer input type, as LiteRT and a firmware would.

        quantize(np.array([0.0, 1.0]), scale=1 / 255, zero_point=-128, dtype=np.int8)   # [-128, 127]
    """
    info = np.iinfo(dtype)
    return np.clip(np.round(x.astype(np.float32) / scale + zero_point), info.min, info.max).astype(dtype)


def integer_inputs(data: bytes, x: np.ndarray) -> np.ndarray:
    """``x`` (real values) as the model's first input type, quantized with its scale and zero point.

        x_int8 = integer_inputs(Path("pkg/model.tflite").read_bytes(), x_verify[:1])
    """
    detail = LiteRT(data, "optimized").inputs[0]
    scale, zero_point = detail["quantization"]
    dtype = np.dtype(detail["dtype"])
    if scale and np.issubdtype(dtype, np.integer):
        return quantize(x, scale, zero_point, dtype)
    return x.astype(dtype)


def first_divergence(data: bytes, sample: np.ndarray, kernels: str = "optimized") -> str:
    """Where TFLite Micro and LiteRT's ``kernels`` first part on ``sample``: the op, its output tensor
    and by how many steps, found by keeping every intermediate tensor in both.

        first_divergence(data, x_int8[:1])   # "op #2 CONV_2D (output 'conv1/...'): 1 LSB"
    """
    import tflite

    runtime = require_tflite_micro()
    reference = LiteRT(data, kernels, preserve=True)
    reference.run(sample)
    with captured_fd2():
        micro = runtime.Interpreter.from_bytes(data, arena_size=4 * len(data) + PRESERVE_BYTES,
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


class _Tally:
    """Differences between TFLite Micro's outputs and one LiteRT kernel set, over all samples."""

    def __init__(self, names: list[str]):
        self.names, self.worst, self.worst_at, self.worst_sample = names, -1, "", 0
        self.values = self.equal = self.same_top = 0
        self.diffs: list[np.ndarray] = []

    def add(self, i: int, want: list[np.ndarray], got: list[np.ndarray]) -> None:
        self.same_top += int(all(np.argmax(w.reshape(-1)) == np.argmax(g.reshape(-1)) for w, g in zip(want, got)))
        for k, (w, g) in enumerate(zip(want, got)):
            g = g.reshape(w.shape).astype(np.int64)
            diff = np.abs(w.astype(np.int64) - g)
            self.values += diff.size
            self.equal += int((diff == 0).sum())
            self.diffs.append(diff.reshape(-1))
            if diff.size and int(diff.max()) > self.worst:
                j = int(diff.argmax())
                self.worst, self.worst_sample = int(diff.max()), i
                self.worst_at = (f"output {self.names[k]!r}, sample {i}, element {j}: TFLite Micro "
                                 f"{int(g.reshape(-1)[j])} vs LiteRT {int(w.reshape(-1)[j])}")

    def beyond(self, bound: int) -> int:
        return int(sum(int((d > bound).sum()) for d in self.diffs))


def compare_with_litert(data: bytes, x: np.ndarray, arena_bytes: int, source: str,
                        max_lsb: int = MAX_LSB) -> MicroAgreement:
    """Run every sample of ``x`` (real values) through TFLite Micro and LiteRT's kernel sets; FidelityError
    when no kernel set is within ``max_lsb`` steps of TFLite Micro on every output value.

        compare_with_litert(data, verify_x[:200], arena_bytes=8_000, source="verify.npy").max_lsb
    """
    x_int = integer_inputs(data, x)
    micro = MicroModel(data, arena_bytes)
    runs = {kernels: LiteRT(data, kernels) for kernels in (*KERNELS, "xnnpack")}
    names = [d["name"] for d in runs["optimized"].outputs]
    tallies = {kernels: _Tally(names) for kernels in runs}
    for i in range(len(x_int)):
        sample = x_int[i:i + 1]
        got = micro.run([sample])
        for kernels, litert in runs.items():
            tallies[kernels].add(i, litert.run(sample), got)
    closest = min(KERNELS, key=lambda k: (tallies[k].worst, KERNELS.index(k)))
    best, n = tallies[closest], max(len(x_int), 1)
    if best.worst > max_lsb:
        raise FidelityError(
            f"TFLite Micro and LiteRT disagree by up to {best.worst} LSB (LiteRT's {closest} kernels, the closer of "
            f"its two sets; {best.beyond(max_lsb)} of {best.values} output values differ by more than {max_lsb}; "
            f"worst at {best.worst_at}). They first part at "
            f"{first_divergence(data, x_int[best.worst_sample:best.worst_sample + 1], closest)} and the gap grows "
            f"through the graph; TFLite Micro picks LiteRT's top class on {best.same_top / n:.1%} of {len(x_int)} "
            "samples. The firmware would not compute what was verified: if that agreement is enough, allow it with "
            f"micro_max_lsb: {best.worst} in a profile YAML (start from `modelpress profiles show NAME`)")
    return MicroAgreement(
        samples=len(x_int), max_lsb=max(best.worst, 0), kernels=closest,
        max_lsb_reference=max(tallies["reference"].worst, 0), max_lsb_optimized=max(tallies["optimized"].worst, 0),
        max_lsb_xnnpack=max(tallies["xnnpack"].worst, 0), differing_values=best.beyond(max_lsb),
        equal_outputs=best.equal / max(best.values, 1), top1_agreement=best.same_top / n, max_lsb_allowed=max_lsb,
        data=source, runtime=f"tflite-micro {micro_version()}")
