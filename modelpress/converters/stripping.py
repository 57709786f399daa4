"""Cut the strings a deployed .tflite does not need: the file's description, the converter's own metadata and the
names of internal tensors. The signature (its name and the names of its inputs and outputs, which serving and
verification go by) and the minimum runtime version stay::

    small = strip_strings(blob)            # LeNet-300-100 int4: ~0.3 KB less gzip, the same answers bit for bit
    names_stripped(small)                  # True

What goes is what a person debugging the graph reads (``fc1/MatMul;fc1/Relu;...``): a stripped file cannot be
compared tensor by tensor with its float32 twin, since that comparison matches tensors by name. Uses TensorFlow's
own flatbuffer object API (``tensorflow.lite.tools.flatbuffer_utils``), the reader and writer of the schema.
"""

from __future__ import annotations

import numpy as np

from modelpress.errors import ConversionError

#: flatbuffers address at most 2 GB; a file near that keeps its weights outside and is left whole
LARGE = 1 << 30

#: metadata entries the converter writes for its own bookkeeping; no runtime reads them
CONVERTER_METADATA = (b"CONVERSION_METADATA",)


def _io_tensors(model) -> set[tuple[int, int]]:
    kept = set()
    for signature in model.signatureDefs or []:
        for tensor in list(signature.inputs or []) + list(signature.outputs or []):
            kept.add((signature.subgraphIndex, tensor.tensorIndex))
    for index, subgraph in enumerate(model.subgraphs or []):
        kept.update((index, t) for t in list(subgraph.inputs if subgraph.inputs is not None else [])
                    + list(subgraph.outputs if subgraph.outputs is not None else []))
    return kept


def strip_strings(blob: bytes) -> bytes:
    """``blob`` without its description, converter metadata and internal tensor names (see the module)."""
    from tensorflow.lite.tools import flatbuffer_utils

    try:
        model = flatbuffer_utils.convert_bytearray_to_object(bytearray(blob))
    except Exception as err:  # the flatbuffer reader raises whatever a malformed buffer makes it hit
        raise ConversionError(f"cannot read the .tflite to strip its strings: {err}") from None
    if len(blob) >= LARGE:
        return blob  # a flatbuffer this size keeps its weights past its end, where they must stay
    for buffer in model.buffers or []:  # LiteRT's quantizer stores large weights past the flatbuffer: back inside
        if getattr(buffer, "offset", 0) > 1:
            buffer.data = np.frombuffer(blob, np.uint8, count=int(buffer.size), offset=int(buffer.offset))
            buffer.offset, buffer.size = 0, 0
    keep = _io_tensors(model)
    model.description = None
    model.metadata = [m for m in model.metadata or [] if m.name not in CONVERTER_METADATA] or None
    for index, subgraph in enumerate(model.subgraphs or []):
        for t, tensor in enumerate(subgraph.tensors or []):
            if (index, t) not in keep:
                tensor.name = None
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def names_stripped(blob: bytes) -> bool:
    """True when ``blob``'s internal tensors carry no names (:func:`strip_strings` was applied)."""
    import tflite

    model = tflite.Model.GetRootAsModel(blob, 0)
    graph = model.Subgraphs(0)
    ends = {graph.Inputs(i) for i in range(graph.InputsLength())} | \
           {graph.Outputs(i) for i in range(graph.OutputsLength())}
    inner = [t for t in range(graph.TensorsLength()) if t not in ends]
    return bool(inner) and all(not graph.Tensors(t).Name() for t in inner)
