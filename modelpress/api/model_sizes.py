"""Sizes of a Keras model as compression reports them: the saved file and its int8 TFLite conversion, raw
and gzip, and the int8 model's accuracy. In the API layer because it needs both the compressor's model and
the converters' TFLite path::

    sizes = model_sizes(model, calibration=x_train[:200], x_val=x_val, y_val=y_val)
    sizes["int8_tflite_gzip_bytes"], sizes["int8_accuracy"]
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from modelpress.compressor.report import accuracy
from modelpress.files import gzip_bytes


def model_sizes(model: Any, calibration: np.ndarray | None, x_val: np.ndarray | None = None,
                y_val: np.ndarray | None = None) -> dict[str, Any]:
    """Saved model file and int8 TFLite sizes, raw and gzip (and the int8 model's accuracy on ``x_val``)."""
    from modelpress.converters.tflite import to_tflite_bytes
    from modelpress.errors import ModelpressError
    from modelpress.model_io import save_model

    sizes: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="modelpress-size-") as tmp:
        path = save_model(model, Path(tmp) / "model.keras")
        data = path.read_bytes()
        sizes.update(model_file=path.suffix, model_bytes=len(data), model_gzip_bytes=gzip_bytes(data))
    if calibration is None:
        return sizes
    try:
        tflite = to_tflite_bytes(model, "int8", calibration=calibration[:200])
    except ModelpressError as err:
        sizes["int8_error"] = str(err)
        return sizes
    sizes.update(int8_tflite_bytes=len(tflite), int8_tflite_gzip_bytes=gzip_bytes(tflite))
    if x_val is not None and y_val is not None:
        from modelpress.tflite_interpreter import TFLiteModel

        interpreter = TFLiteModel(tflite)
        outputs = np.concatenate([interpreter.predict([x_val[i:i + 256]])[0] for i in range(0, len(x_val), 256)])
        sizes["int8_accuracy"] = accuracy(y_val, outputs)
    return sizes
