#!/usr/bin/env bash
# The whole trip with the command line, on the built-in example's model and data.
# Run from the repository root after `make demo` (which leaves runs/demo/model/digits.{keras,npz}):
#   bash examples/cli_walkthrough.sh
set -euo pipefail
MP=${MP:-.venv/bin/modelpress}
MODEL=runs/demo/model/digits.keras
DATA=runs/demo/model/digits.npz
OUT=runs/walkthrough
rm -rf "$OUT"

# 1. Which devices can we target, and what does each demand?
$MP profiles list
$MP profiles show coral-edgetpu

# 2. What is this model? (signature, parameters, layers)
$MP inspect "$MODEL"

# 3. Convert for a Raspberry Pi 4: int8, calibrated and verified on the data file's samples.
$MP convert "$MODEL" --profile raspberry-pi-4 --calibration "$DATA" --out "$OUT/rpi"
$MP inspect "$OUT/rpi"

# 4. Publish versions into a repository, for two devices at once.
$MP deploy "$MODEL" --profile raspberry-pi-4 --profile cortex-m --data "$DATA" --repo "$OUT/repo" --name digits

# 5. Serve the repository (Ctrl-C to stop), then in another shell:
#      python examples/clients/tfserving_v1_client.py --url http://127.0.0.1:8500 --model digits-raspberry-pi-4
#      python examples/clients/open_inference_v2_client.py --url 127.0.0.1:8500 --model digits-raspberry-pi-4
echo "now run: $MP serve $OUT/repo --port 8500"
