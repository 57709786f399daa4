"""Stripping a deployed .tflite of the strings it does not need: a smaller file with the same answers bit for bit,
its signature and I/O names kept, served by the runtime like any model file."""

from __future__ import annotations

import numpy as np
import pytest
import requests

from modelpress.converters.stripping import names_stripped, strip_strings
from modelpress.files import gzip_bytes
from modelpress.tflite_interpreter import TFLiteModel

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mlp(digits):
    from modelpress.testing.reference_models import digits_mlp

    return digits_mlp(digits.x_train, digits.y_train)


@pytest.mark.parametrize("quantization", ["int4", "int8"])
def test_a_stripped_file_answers_the_same_and_is_smaller(mlp, digits, quantization, tmp_path):
    pytest.importorskip("litert_quantizer")  # raspberry-pi-4: LiteRT's quantizer (int8 keeps weights past the end)
    from modelpress.device_profiles import load_profile
    from modelpress.search.measure import Measurer
    from modelpress.testing.server import served

    x = digits.x_test.astype(np.float32)
    measurer = Measurer(load_profile("raspberry-pi-4"), x, digits.y_test, digits.x_train[:100])
    blob = measurer.convert(mlp, quantization)
    small = strip_strings(blob)
    assert not names_stripped(blob) and names_stripped(small)
    assert gzip_bytes(small) <= gzip_bytes(blob) - 200, (gzip_bytes(blob), gzip_bytes(small))
    assert b"MLIR Converted" not in small and b"fc1" not in small and b"CONVERSION_METADATA" not in small
    before, after = TFLiteModel(blob), TFLiteModel(small)
    assert after.signature == before.signature
    assert [(d["name"], tuple(d["shape"])) for d in after.input_details + after.output_details] == \
        [(d["name"], tuple(d["shape"])) for d in before.input_details + before.output_details]
    want = before.predict([x])[0]
    np.testing.assert_array_equal(after.predict([x])[0], want)

    version = tmp_path / "repo" / "digits" / "1"
    version.mkdir(parents=True)
    (version / "model.tflite").write_bytes(small)
    name = after.input_details[0]["name"]
    with served(tmp_path / "repo", "--poll-interval", "0") as server:
        body = {"inputs": [{"name": name, "shape": [4, 8, 8, 1], "datatype": "FP32", "data": x[:4].ravel().tolist()}]}
        answer = requests.post(f"{server.url}/v2/models/digits/infer", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        out = answer.json()["outputs"][0]
        np.testing.assert_allclose(np.reshape(out["data"], out["shape"]), want[:4], atol=1e-6)


def test_what_is_not_a_tflite_file_is_one_clear_error():
    from modelpress.errors import ConversionError

    with pytest.raises(ConversionError, match="cannot read the .tflite"):
        strip_strings(b"not a flatbuffer at all")
