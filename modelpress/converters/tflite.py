"""Keras (either flavour) or SavedModel to TFLite bytes, for every quantization mode.

    data = to_tflite_bytes(model, quantization="int8", calibration=x_calib,
                           input_dtype="uint8", output_dtype="uint8", op_set="int8_builtins")
    data = to_tflite_bytes(model, input_shapes={"spectrogram": [None, 40, 256, 1]})   # fix a dynamic dim

The model is first exported as a SavedModel whose ``serving_default`` signature names every input and
output as the source does (Keras input and output names, dict keys, or the SavedModel's own signature
keys), so the TFLite signature runner carries the same names and the verifier matches tensors by name.

Quantization: ``none`` (float32), ``dynamic`` (int8 weights, float activations), ``float16`` (fp16
weights), ``int8`` (full integer; needs calibration samples), ``int16x8`` (int16 activations, int8
weights; needs calibration samples), ``int4`` (int4 weights) and ``mixed`` (per layer).

Who quantizes (``quantizer=``): ``"litert"`` converts to float32 and hands the flatbuffer to LiteRT's
quantizer (:mod:`modelpress.converters.quantizer`), the path LiteRT now points to, for CPU and GPU
profiles; ``"converter"`` quantizes inside the TFLite converter, kept for Edge TPU, microcontroller and
NPU profiles (see ``DeviceProfile.quantizes_with``). ``float16`` is a converter option on both paths::

    data = to_tflite_bytes(model, quantization="int4", quantizer="litert")
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from modelpress.errors import ConstraintError, ConversionError, DataError, ModelpressError
from modelpress.model_io import IOSpec, LoadedModel, load_model
from modelpress.native_logs import held_fd2

log = logging.getLogger(__name__)

CALIBRATION_STEPS = 300
#: verification samples the per-tensor comparison runs on (every tensor of both models is kept per sample)
TENSOR_SAMPLES = 8
SIGNATURE = "serving_default"


def _tf():
    import tensorflow as tf

    return tf


def _dtype(name: str):
    tf = _tf()
    return {"float32": tf.float32, "float16": tf.float16, "int8": tf.int8, "uint8": tf.uint8,
            "int16": tf.int16}[name]


def _specs(source: LoadedModel, input_shapes: dict[str, list] | None, batch_size: int | None,
           names: list[str]) -> list:
    tf = _tf()
    specs = []
    for name, spec in zip(names, source.input_specs()):
        shape = list((input_shapes or {}).get(name) or spec.shape)
        if batch_size is not None and shape:
            shape[0] = batch_size
        specs.append(tf.TensorSpec([None if d is None or d < 0 else int(d) for d in shape],
                                   tf.as_dtype(spec.dtype), name=name))
    return specs


def export_signature(source: LoadedModel, dest: Path, input_shapes: dict[str, list] | None = None,
                     batch_size: int | None = None, names: tuple[list[str], list[str]] | None = None) -> Path:
    """A SavedModel at ``dest`` whose ``serving_default`` takes the source's inputs by name (at the given
    shapes) and returns a dict of its outputs by name. A SavedModel left as it is comes back unchanged.

    ``names`` ((input names, output names), in the model's order) renames them: a model reloaded in a
    child process may have lost an auto-generated name (``input_layer_2`` comes back ``input_layer``)."""
    tf = _tf()
    own_inputs = [s.name for s in source.input_specs()]
    own_outputs = source.output_names()
    in_names, out_names = names or (own_inputs, own_outputs)
    in_map, rename = _renaming(own_inputs, in_names), _renaming(own_outputs, out_names)
    specs = _specs(source, input_shapes, batch_size, [in_map[n] for n in own_inputs])
    if source.flavor == "saved_model":
        original = [s.shape for s in source.input_specs()]
        unchanged = all(k == v for k, v in {**in_map, **rename}.items())
        if [list(s.shape) for s in specs] == [list(s) for s in original] and unchanged:
            return Path(source.path)
        fn = source.signature()
        module = tf.Module()
        module.inner = source.model
        module.serve = tf.function(lambda *xs: {rename[k]: v for k, v in fn(**dict(zip(own_inputs, xs))).items()},
                                   input_signature=specs)
        tf.saved_model.save(module, str(dest), signatures={SIGNATURE: module.serve.get_concrete_function()})
        return dest
    model = source.model

    # plain Python on Python values (no tensor-dependent control flow): AutoGraph has nothing to convert, and
    # trying printed a "could not transform ... will run it as-is" warning on every conversion
    @tf.autograph.experimental.do_not_convert
    def serve(*xs):
        from modelpress.model_io import _inputs_struct

        struct = _inputs_struct(model)
        if isinstance(struct, dict):
            args: Any = dict(zip(own_inputs, xs))
        else:
            args = list(xs) if len(xs) > 1 or isinstance(struct, (list, tuple)) else xs[0]
        out = model(args, training=False)
        if isinstance(out, dict):
            return {rename.get(str(k), str(k)): v for k, v in out.items()}
        out = list(out) if isinstance(out, (list, tuple)) else [out]
        return dict(zip([rename[n] for n in own_outputs], out))

    if source.flavor == "keras3":
        import keras

        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(SIGNATURE, serve, input_signature=specs)
        archive.write_out(str(dest), verbose=False)
    else:
        module = tf.Module()
        module.model = model
        module.serve = tf.function(serve, input_signature=specs)
        tf.saved_model.save(module, str(dest), signatures={SIGNATURE: module.serve.get_concrete_function()})
    return dest


def _renaming(own: list[str], wanted: list[str]) -> dict[str, str]:
    """{the model's name: the name to give it}: the same names in any order map to themselves (a
    SavedModel's dict may list them differently on each load); other names pair up in order."""
    if set(own) == set(wanted):
        return {n: n for n in own}
    if len(own) != len(wanted):
        raise ConversionError(f"the reloaded model has tensors {own}; expected {wanted}")
    return dict(zip(own, wanted))


def _representative(samples: dict[str, np.ndarray], specs: list[IOSpec]):
    steps = min(min(len(v) for v in samples.values()), CALIBRATION_STEPS)
    dtypes = {s.name: s.dtype for s in specs}

    def generate():
        for i in range(steps):
            yield {name: np.asarray(x[i: i + 1]).astype(dtypes.get(name, "float32")) for name, x in samples.items()}

    return generate


def _named(calibration: dict[str, np.ndarray] | np.ndarray | None, specs: list[IOSpec]):
    if calibration is None or isinstance(calibration, dict):
        return calibration
    return {specs[0].name: calibration}


def to_tflite_bytes(model: Any, quantization: str = "none",
                    calibration: dict[str, np.ndarray] | np.ndarray | None = None,
                    input_dtype: str = "float32", output_dtype: str = "float32",
                    op_set: str = "builtins", batch_size: int | None = None,
                    input_shapes: dict[str, list] | None = None,
                    names: tuple[list[str], list[str]] | None = None, quantizer: str = "converter",
                    hardware: str = "cpu", layers: dict[str, Any] | None = None, threads: int = 1) -> bytes:
    """Convert and return the flatbuffer. Raises ConversionError with the converter's own reason.

    ``batch_size`` fixes the batch dimension (Edge TPU, microcontrollers); by default it stays dynamic.
    ``input_shapes`` ({input name: shape, None for a dimension left dynamic}) sets the shapes the
    signature takes; ``calibration`` is an array (single-input models) or {input name: array}.
    ``layers`` is a per-layer precision recipe (``LayerPrecision.get_config()``) for ``mixed``.
    """
    return convert_pair(model, quantization, calibration, input_dtype, output_dtype, op_set, batch_size,
                        input_shapes, names, quantizer, hardware, layers, threads)[1]


def convert_pair(model: Any, quantization: str = "none", calibration=None, input_dtype: str = "float32",
                 output_dtype: str = "float32", op_set: str = "builtins", batch_size: int | None = None,
                 input_shapes: dict[str, list] | None = None, names: tuple[list[str], list[str]] | None = None,
                 quantizer: str = "converter", hardware: str = "cpu", layers: dict[str, Any] | None = None,
                 threads: int = 1) -> tuple[bytes | None, bytes]:
    """(the float32 flatbuffer LiteRT's quantizer started from, or None on the converter's path; the
    artifact): :func:`to_tflite_bytes` keeping the float32 model for per-tensor comparison."""
    from modelpress.converters import quantizer as litert

    source = model if isinstance(model, LoadedModel) else load_model(model)
    if quantizer == "litert" and quantization in litert.MODES:
        float_ops = "builtins" if op_set == "int8_builtins" else op_set
        float_model = _convert(source, "none", None, "float32", "float32", float_ops, batch_size, input_shapes, names)
        specs = _specs_named(source, names)
        recipe = None if layers is None else litert.LayerPrecision.from_config(layers)
        return float_model, litert.quantize_flatbuffer(float_model, quantization, _named(calibration, specs),
                                                       recipe, hardware, threads)
    if quantization in ("int4", "mixed"):
        raise ConversionError(f"quantization {quantization!r} is made by LiteRT's quantizer, which modelpress uses "
                              "for CPU and GPU profiles only; the TFLite converter has no such mode")
    return None, _convert(source, quantization, calibration, input_dtype, output_dtype, op_set, batch_size,
                          input_shapes, names)


def _specs_named(source: LoadedModel, names: tuple[list[str], list[str]] | None) -> list[IOSpec]:
    specs = source.input_specs()
    if names is not None:
        in_map = _renaming([s.name for s in specs], names[0])
        specs = [IOSpec(in_map[s.name], s.shape, s.dtype) for s in specs]
    return specs


def _convert(source: LoadedModel, quantization: str, calibration, input_dtype: str, output_dtype: str, op_set: str,
             batch_size: int | None, input_shapes: dict[str, list] | None,
             names: tuple[list[str], list[str]] | None) -> bytes:
    """The TFLite converter, quantizing inside it when asked (the converter's path)."""
    tf = _tf()
    specs = _specs_named(source, names)
    calibration = _named(calibration, specs)
    with tempfile.TemporaryDirectory(prefix="modelpress-export-") as tmp:
        captured = io.StringIO()  # Keras 3 prints its export summary; the converter logs to fd 2
        try:
            with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured), _quiet_fd2():
                exported = export_signature(source, Path(tmp) / "saved_model", input_shapes, batch_size, names)
        except Exception as err:
            raise ConversionError(f"export of the model's serving signature failed: {type(err).__name__}: "
                                  f"{_first_reason(str(err))}") from None
        converter = tf.lite.TFLiteConverter.from_saved_model(str(exported), signature_keys=[SIGNATURE])
        ops = {
            "builtins": [tf.lite.OpsSet.TFLITE_BUILTINS],
            "int8_builtins": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8],
            "select_tf_ops": [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS],
        }[op_set]
        if quantization in ("int8", "int16x8"):
            if not calibration:
                raise DataError(f"{quantization} quantization needs calibration samples; pass --calibration "
                                "FILE.npz|FILE.npy|IMAGE_FOLDER (or --calibration random to accept a poor model)")
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = _representative(calibration, specs)
            if quantization == "int16x8":
                ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
            elif op_set == "builtins":
                ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = _dtype(input_dtype)
            converter.inference_output_type = _dtype(output_dtype)
        elif quantization == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif quantization == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif quantization != "none":
            raise ConversionError(f"unknown quantization {quantization!r}")
        converter.target_spec.supported_ops = ops
        try:
            with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured), _quiet_fd2():
                return converter.convert()
        except Exception as err:
            text = str(err)
            flex = unsupported_tf_ops(text)
            if flex and op_set != "select_tf_ops":
                raise ConstraintError(
                    f"the model needs TensorFlow ops that TFLite has no builtin kernel for: {', '.join(flex)}; "
                    f"ops {op_set} cannot run them. Replace those layers with TFLite builtins (a profile with "
                    "op_set: select_tf_ops converts them as Flex ops, for an interpreter with Flex linked in)"
                ) from None
            reason = _first_reason(text) or type(err).__name__
            raise ConversionError(f"TFLite conversion ({quantization}, ops {op_set}) failed: {reason}") from None



