"""Load a trained model of any supported kind and remember which Keras flavour it is.

Kinds: Keras 3 ``.keras`` (loaded in safe mode by default), legacy Keras 2 ``.h5`` (Keras 3 where it
loads, tf_keras otherwise) and SavedModel folders. Imports TensorFlow, lazily::

    source = load_model("model.keras")
    source.flavor        # 'keras3', 'tf_keras' or 'saved_model'
    source.predict(x)    # numpy in, numpy out, whichever kind it is
    save_model(source.model, "out/model.keras")   # same flavour as the input, written atomically
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelpress.errors import ModelLoadError
from modelpress.files import file_sha256  # noqa: F401 - re-exported: converters import it from here

FLAVORS = ("keras3", "tf_keras", "saved_model")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_EXPECTED = "a Keras 3 .keras file, a Keras 2 .h5/.hdf5 file or a SavedModel folder"


def keras_flavor(model: Any) -> str:
    """'keras3' or 'tf_keras' for a model object, from the package its class comes from."""
    for cls in type(model).__mro__:
        module = cls.__module__
        if module.startswith("tf_keras") or module.startswith("keras.src.engine") or ".legacy" in module:
            return "tf_keras"
        if module.startswith("keras"):
            return "keras3"
    raise ModelLoadError(f"{type(model).__name__} is not a Keras model; expected {_EXPECTED}")


@dataclass
class LoadedModel:
    """A model ready to convert or compress. ``model`` is a Keras model or a loaded SavedModel."""

    model: Any
    flavor: str
    path: Path | None = None
    sha256: str | None = None

    @property
    def is_keras(self) -> bool:
        return self.flavor in ("keras3", "tf_keras")

    @property
    def name(self) -> str:
        if self.path is not None:
            return self.path.stem if self.path.is_file() else self.path.name
        return getattr(self.model, "name", "model") or "model"

    def signature(self):
        """The SavedModel's serving function (SavedModels only)."""
        signatures = getattr(self.model, "signatures", {})
        if "serving_default" not in signatures:
            raise ModelLoadError(f"{self.path} has no 'serving_default' signature; export it with one")
        return signatures["serving_default"]

    def input_shapes(self) -> list[list[int | None]]:
        return [list(spec.shape) for spec in self.input_specs()]

    def input_specs(self) -> list[IOSpec]:
        """Inputs by name, as the model is called: Keras input names (dict keys for dict inputs) or the
        SavedModel signature's keys; ``None`` marks a dynamic dimension."""
        if self.is_keras:
            struct = _inputs_struct(self.model)
            names = list(struct) if isinstance(struct, dict) else _keras_input_names(self.model)
            tensors = [struct[n] for n in names] if isinstance(struct, dict) else _as_list(self.model.inputs)
            return [IOSpec(n, [None if d is None else int(d) for d in t.shape], _dtype_name(t.dtype))
                    for n, t in zip(names, tensors)]
        fn = self.signature()
        return [IOSpec(name, [None if d is None else int(d) for d in spec.shape], spec.dtype.name)
                for name, spec in fn.structured_input_signature[1].items()]

    def output_names(self) -> list[str]:
        """Output names: Keras output names (dict keys for dict outputs) or the signature's keys."""
        if self.is_keras:
            struct = getattr(self.model, "_outputs_struct", None)
            struct = struct if struct is not None else getattr(self.model, "_nested_outputs", None)
            if isinstance(struct, dict):
                return list(struct)
            return _keras_output_names(self.model)
        return list(self.signature().structured_outputs)

    def call_named(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One call with inputs by name; every output by name (numpy)."""
        if self.is_keras:
            struct = _inputs_struct(self.model)
            if isinstance(struct, dict):
                args: Any = {n: feed[n] for n in struct}
            else:
                args = [feed[n] for n in _keras_input_names(self.model)]
                args = args[0] if len(args) == 1 and not isinstance(struct, (list, tuple)) else args
            return name_outputs(self.model(args, training=False), self.output_names())
        return {k: np.asarray(v) for k, v in self.signature()(**feed).items()}

    def predict_named(self, feed: dict[str, np.ndarray], batch_size: int = 256) -> dict[str, np.ndarray]:
        """Every output by name for a batch of inputs by name, cast to each input's dtype."""
        specs = {spec.name: spec for spec in self.input_specs()}
        missing = sorted(set(specs) - set(feed))
        if missing:
            raise ModelLoadError(f"no samples for input(s) {', '.join(missing)}")
        n = len(next(iter(feed.values())))
        parts: list[dict[str, np.ndarray]] = []
        for start in range(0, n, batch_size):
            chunk = {k: np.asarray(feed[k][start:start + batch_size]).astype(specs[k].dtype) for k in specs}
            parts.append(self.call_named(chunk))
        return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}

    def predict(self, x: np.ndarray | list[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """Float outputs for a batch (first output for multi-output models)."""
        inputs = x if isinstance(x, list) else [x]
        names = [spec.name for spec in self.input_specs()]
        out = self.predict_named(dict(zip(names, inputs)), batch_size=batch_size)
        return out[self.output_names()[0]] if self.output_names()[0] in out else next(iter(out.values()))


@dataclass
class IOSpec:
    """A source model's input: its name, shape (``None`` where dynamic) and dtype name."""

    name: str
    shape: list[int | None]
    dtype: str = "float32"

    def unknown_dims(self) -> list[int]:
        """Axes after the batch whose size the model leaves open."""
        return [axis for axis, d in enumerate(self.shape) if axis > 0 and d is None]


def name_outputs(out: Any, names: list[str]) -> dict[str, np.ndarray]:
    """A Keras call's outputs (tensor, list or dict) as {name: numpy array}."""
    if isinstance(out, dict):
        return {str(k): np.asarray(v) for k, v in out.items()}
    values = _as_list(out)
    return {name: np.asarray(v) for name, v in zip(names, values)}


def _inputs_struct(model: Any) -> Any:
    struct = getattr(model, "_inputs_struct", None)
    return struct if struct is not None else getattr(model, "_nested_inputs", None)


def _keras_input_names(model: Any) -> list[str]:
    names = getattr(model, "input_names", None)
    if names:
        return list(names)
    return [str(getattr(t, "name", f"input_{i}")).split(":")[0] for i, t in enumerate(_as_list(model.inputs))]


def _keras_output_names(model: Any) -> list[str]:
    names = getattr(model, "output_names", None)
    if names:
        return list(names)
    found = []
    for tensor in _as_list(model.outputs):
        history = getattr(tensor, "_keras_history", None)
        found.append(getattr(history[0], "name", None) if history else None)
    return [name or f"output_{i}" for i, name in enumerate(found)]


def _dtype_name(dtype: Any) -> str:
    return str(getattr(dtype, "name", dtype))


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _load_keras3(path: Path, safe_mode: bool):
    import keras

    return keras.saving.load_model(path, compile=True, safe_mode=safe_mode)


def _load_tf_keras(path: Path):
    import tf_keras

    return tf_keras.models.load_model(path, compile=True)


def _explain(path: Path, err: Exception) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    if "safe_mode" in str(err) or "Lambda" in str(err):
        return (f"{path} contains a Lambda layer or other arbitrary code, which safe mode refuses to run; "
                "if you trust the file, pass --unsafe (safe_mode=False in Python)")
    return f"cannot load {path}: {text}"


def load_model(source: str | Path | Any, safe_mode: bool = True, flavor: str | None = None) -> LoadedModel:
    """Load a model file or folder, or wrap a Keras model object already in memory.

    ``flavor="tf_keras"`` loads an .h5 file with tf_keras even where Keras 3 could read it (the
    compressor does this to reach tfmot); by default Keras 3 is tried first.
    """
    if flavor not in (None, "keras3", "tf_keras"):
        raise ModelLoadError(f"flavor {flavor!r} is not one of keras3, tf_keras")
    if isinstance(source, LoadedModel):
        return source
    if not isinstance(source, (str, os.PathLike)):
        return LoadedModel(model=source, flavor=keras_flavor(source))
    path = Path(source)
    if not path.exists():
        raise ModelLoadError(f"model {path} does not exist; expected {_EXPECTED}")
    digest = file_sha256(path)
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ModelLoadError(f"{path} is a folder but not a SavedModel (no saved_model.pb inside); "
                                 f"expected {_EXPECTED}")
        import tensorflow as tf

        try:
            model = tf.saved_model.load(str(path))
        except Exception as err:
            raise ModelLoadError(_explain(path, err)) from None
        loaded = LoadedModel(model=model, flavor="saved_model", path=path, sha256=digest)
        loaded.signature()
        return loaded
    head = path.read_bytes()[:8]
    suffix = path.suffix.lower()
    if suffix == ".keras":
        if not zipfile.is_zipfile(path):
            raise ModelLoadError(f"{path} is not a valid .keras file (not a zip archive): corrupt or truncated")
        try:
            return LoadedModel(_load_keras3(path, safe_mode), "keras3", path, digest)
        except Exception as err:
            if _is_keras2_zip(path):
                raise ModelLoadError(f"{path} was saved by tf_keras (Keras 2) in the .keras format, which only "
                                     "Keras 2 reads; re-save it as .h5 from tf_keras") from None
            raise ModelLoadError(_explain(path, err)) from None
    if suffix in (".h5", ".hdf5"):
        if head != _HDF5_SIGNATURE:
            raise ModelLoadError(f"{path} is not an HDF5 file (bad signature): corrupt, truncated or misnamed")
        first_error: Exception | None = None
        if flavor != "tf_keras":
            try:
                return LoadedModel(_load_keras3(path, safe_mode), "keras3", path, digest)
            except Exception as err:
                first_error = err
        if safe_mode and _h5_has_lambda(path):  # tf_keras has no safe mode: it would run the layer's code
            raise ModelLoadError(_explain(path, ValueError("Lambda")))
        try:
            return LoadedModel(_load_tf_keras(path), "tf_keras", path, digest)
        except Exception as err:
            raise ModelLoadError(_explain(path, first_error or err)) from None
    if suffix == ".tflite":
        raise ModelLoadError(f"{path} is already a TFLite model; convert starts from {_EXPECTED}. Use "
                             f"`modelpress package {path} --out DIR --profile NAME` to check and package it as it "
                             "is, or drop it in a version folder of `modelpress serve`")
    raise ModelLoadError(f"unsupported model file {path} ({suffix or 'no extension'}); expected {_EXPECTED}")


def _h5_has_lambda(path: Path) -> bool:
    """Whether an .h5 model's architecture holds a Lambda layer (Python bytecode run on load)."""
    import json

    import h5py

    try:
        with h5py.File(path, "r") as handle:
            config = handle.attrs.get("model_config")
        if isinstance(config, bytes):
            config = config.decode("utf-8")
        data = json.loads(config) if config else None
    except Exception:  # unreadable: the loader itself will say so
        return False

    def walk(node: Any) -> bool:
        if isinstance(node, dict):
            return node.get("class_name") == "Lambda" or any(walk(v) for v in node.values())
        return isinstance(node, list) and any(walk(v) for v in node)

    return walk(data)


def _is_keras2_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            import json

            meta = json.loads(archive.read("metadata.json"))
        return str(meta.get("keras_version", "")).startswith("2.")
    except Exception:
        return False


def save_model(model: Any, dest: str | Path) -> Path:
    """Save a Keras model atomically in its own flavour (.keras for Keras 3, .h5 for tf_keras)."""
    dest = Path(dest)
    flavor = keras_flavor(model)
    if flavor == "tf_keras" and dest.suffix != ".h5":
        dest = dest.with_suffix(".h5")
    if flavor == "keras3" and dest.suffix not in (".keras", ".h5"):
        dest = dest.with_suffix(".keras")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=".modelpress-tmp-", dir=dest.parent))
    try:
        tmp = tmpdir / dest.name
        with warnings.catch_warnings():  # tf_keras calls .h5 legacy; it is the file every Keras flavour reads
            warnings.filterwarnings("ignore", message="You are saving your model as an HDF5 file")
            model.save(tmp)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return dest
