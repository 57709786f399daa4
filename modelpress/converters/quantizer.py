"""Post-training quantization by LiteRT's quantizer (``litert-quantizer``): a float32 flatbuffer and a
recipe in, a quantized flatbuffer out, with no TensorFlow involved::

    data = quantize_flatbuffer(float32, "int8", calibration={"image": x_calib})
    data = quantize_flatbuffer(float32, "int4", hardware="cpu")          # int4 weights, blockwise FC
    data = quantize_flatbuffer(float32, "mixed", calibration=..., layers=LayerPrecision.load("mixed.yaml"))
    errors = tensor_errors(float32, data, {"image": x_verify[:8]})     # per tensor SNR (dB) and cosine

What each mode asks of the quantizer:

- ``dynamic``: int8 weights per channel, activations quantized at run time (``dynamic_wi8_afp32``).
- ``int8`` / ``int16x8``: int8 weights, int8 / int16 activations from calibration (``static_wi8_ai8`` /
  ``static_wi8_ai16``); inputs and outputs stay float32 as CPU and GPU profiles serve them.
- ``int4``: int4 weights, float activations. Convolutions and other ops keep channelwise int4 weights
  dequantized before a float op (weight-only: what the GPU delegate and every CPU kernel run); on CPU,
  fully connected layers get blockwise int4 (blocks of 32), which only LiteRT's dynamically quantized
  fully-connected kernels (XNNPACK) run, so GPU profiles keep those channelwise too. Blockwise needs every
  fully connected layer's input width to be a multiple of 32 and costs a scale per block, which a sparse
  (pruned) layer pays for mostly empty blocks; where either holds, fully connected layers stay channelwise
  too (LeNet-300-100's 784 inputs; a pruned layer whose blocks are mostly empty).
- ``int4`` of weights already on a tensorwise int4 grid (a ``qat`` step with ``granularity: tensor``): one scale
  and zero point per kernel instead of per output channel, which stores those weights exactly and in fewer bytes.
- ``mixed``: a :class:`~modelpress.converters.mixed_precision.LayerPrecision` recipe.

Calibration keeps each tensor's overall min and max. The quantizer's own default averages the ranges of
successive batches (a moving average), which clips the outliers a sample set holds: on the digits CNN
its int8 model was 0.30 off in a softmax output where global ranges give 0.011.
"""

from __future__ import annotations

import contextlib
import io
import math
from typing import Any

import numpy as np

from modelpress.converters.mixed_precision import LayerPrecision
from modelpress.errors import ConversionError, DataError

SIGNATURE = "serving_default"
MODES = ("dynamic", "int8", "int16x8", "int4", "mixed")
CALIBRATION_SAMPLES = 300
CALIBRATION_BATCH = 16
BLOCK = "BLOCKWISE_32"
#: tensors kept in the manifest's per-tensor statistics (the worst, by SNR)
TENSORS_KEPT = 40


def available() -> bool:
    try:
        import litert_quantizer  # noqa: F401
    except ImportError:
        return False
    return True


def _modules():
    try:
        from litert_quantizer import calibrator, qtyping, quantizer, recipe_manager
        from litert_quantizer.utils import qsv_utils
    except ImportError:
        raise ConversionError("quantizing for CPU and GPU profiles needs LiteRT's quantizer, which is not "
                              "installed: pip install 'modelpress[full]' (or litert-quantizer)") from None
    return calibrator, qtyping, quantizer, recipe_manager, qsv_utils


def _add(manager, qtyping, precision: str, regex: str, hardware: str, blockwise: bool = True,
         tensorwise: bool = False) -> None:
    """Add ``precision`` for the layers ``regex`` matches to a RecipeManager."""
    ops = qtyping.TFLOperationName
    if precision == "float":
        manager.add_quantization_config(regex, ops.ALL_SUPPORTED, None, "no_quantize")
    elif precision in ("int8", "int16x8"):
        manager.add_static_config(regex, ops.ALL_SUPPORTED, 16 if precision == "int16x8" else 8, 8)
    elif precision == "dynamic":
        manager.add_dynamic_config(regex, ops.ALL_SUPPORTED, 8)
    elif precision == "int4":
        granularity = qtyping.QuantGranularity["TENSORWISE" if tensorwise else "CHANNELWISE"]
        manager.add_weight_only_config(regex, ops.ALL_SUPPORTED, 4, granularity)
        if hardware == "cpu" and blockwise and not tensorwise:
            manager.add_dynamic_config(regex, ops.FULLY_CONNECTED, 4, qtyping.QuantGranularity[BLOCK])
    else:
        raise ConversionError(f"unknown precision {precision!r} for LiteRT's quantizer")


