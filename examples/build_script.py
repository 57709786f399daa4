"""A build script using the Python API: train (or load) a model, compress it, publish it for two devices.

    .venv/bin/python examples/build_script.py --repo build/repo

What a CI job on a build machine would run after training. The same steps as the CLI walk-through, as
function calls with result objects you can check (and fail the build on).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import modelpress
from modelpress.demo.example import digits_data, train_example_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path("build/repo"), help="model repository to publish into")
    parser.add_argument("--recipe", default=None, help="compression recipe (e.g. prune-80); none by default")
    args = parser.parse_args()

    work = args.repo.parent / "work"
    data = digits_data(seed=0)
    data_file = data.save_npz(work / "digits.npz")
    model_file = work / "digits.keras"
    if not model_file.exists():
        train_example_model(data, epochs=15).save(model_file)

    try:
        result = modelpress.deploy(model_file, ["raspberry-pi-4", "coral-edgetpu"], args.repo, data=data_file,
                                   recipe=args.recipe, name="digits", echo=print)
    except modelpress.ModelpressError as err:  # one line saying what failed and how to fix it
        print(f"build failed: {err}", file=sys.stderr)
        return err.exit_code
    for item in result.published:
        fidelity = item.artifact.manifest.fidelity
        print(f"{item.model} v{item.version}: {item.artifact.size_bytes:,} bytes, "
              f"top-1 agreement {fidelity['top1_agreement']:.2%} -> {item.path}")
        if fidelity["top1_agreement"] < 0.99:  # a stricter gate than the profile's own, for this project
            print("agreement below this project's 99% gate", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
