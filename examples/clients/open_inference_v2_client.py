"""An Open Inference Protocol (KServe v2) client with NVIDIA's stock `tritonclient.http`.

    python examples/clients/open_inference_v2_client.py --url 127.0.0.1:8500 --model digits [--binary]

Reads the model's metadata for its input name, sends one real digit (JSON, or the binary tensor data
extension with --binary) and prints the predicted class.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import tritonclient.http as httpclient


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="127.0.0.1:8500", help="host:port, without http://")
    parser.add_argument("--model", default="digits")
    parser.add_argument("--binary", action="store_true", help="use the binary tensor data extension")
    args = parser.parse_args()
    from sklearn.datasets import load_digits

    digits = load_digits()
    batch = (digits.images[:1] / 16.0).astype(np.float32)[..., None]  # (1, 8, 8, 1)

    client = httpclient.InferenceServerClient(url=args.url)
    if not client.is_model_ready(args.model):
        print(f"model {args.model} is not ready", file=sys.stderr)
        return 1
    metadata = client.get_model_metadata(args.model)
    name = metadata["inputs"][0]["name"]
    output = metadata["outputs"][0]["name"]
    tensor = httpclient.InferInput(name, list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch, binary_data=args.binary)
    result = client.infer(args.model, [tensor],
                          outputs=[httpclient.InferRequestedOutput(output, binary_data=args.binary)])
    probs = result.as_numpy(output)[0]
    server = client.get_server_metadata()["name"]
    print(f"server {server}, model {args.model} version {result.get_response()['model_version']}")
    print(f"predicted {int(probs.argmax())} (p={probs.max():.3f}); true label {int(digits.target[0])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