def _kernels(float_model: bytes):
    """(builtin operator, weight shape, float32 values or None) of every fully connected and convolution weight."""
    import tflite

    model = tflite.Model.GetRootAsModel(float_model, 0)
    codes = [max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(model.OperatorCodesLength())]
    kinds = (tflite.BuiltinOperator.FULLY_CONNECTED, tflite.BuiltinOperator.CONV_2D,
             tflite.BuiltinOperator.DEPTHWISE_CONV_2D)
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for o in range(graph.OperatorsLength()):
            op = graph.Operators(o)
            if codes[op.OpcodeIndex()] not in kinds or op.InputsLength() < 2:
                continue
            weight = graph.Tensors(op.Inputs(1))
            shape = weight.ShapeAsNumpy() if weight.ShapeLength() else np.array([0])
            data = model.Buffers(weight.Buffer()).DataAsNumpy()
            values = None
            if weight.Type() == tflite.TensorType.FLOAT32 and not isinstance(data, int) and len(data):
                values = np.frombuffer(data.tobytes(), dtype=np.float32)
            yield codes[op.OpcodeIndex()], shape, values


def blockwise_fits(float_model: bytes, block: int = 32, dense: float = 0.5) -> bool:
    """Whether every fully connected weight of ``float_model`` takes blockwise int4: an input width that is a
    multiple of ``block``, and more than ``dense`` of its weights non-zero (a pruned layer's mostly empty
    blocks would each still store a scale)."""
    import tflite

    for code, shape, values in _kernels(float_model):
        if code != tflite.BuiltinOperator.FULLY_CONNECTED:
            continue
        if int(shape[-1]) % block:
            return False
        if values is not None and np.count_nonzero(values) <= dense * values.size:
            return False
    return True


def tensor_grid_fits(float_model: bytes, bits: int = 4, tolerance: float = 1e-3) -> bool:
    """Whether every fully connected and convolution weight of ``float_model`` already lies on a tensorwise int4
    grid (``k * max|w| / 7`` with whole ``k``: what a ``qat`` step with ``granularity: tensor`` leaves). Tensorwise
    int4 then stores those weights exactly with one scale and one zero point a kernel, where channelwise int4
    stores one of each per output channel and would round them again."""
    levels = float(2 ** (bits - 1) - 1)
    found = False
    for _, _, values in _kernels(float_model):
        if values is None:
            return False
        found = True
        top = float(np.abs(values).max()) if values.size else 0.0
        if top > 0:
            steps = values.astype(np.float64) / (top / levels)
            if np.abs(steps - np.round(steps)).max() > tolerance:
                return False
    return found


def build_recipe(mode: str, hardware: str = "cpu", layers: LayerPrecision | None = None,
                 blockwise: bool = True, tensorwise: bool = False) -> list[dict[str, Any]]:
    """The quantizer's recipe (a list of JSON-ready dicts) for a mode, or for a per-layer recipe;
    ``blockwise=False`` keeps int4 fully connected weights channelwise on CPU too; ``tensorwise=True`` gives
    int4 weights one scale per kernel."""
    _, qtyping, _, recipe_manager, _ = _modules()
    if mode not in MODES:
        raise ConversionError(f"LiteRT's quantizer has no mode {mode!r}; modes: {', '.join(MODES)}")
    if mode == "mixed" and layers is None:
        raise ConversionError("quantization 'mixed' needs a layer precision recipe (layer_precision=...)")
    manager = recipe_manager.RecipeManager()
    plan = layers if mode == "mixed" else LayerPrecision(default=mode)
    _add(manager, qtyping, plan.default, ".*", hardware, blockwise, tensorwise)
    for pattern, precision in plan.layers:
        _add(manager, qtyping, precision, pattern, hardware, blockwise, tensorwise)
    # the device takes and returns float32: a scope of its own, added last, so that it wins
    for op in (qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT):
        manager.add_quantization_config("^", op, None, "no_quantize")
    return manager.get_quantization_recipe()


def _batches(samples: dict[str, np.ndarray], limit: int, batch: int) -> list[dict[str, np.ndarray]]:
    count = min(min(len(v) for v in samples.values()), limit)
    return [{name: np.asarray(x[i: i + batch]) for name, x in samples.items()} for i in range(0, count, batch)]


def calibrate(float_model: bytes, recipe: list[dict[str, Any]], samples: dict[str, np.ndarray],
              threads: int = 1) -> dict[str, Any]:
    """Each tensor's overall min / max over up to 300 samples (batches of 16)."""
    calibrator, _, _, recipe_manager, qsv_utils = _modules()
    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(recipe)
    batches = _batches(samples, CALIBRATION_SAMPLES, CALIBRATION_BATCH)
    run = calibrator.Calibrator(float_model, num_threads=threads, qsv_update_func=qsv_utils.min_max_update)
    run.calibrate({SIGNATURE: batches}, manager)
    return run.get_model_qsvs()


