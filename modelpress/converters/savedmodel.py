"""Keras (either flavour) or SavedModel to a SavedModel folder with a ``serving_default`` signature.

    export_saved_model(source, Path("tmp/saved_model"))
    describe_saved_model(Path("tmp/saved_model"))   # inputs / outputs as TensorSpecs
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import numpy as np

from modelpress.errors import ConversionError
from modelpress.manifest import TensorSpec
from modelpress.model_io import LoadedModel


def export_saved_model(source: LoadedModel, dest: Path) -> Path:
    import tensorflow as tf

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            if source.flavor == "saved_model":
                shutil.copytree(source.path, dest)
            elif source.flavor == "keras3":
                source.model.export(str(dest), format="tf_saved_model")
            else:
                model = source.model
                specs = [tf.TensorSpec([None, *t.shape[1:]], tf.float32, name=t.name.split(":")[0])
                         for t in model.inputs]
                serve = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False),
                                    input_signature=specs)
                tf.saved_model.save(model, str(dest), signatures={"serving_default": serve})
    except Exception as err:
        raise ConversionError(f"SavedModel export failed: {str(err).splitlines()[0]}") from None
    return dest


def _signature(path: Path):
    import tensorflow as tf

    return tf.saved_model.load(str(path)).signatures["serving_default"]


def describe_saved_model(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    fn = _signature(path)
    inputs = [TensorSpec(name=name, shape=[-1 if d is None else int(d) for d in spec.shape],
                         dtype=spec.dtype.name)
              for name, spec in sorted(fn.structured_input_signature[1].items())]
    outputs = [TensorSpec(name=name, shape=[-1 if d is None else int(d) for d in spec.shape],
                          dtype=spec.dtype.name)
               for name, spec in sorted(fn.structured_outputs.items())]
    return inputs, outputs


def run_saved_model(path: Path, x: np.ndarray | dict[str, np.ndarray], batch_size: int = 256
                    ) -> np.ndarray | dict[str, np.ndarray]:
    """The serving signature's outputs: every output by name for inputs by name (a dict), or the first
    output for a single float32 batch."""
    fn = _signature(path)
    specs = fn.structured_input_signature[1]
    feed = x if isinstance(x, dict) else {sorted(specs)[0]: x}
    total = len(next(iter(feed.values())))
    parts = [fn(**{k: np.asarray(v[i:i + batch_size]).astype(specs[k].dtype.as_numpy_dtype) for k, v in feed.items()})
             for i in range(0, total, batch_size)]
    named = {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}
    return named if isinstance(x, dict) else named[sorted(named)[0]]