def unsupported_tf_ops(text: str) -> list[str]:
    """The TensorFlow op names a converter error says TFLite builtins lack (Flex / select TF ops)."""
    if "flex" not in text.lower() and "select" not in text.lower() and "custom op" not in text.lower():
        return []
    return list(dict.fromkeys(re.findall(r"\btf\.([A-Z][A-Za-z0-9_]*)", text)))


def _first_reason(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if "error:" in line:
            return line[line.index("error:") + 6:].strip()
    return text.strip().splitlines()[0] if text.strip() else ""


@contextlib.contextmanager
def _quiet_fd2():
    """Silence the MLIR converter's C++ logging (written to fd 2) unless modelpress logs at DEBUG."""
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    with held_fd2(lambda line: False):
        yield


def model_reference(source: LoadedModel, workdir: Path) -> tuple[str, str | None]:
    """(path, flavor) a child process reloads ``source`` from; an in-memory Keras model is saved first."""
    if source.path is not None:
        return str(source.path), ("tf_keras" if source.flavor == "tf_keras" else None)
    from modelpress.model_io import save_model

    saved = save_model(source.model, workdir / ("model.h5" if source.flavor == "tf_keras" else "model.keras"))
    return str(saved), ("tf_keras" if source.flavor == "tf_keras" else None)


def convert_and_run(reference: tuple[str, str | None], safe_mode: bool, options: dict[str, Any],
                    verify: dict[str, np.ndarray], threads: int = 1
                    ) -> tuple[bytes, dict[str, np.ndarray], dict[str, Any] | None]:
    """Convert (calibrating when int8) and run the result once on ``verify``: the steps that can die in
    native code, meant for :func:`modelpress.converters.isolation.run_isolated`. Returns the flatbuffer,
    the artifact's outputs by name and, on LiteRT's quantizer's path, its per-tensor errors against the
    float32 model (:func:`modelpress.converters.quantizer.tensor_errors`) on a few verification samples."""
    from modelpress.converters.isolation import step
    from modelpress.tflite_interpreter import TFLiteModel

    path, flavor = reference
    step("loading the model")
    source = load_model(path, safe_mode=safe_mode, flavor=flavor)
    quantization = options.get("quantization", "none")
    by = "LiteRT's quantizer" if options.get("quantizer") == "litert" and quantization != "none" else "converter"
    step(f"TFLite conversion ({quantization} by the {by}" + (", with calibration)" if options.get("calibration")
                                                             else ")"))
    float_model, data = convert_pair(source, **options, threads=threads)
    step("first invoke of the converted model")
    try:
        model = TFLiteModel(data, threads=threads)
        outputs = model.predict_named(verify)
    except ModelpressError as err:
        if "Select TensorFlow op" not in str(err):
            raise
        from modelpress.tflite_graph import read_graph

        flex = ", ".join(dict.fromkeys(read_graph(data).custom_ops))
        raise ConversionError(f"converted with Flex ops ({flex}), but no interpreter here runs them (ai-edge-litert "
                              "and TensorFlow 2.21's tf.lite ship without the Flex delegate), so the artifact cannot "
                              "be verified or served; replace those ops with TFLite builtins") from None
    errors = None
    if float_model is not None:
        from modelpress.converters.quantizer import tensor_errors

        step("per-tensor comparison with the float32 model (LiteRT's quantizer's validation)")
        errors = tensor_errors(float_model, data, {k: v[:TENSOR_SAMPLES] for k, v in verify.items()}, threads)
    return data, outputs, errors