def quantize_flatbuffer(float_model: bytes, mode: str, calibration: dict[str, np.ndarray] | None = None,
                        layers: LayerPrecision | None = None, hardware: str = "cpu", threads: int = 1) -> bytes:
    """Quantize a float32 flatbuffer; ConversionError with the quantizer's reason when it refuses."""
    _, _, quantizer, _, _ = _modules()
    tensorwise = mode == "int4" and tensor_grid_fits(float_model)
    recipe = build_recipe(mode, hardware, layers, blockwise=hardware != "cpu" or blockwise_fits(float_model),
                          tensorwise=tensorwise)
    captured = io.StringIO()  # its progress bars and reports
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            tool = quantizer.Quantizer(bytearray(float_model), recipe)
            qsvs = None
            if tool.need_calibration:
                if not calibration:
                    raise DataError(f"{mode} quantization needs calibration samples; pass --calibration "
                                    "FILE.npz|FILE.npy|IMAGE_FOLDER (or --calibration random to accept a poor model)")
                qsvs = calibrate(float_model, recipe, calibration, threads)
            return bytes(tool.quantize(qsvs, enable_progress_report=False).quantized_model)
    except DataError:
        raise
    except Exception as err:
        raise ConversionError(f"LiteRT's quantizer ({mode}) failed: {type(err).__name__}: "
                              f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}") from None


def _decibels(ratio: float) -> float | None:
    return None if not math.isfinite(ratio) or ratio <= 0 else round(10.0 * math.log10(ratio), 2)


def signature_inputs(model: bytes) -> list[str]:
    """The input names of ``model``'s serving signature, in order (the names its validation keys samples by)."""
    from ai_edge_litert.interpreter import Interpreter

    return list(Interpreter(model_content=model).get_signature_runner(SIGNATURE).get_input_details())


def _signature_outputs(model: bytes) -> dict[str, str]:
    """{internal tensor name: the signature's output name} (``StatefulPartitionedCall:0`` -> ``probs``)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    details = interpreter.get_signature_runner(SIGNATURE).get_output_details()
    return {names[d["index"]]: name for name, d in details.items() if d["index"] in names}


def tensor_errors(float_model: bytes, quantized: bytes, samples: dict[str, np.ndarray],
                  threads: int = 1, keep: int = TENSORS_KEPT) -> dict[str, Any]:
    """The quantizer's own validation: each tensor of the quantized model against the float32 one on
    ``samples``, as SNR (dB; signal power over error power) and cosine similarity. Returns the ``keep``
    worst tensors by SNR (outputs always), each with its kind (output, activation, weight)."""
    _, _, quantizer, _, _ = _modules()
    from litert_quantizer.utils import validation_utils

    metrics = [validation_utils.ValidationErrorMetric.SNR, validation_utils.ValidationErrorMetric.COSINE_SIMILARITY]
    rows = [{name: np.asarray(x[i: i + 1]) for name, x in samples.items()}
            for i in range(min(len(v) for v in samples.values()))]
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
        tool = quantizer.Quantizer(bytearray(float_model), previous_quantized_model=bytearray(quantized))
        result = tool.validate({SIGNATURE: rows}, error_metrics=metrics, num_threads=threads)
    compared = result.get_signature_comparison_result(SIGNATURE)
    outputs_named = _signature_outputs(float_model)
    tensors = []
    for kind, group in (("output", compared.output_tensors), ("activation", compared.intermediate_tensors),
                        ("weight", compared.constant_tensors)):
        for name, values in group.items():
            tensors.append({"tensor": outputs_named.get(name, name), "kind": kind,
                            "snr_db": _decibels(values.get("snr", float("nan"))),
                            "cosine": round(float(values.get("cosine_similarity", float("nan"))), 6)})
    outputs = [t for t in tensors if t["kind"] == "output"]
    others = sorted((t for t in tensors if t["kind"] != "output"),
                    key=lambda t: math.inf if t["snr_db"] is None else t["snr_db"])
    return {"samples": len(rows), "tensors_compared": len(tensors), "metrics": ["snr_db", "cosine"],
            "tensors": outputs + others[: max(0, keep - len(outputs))]}


def notes(quantization: str, layers: dict[str, Any] | None) -> list[str]:
    """What the manifest says about who quantized the model, and how, on the quantizer's path."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        tool = f"LiteRT's quantizer (litert-quantizer {version('litert-quantizer')})"
    except PackageNotFoundError:
        tool = "LiteRT's quantizer"
    said = [f"quantized ({quantization}) by {tool} from the float32 flatbuffer"]
    if layers is not None:
        said.append("per-layer precision: " + LayerPrecision.from_config(layers).describe())
    return said


def worst_tensors(stats: dict[str, Any] | None, count: int = 3) -> str:
    """``probs 41.2 dB (cosine 0.99993), conv2 38.0 dB (...)``: the activations and outputs that the
    quantization changed most, for a report line; empty without statistics."""
    rows = [t for t in (stats or {}).get("tensors", []) if t["kind"] != "weight" and t["snr_db"] is not None]
    rows = sorted(rows, key=lambda t: t["snr_db"])[:count]
    return ", ".join(f"{t['tensor'].split(';')[0]} {t['snr_db']:.1f} dB (cosine {t['cosine']:.5f})" for t in rows)
