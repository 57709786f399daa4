"""Build the runtime tests' fixture packages: run once in the full environment (``.venv``).

The runtime's tests run where TensorFlow is absent, so the packages they serve are committed here,
small (a few KB each), made by ``modelpress.convert`` from a tiny seeded CNN on scikit-learn digits::

    .venv/bin/python tests/runtime/make_fixtures.py      # rewrites tests/runtime/fixtures/

Writes ``fixtures/packages/{float32,int8,edgetpu}/`` (server-cpu, raspberry-pi-4, coral-edgetpu) and
``fixtures/x_test.npy`` / ``fixtures/y_test.npy`` (100 held-out real digits and their labels).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent / "fixtures"
PROFILES = {"float32": "server-cpu", "int8": "raspberry-pi-4", "edgetpu": "coral-edgetpu"}


def main() -> None:
    import modelpress
    from modelpress.demo.example import CLASS_NAMES, digits_data, train_example_model

    data = digits_data(seed=0)
    model = train_example_model(data, flavor="keras3", epochs=12, width=4)
    accuracy = float(np.mean(np.argmax(model.predict(data.x_test, verbose=0), axis=1) == data.y_test))
    print(f"keras accuracy on {len(data.x_test)} held-out digits: {accuracy:.3f}")
    packages = HERE / "packages"
    shutil.rmtree(packages, ignore_errors=True)
    for name, profile in PROFILES.items():
        art = modelpress.convert(model, profile, packages / name, calibration=data.x_train[:300],
                                 verify_data=data.x_test, labels=CLASS_NAMES, name="digits")
        print(name, profile, art.manifest.inputs[0], art.manifest.fidelity.get("top1_agreement"))
    np.save(HERE / "x_test.npy", data.x_test[:100].astype(np.float32))
    np.save(HERE / "y_test.npy", data.y_test[:100].astype(np.int64))


if __name__ == "__main__":
    main()
