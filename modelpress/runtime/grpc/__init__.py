"""The Open Inference Protocol over gRPC: the proto, its compiled descriptor and messages, tensors, the
servicer over the data plane and the server beside HTTP (``modelpress serve --grpc-port 8081``)."""
