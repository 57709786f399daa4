"""Measure one candidate for one profile: convert, check the profile's constraints, score on held-out data.

    m = Measurer(profile, x_val, y_val, calibration=x_train[:300])
    blob, row = m.measure(keras_model, "int8")      # row: accuracy, bytes, gzip_bytes, p50_ms, problems, ops
    m.accuracy(blob, x_val[:300], y_val[:300])      # a quick score on a ranking subset

With ``source_correct`` (which held-out samples the source model gets right), a row also counts the samples
the candidate newly gets wrong (``worse``) and newly right (``better``): the drop's standard error needs them.

Latency is single-sample p50 on this host with the profile's thread count (capped by the cores here): it ranks
candidates against each other; it is not the device's own latency. It is timed in ``LATENCY_ROUNDS`` rounds and
reported as the median of the rounds' p50s with half their range as the spread: on a shared machine two
measurements of one model differ by 15%, so a difference inside the spreads is noise, not a faster model.
:func:`interleaved_latency` re-times several candidates round-robin (every round times each once), so a busy
moment falls on all of them alike: press does that for the contenders before it picks the fastest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from modelpress.compressor.report import accuracy as top1
from modelpress.converters.constraints import check_constraints
from modelpress.converters.stripping import strip_strings
from modelpress.converters.tflite import to_tflite_bytes
from modelpress.cpus import threads_for
from modelpress.device_profiles import DeviceProfile
from modelpress.files import gzip_bytes
from modelpress.latency import measure_latency
from modelpress.model_io import load_model
from modelpress.tflite_graph import read_graph
from modelpress.tflite_interpreter import TFLiteModel

LATENCY_RUNS = 100
LATENCY_ROUNDS = 5
EVAL_BATCH = 500


def io_dtypes(profile: DeviceProfile, quantization: str) -> tuple[str, str]:
    """The artifact's (input, output) dtypes: the profile's for int8, widened for the others::

        io_dtypes(load_profile("cortex-m"), "int8")      # ('int8', 'int8')
    """
    if quantization == "int8":
        return profile.input_dtype, profile.output_dtype
    integer = {"int8", "uint8", "int16"}
    if quantization == "int16x8":
        pair = ["int16" if d in integer else "float32" for d in (profile.input_dtype, profile.output_dtype)]
        return pair[0], pair[1]
    return "float32", "float32"


def correct(y_true: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Per sample, whether the top-1 prediction is right (the same rule as the accuracy figures)::

        correct(np.array([1, 0]), np.array([[0.2, 0.8], [0.3, 0.7]]))     # array([ True, False])
    """
    outputs, y = np.asarray(outputs), np.asarray(y_true)
    if y.ndim > 1 and y.shape[-1] > 1:
        y = y.argmax(axis=-1)
    y = y.reshape(-1)
    if outputs.ndim == 1 or outputs.shape[-1] == 1:
        return (outputs.reshape(-1) > 0.5).astype(np.int64) == y
    return outputs.argmax(axis=-1) == y


