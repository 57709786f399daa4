"""A TF Serving REST v1 client in plain HTTP (the `requests` library), as existing TF Serving clients send.

    python examples/clients/tfserving_v1_client.py --url http://127.0.0.1:8500 --model digits

Sends one of scikit-learn's real digits in row form ("instances") and prints the predicted class.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8500")
    parser.add_argument("--model", default="digits")
    parser.add_argument("--token", help="bearer token, when the server requires one")
    args = parser.parse_args()
    from sklearn.datasets import load_digits

    digits = load_digits()
    image = (digits.images[0] / 16.0).astype(np.float32)[..., None]  # (8, 8, 1) in [0, 1]
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}

    status = requests.get(f"{args.url}/v1/models/{args.model}", headers=headers, timeout=10)
    print("status:", status.status_code, status.json())
    reply = requests.post(f"{args.url}/v1/models/{args.model}:predict", json={"instances": [image.tolist()]},
                          headers=headers, timeout=10)
    if reply.status_code != 200:
        print(f"error {reply.status_code}: {reply.json().get('error')}", file=sys.stderr)
        return 1
    probs = np.asarray(reply.json()["predictions"][0])
    print(f"predicted {int(probs.argmax())} (p={probs.max():.3f}); true label {int(digits.target[0])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
