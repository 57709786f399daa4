"""Tiny models "made elsewhere", for the tests and benchmarks of ``modelpress package`` and of serving a bare
model file: built straight with TensorFlow and its converter, as another project would (TensorFlow is
imported inside each function)::

    write_dtype_model(tmp / "dtypes.tflite")         # int32, int64, bool, float16 and float32 inputs
    write_stateful_model(tmp / "counter.tflite")      # a resource variable that counts calls
    write_multi_output_saved_model(tmp / "sm")        # three named outputs, listed in another order
    crash_prone_keras_model()                         # int8 calibration at 1 frame dies of SIGFPE
    package_dir("pyopen_wakeword")                    # a third-party package's folder, never imported
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_dir(name: str) -> Path | None:
    """The folder of an installed package, found without importing it (None when absent)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _convert(module, signatures: dict, resource_variables: bool = False) -> bytes:
    import tensorflow as tf

    functions = list(signatures.values())
    converter = tf.lite.TFLiteConverter.from_concrete_functions(functions, module)
    converter.experimental_enable_resource_variables = resource_variables
    return converter.convert()


def write_dtype_model(path: Path) -> Path:
    """A .tflite whose inputs are int32 ``count``, int64 ``ids``, bool ``mask``, float16 ``half`` and float32
    ``x`` ([batch, 4] each), answering int32 ``total``, int64 ``ids_plus_one``, bool ``any``, float32 ``y``."""
    import tensorflow as tf

    specs = [tf.TensorSpec([None, 4], tf.int32, name="count"), tf.TensorSpec([None, 4], tf.int64, name="ids"),
             tf.TensorSpec([None, 4], tf.bool, name="mask"), tf.TensorSpec([None, 4], tf.float16, name="half"),
             tf.TensorSpec([None, 4], tf.float32, name="x")]

    @tf.function(input_signature=specs)
    def serve(count, ids, mask, half, x):
        masked = tf.where(mask, x, tf.zeros_like(x)) + tf.cast(half, tf.float32)
        return {"total": tf.reduce_sum(count, axis=1, keepdims=True), "ids_plus_one": ids + 1,
                "any": tf.reduce_any(mask, axis=1, keepdims=True), "y": masked * 2.0}

    module = tf.Module()
    module.serve = serve
    path.write_bytes(_convert(module, {"serving_default": serve.get_concrete_function()}))
    return path


def write_stateful_model(path: Path) -> Path:
    """A .tflite with a resource variable: ``serving_default`` adds ``x`` ([1, 2]) to a running total and
    answers it (signature ``serve``); a second signature ``reset`` sets it back to zero: a streaming model's
    two entry points."""
    import tensorflow as tf

    class Counter(tf.Module):
        def __init__(self):
            super().__init__()
            self.total = tf.Variable(tf.zeros([1, 2]), trainable=False)

        @tf.function(input_signature=[tf.TensorSpec([1, 2], tf.float32, name="x")])
        def serve(self, x):
            self.total.assign_add(x)
            return {"total": tf.identity(self.total)}

        @tf.function(input_signature=[tf.TensorSpec([1, 1], tf.float32, name="scale")])
        def reset(self, scale):
            self.total.assign(tf.zeros([1, 2]))
            return {"total": tf.identity(self.total) * scale}

    module = Counter()
    data = _convert(module, {"serving_default": module.serve.get_concrete_function(),
                             "reset": module.reset.get_concrete_function()}, resource_variables=True)
    path.write_bytes(data)
    return path


def write_multi_output_saved_model(path: Path) -> Path:
    """A SavedModel (``tf.saved_model.save``) whose signature takes ``audio`` [batch, 16] and answers three
    named outputs of different sizes: ``scores`` [batch, 5] (softmax), ``embedding`` [batch, 8] and
    ``spectrogram`` [batch, 4, 4]; TFLite lists them in an order of its own."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)

    class Audio(tf.Module):
        def __init__(self):
            super().__init__()
            self.w_embed = tf.Variable(rng.normal(size=(16, 8)).astype(np.float32))
            self.w_score = tf.Variable(rng.normal(size=(8, 5)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 16], tf.float32, name="audio")])
        def serve(self, audio):
            embedding = tf.nn.relu(audio @ self.w_embed)
            return {"spectrogram": tf.reshape(audio * audio, [-1, 4, 4]), "embedding": embedding,
                    "scores": tf.nn.softmax(embedding @ self.w_score)}

    module = Audio()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve.get_concrete_function()})
    return path


def crash_prone_keras_model():
    """A Keras model over a spectrogram of any length ([batch, 4, None, 1]) whose int8 calibration at a single
    frame (the length a converter guesses for an unknown dimension) dies of SIGFPE in TFLite's native code."""
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((4, None, 1), name="spec")
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    h = keras.layers.MaxPooling2D((1, 2))(h)
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(x, keras.layers.Dense(3, activation="softmax", name="probs")(h), name="spectro")
