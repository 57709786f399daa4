"""Payloads to numpy and back, in one place: JSON bodies (:mod:`.json`, with a nesting cap), values and
datatypes (:mod:`.arrays`), Open Inference v2 tensors (:mod:`.v2`) and TF Serving v1 rows / columns
(:mod:`.v1`)::

    body = parse_json(raw_bytes, max_depth=32)
    tensors = v2_inputs(body, b"")                               # [("image", array), ...]
    encoded, binary = v2_encode_outputs({"output_0": y}, {"output_0": True})
"""

from modelpress.runtime.codecs.arrays import (
    V2_DATATYPES,
    b64_instance,
    tf_datatype,
    to_array,
    v2_datatype,
)
from modelpress.runtime.codecs.json import PARSER, dumps, json_depth, parse_json
from modelpress.runtime.codecs.v1 import v1_array, v1_encode, v1_inputs
from modelpress.runtime.codecs.v2 import (
    MAX_RANK,
    MAX_VALUES,
    split_binary_body,
    v2_encode_outputs,
    v2_inputs,
    v2_output_choice,
)

__all__ = ["MAX_RANK", "MAX_VALUES", "PARSER", "V2_DATATYPES", "b64_instance", "dumps", "json_depth", "parse_json",
           "split_binary_body", "tf_datatype", "to_array", "v1_array", "v1_encode", "v1_inputs", "v2_datatype",
           "v2_encode_outputs", "v2_inputs", "v2_output_choice"]