class Measurer:
    """Converts and scores candidates for one profile on fixed held-out data."""

    def __init__(self, profile: DeviceProfile, x_val: np.ndarray, y_val: np.ndarray, calibration: np.ndarray,
                 latency_runs: int = LATENCY_RUNS, source_correct: np.ndarray | None = None):
        self.profile, self.x_val, self.y_val, self.calibration = profile, x_val, y_val, calibration
        self.source_correct = source_correct
        self.latency_runs = latency_runs
        self.threads = threads_for(profile.threads)

    def convert(self, model: Any, quantization: str, fallback: tuple[str, ...] = ()) -> bytes:
        if fallback and self.profile.quantizes_with == "litert":
            from modelpress.search.fallback import mixed_int8

            source = load_model(model)
            return mixed_int8(to_tflite_bytes(source, "none"), self.calibration, fallback, source.input_specs()[0].name,
                              self.profile.hardware, self.threads)
        if fallback:
            from modelpress.search.fallback import selective_int8

            return selective_int8(model, self.calibration, fallback)
        inp, out = io_dtypes(self.profile, quantization)
        integer = quantization in ("int8", "int16x8")
        op_set = self.profile.op_set if integer or self.profile.op_set == "select_tf_ops" else "builtins"
        return to_tflite_bytes(load_model(model), quantization,
                               calibration=self.calibration if integer else None, input_dtype=inp,
                               output_dtype=out, op_set=op_set, batch_size=1 if self.profile.static_batch else None,
                               quantizer=self.profile.quantizes_with, hardware=self.profile.hardware,
                               threads=self.threads)

    def outputs(self, blob: bytes, x: np.ndarray) -> np.ndarray:
        interpreter = TFLiteModel(blob, threads=1)
        step = 1 if interpreter.fixed_batch else EVAL_BATCH
        if step == 1:
            return np.concatenate([interpreter.predict([x[i:i + 1]])[0] for i in range(len(x))])
        return np.concatenate([interpreter.predict([x[i:i + step]])[0] for i in range(0, len(x), step)])

    def accuracy(self, blob: bytes, x: np.ndarray | None = None, y: np.ndarray | None = None) -> float:
        x = self.x_val if x is None else x
        y = self.y_val if y is None else y
        return top1(y, self.outputs(blob, x))

    def latency_ms(self, blob: bytes) -> tuple[float, float]:
        """(p50, spread) in milliseconds: the median of ``LATENCY_ROUNDS`` rounds' p50 and half their range."""
        return interleaved_latency([blob], self.x_val[:1], self.threads, self.latency_runs)[0]

    def measure(self, model: Any, quantization: str, fallback: tuple[str, ...] = (),
                reference_outputs: np.ndarray | None = None,
                phase: Callable[[str], None] | None = None, strip: bool = False,
                slower_than_ms: float | None = None) -> tuple[bytes, dict[str, Any]]:
        """Convert ``model`` and measure it; ConversionError when the converter refuses. ``phase`` is told each
        step as it starts (converting, scoring, timing). With ``strip`` the file loses the strings a deployed
        model does not need (:func:`modelpress.converters.stripping.strip_strings`) before it is measured. With
        ``slower_than_ms`` it is timed first, and one that runs slower than that even at its fastest is not
        scored (``row["not_scored"]`` says why): a latency search cannot choose it, and scoring a slow int16x8
        ResNet on 6,000 samples took 234 s of a 10-minute budget."""
        phase = phase or (lambda text: None)
        phase(f"converting to {quantization}" + (f" ({len(fallback)} layer(s) kept wider)" if fallback else ""))
        blob = self.convert(model, quantization, fallback)
        if strip:
            blob = strip_strings(blob)
        graph = read_graph(blob)
        interpreter = TFLiteModel(blob, threads=1)
        want = ("float32", "float32") if fallback else io_dtypes(self.profile, quantization)
        problems = check_constraints(self.profile, len(blob), graph, interpreter.input_specs(),
                                     interpreter.output_specs(), want)
        if fallback and self.profile.hardware in ("edgetpu", "mcu"):
            problems.append(f"{len(fallback)} layer(s) in float: {self.profile.hardware} runs full-integer models only")
        row: dict[str, Any] = {"accuracy": None, "bytes": len(blob), "gzip_bytes": gzip_bytes(blob),
                               "problems": problems, "ops": list(dict.fromkeys(graph.ops))}
        if slower_than_ms is not None:  # timed first: one slower than float32 even at its fastest is not scored
            phase(f"timing latency ({self.threads} thread(s))")
            row["p50_ms"], row["p50_spread_ms"] = p50, spread = self.latency_ms(blob)
            if p50 - spread > slower_than_ms:
                row["not_scored"] = (f"not scored: {p50:.3f} ms (± {spread:.3f}) is slower than float32's "
                                     f"{slower_than_ms:.3f} ms, so a latency search cannot choose it")
                return blob, row
        phase(f"scoring on {len(self.x_val)} held-out samples")
        outputs = self.outputs(blob, self.x_val)
        if reference_outputs is not None and reference_outputs.ndim == 2 and reference_outputs.shape[1] > 1:
            agreement = float(np.mean(reference_outputs.argmax(1) == outputs.argmax(1)))
            if agreement < self.profile.min_top1_agreement:
                problems.append(f"top-1 agreement with its Keras model is {agreement:.2%}, below the profile's "
                                f"{self.profile.min_top1_agreement:.0%} floor")
        row["accuracy"] = top1(self.y_val, outputs)
        if "p50_ms" not in row:  # not timed above
            phase(f"timing latency ({self.threads} thread(s))")
            row["p50_ms"], row["p50_spread_ms"] = self.latency_ms(blob)
        if self.source_correct is not None:
            mine = correct(self.y_val, outputs)
            row.update(worse=int(np.sum(self.source_correct & ~mine)), better=int(np.sum(~self.source_correct & mine)))
        return blob, row


def interleaved_latency(blobs: list[bytes], sample: np.ndarray, threads: int, runs: int = LATENCY_RUNS,
                        rounds: int = LATENCY_ROUNDS) -> list[tuple[float, float]]:
    """Per model, (p50, spread) in ms over ``rounds`` rounds that each time every model once, in turn::

        interleaved_latency([blob_a, blob_b], x_val[:1], threads=2)     # [(0.0215, 0.0011), (0.0220, 0.0009)]
    """
    interpreters = [TFLiteModel(blob, threads=threads) for blob in blobs]
    per_round = max(runs // rounds, 5)
    p50s: list[list[float]] = [[] for _ in blobs]
    for _ in range(rounds):
        for index, interpreter in enumerate(interpreters):
            stats = measure_latency(lambda i=interpreter: i.predict([sample]), runs=per_round, warmup=3,
                                    max_seconds=max(1.0 / rounds, 0.05))
            p50s[index].append(stats.p50_ms)
    return [(float(np.median(values)), float((max(values) - min(values)) / 2)) for values in p50s]
