"""The peer in peer_bench.py: an MLServer 1.7.1 custom runtime around ai_edge_litert, written for the
comparison (it runs in MLServer's own environment, ``.venv-peers``; modelpress never imports it).

model-settings.json: {"name": "fer", "implementation": "mlserver_litert.LiteRTModel",
                      "parameters": {"uri": "/path/model.tflite"}}
It takes FP32 inputs and quantizes / dequantizes int8 models the way modelpress does, so both servers do
the same work per request.
"""

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class LiteRTModel(MLModel):
    async def load(self) -> bool:
        self.interpreter = Interpreter(model_path=self.settings.parameters.uri, num_threads=1)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0])
        scale, zero = self.input["quantization"]
        if scale:
            x = np.clip(np.round(x / scale + zero), -128, 127)
        if tuple(x.shape) != tuple(self.interpreter.get_input_details()[0]["shape"]):
            self.interpreter.resize_tensor_input(self.input["index"], x.shape)
            self.interpreter.allocate_tensors()
        self.interpreter.set_tensor(self.input["index"], x.astype(self.input["dtype"]))
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self.output["index"])
        scale, zero = self.output["quantization"]
        if scale:
            y = (y.astype(np.float32) - zero) * scale
        return InferenceResponse(model_name=self.name, outputs=[NumpyCodec.encode_output("output_0", y)])
