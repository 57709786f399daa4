"""The Open Inference gRPC messages (``inference.proto``), as classes built from the committed descriptor
in a descriptor pool of their own, so that a process may also import another Open Inference client or
server (tritonclient.grpc, MLServer) without a duplicate-symbol clash in protobuf's default pool::

    from modelpress.runtime.grpc import messages
    request = messages.ModelInferRequest.FromString(data)
    answer = messages.ModelInferResponse(model_name="digits", model_version="2")
"""

from __future__ import annotations

from google.protobuf import descriptor_pool, message_factory

from modelpress.runtime.grpc.descriptor import SERIALIZED

SERVICE = "inference.GRPCInferenceService"
_POOL = descriptor_pool.DescriptorPool()
_POOL.AddSerializedFile(SERIALIZED)


def _message(name: str):
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"inference.{name}"))


ServerLiveRequest = _message("ServerLiveRequest")
ServerLiveResponse = _message("ServerLiveResponse")
ServerReadyRequest = _message("ServerReadyRequest")
ServerReadyResponse = _message("ServerReadyResponse")
ModelReadyRequest = _message("ModelReadyRequest")
ModelReadyResponse = _message("ModelReadyResponse")
ServerMetadataRequest = _message("ServerMetadataRequest")
ServerMetadataResponse = _message("ServerMetadataResponse")
ModelMetadataRequest = _message("ModelMetadataRequest")
ModelMetadataResponse = _message("ModelMetadataResponse")
ModelInferRequest = _message("ModelInferRequest")
ModelInferResponse = _message("ModelInferResponse")
InferTensorContents = _message("InferTensorContents")
RepositoryIndexRequest = _message("RepositoryIndexRequest")
RepositoryIndexResponse = _message("RepositoryIndexResponse")
RepositoryModelLoadRequest = _message("RepositoryModelLoadRequest")
RepositoryModelLoadResponse = _message("RepositoryModelLoadResponse")
RepositoryModelUnloadRequest = _message("RepositoryModelUnloadRequest")
RepositoryModelUnloadResponse = _message("RepositoryModelUnloadResponse")


def methods() -> dict[str, tuple[type, type]]:
    """Each RPC of the service with its request and answer classes, read from the descriptor::

        methods()["ModelInfer"]    # (ModelInferRequest, ModelInferResponse)
    """
    service = _POOL.FindServiceByName(SERVICE)
    return {m.name: (message_factory.GetMessageClass(m.input_type), message_factory.GetMessageClass(m.output_type))
            for m in service.methods}
