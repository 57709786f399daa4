"""Sample data for calibration and verification: .npy / .npz files, a folder of images, or ``random``.

    data = load_samples("calib.npz", input_shape=[None, 28, 28, 1])
    data.x.shape, data.source, data.is_random

Random data is only ever used when asked for by name: it calibrates int8 ranges badly, so it warns
and the manifest records it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelpress.errors import DataError

log = logging.getLogger(__name__)

NPZ_KEYS = ("x_calib", "x", "x_val", "x_test", "x_train", "images", "inputs")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
IMAGE_SCALES = {"0..1": (0.0, 1.0), "-1..1": (-1.0, 1.0), "0..255": (0.0, 255.0)}
RANDOM = "random"


@dataclass
class Samples:
    """Samples for every input of a model, by input name (one array per input, same number of rows)."""

    inputs: dict[str, np.ndarray]
    source: str
    is_random: bool = False

    @property
    def x(self) -> np.ndarray:
        """The first input's samples (single-input models)."""
        return next(iter(self.inputs.values()))

    def __len__(self) -> int:
        return len(self.x)

    def take(self, start: int, stop: int | None, source: str) -> Samples:
        """Rows ``start:stop`` of every input, described as ``source``."""
        return Samples({k: v[start:stop] for k, v in self.inputs.items()}, source, self.is_random)

    def shapes(self) -> dict[str, list[int]]:
        """Each input's sample shape, the row count as batch (-> fixes dynamic dimensions)."""
        return {k: list(v.shape) for k, v in self.inputs.items()}

    def describe(self) -> dict:
        return {"source": self.source, "samples": len(self), "random": self.is_random}


def _check_shape(x: np.ndarray, input_shape: list, source: str, keep_dtype: bool = False) -> np.ndarray:
    want = [None if (d is None or d < 0) else int(d) for d in input_shape[1:]]
    got = list(x.shape[1:])
    if len(got) != len(want) or any(w is not None and w != g for w, g in zip(want, got)):
        expected = "[N, " + ", ".join("?" if d is None else str(d) for d in want) + "]"
        hint = ""
        if int(np.prod([g for g in got])) == int(np.prod([w or 1 for w in want])):
            hint = f" (same number of values: reshape it to {expected} before saving)"
        raise DataError(f"{source} holds samples of shape {list(x.shape)}; the model expects {expected}{hint}")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{source} holds {x.dtype} values; expected numbers")
    return x if keep_dtype and not np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)


def _from_npz(path: Path) -> np.ndarray:
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as err:
        raise DataError(f"cannot read {path} as .npz: {err}") from None
    with archive:
        keys = list(archive.keys())
        for key in NPZ_KEYS:
            if key in keys:
                return archive[key]
        if len(keys) == 1:
            return archive[keys[0]]
    raise DataError(f"{path} has arrays {', '.join(keys) or '(none)'}; name the samples one of "
                    f"{', '.join(NPZ_KEYS)}")


def _from_images(folder: Path, input_shape: list, scale: str) -> np.ndarray:
    from PIL import Image

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    if len(input_shape) != 4:
        raise DataError(f"a folder of images needs a model with input [N, H, W, C]; this one takes "
                        f"{input_shape}")
    height, width, channels = input_shape[1], input_shape[2], input_shape[3]
    if channels not in (1, 3) or not height or not width:
        raise DataError(f"images need an input with 1 or 3 channels and a fixed size; the model takes "
                        f"{input_shape}")
    low, high = IMAGE_SCALES[scale]
    images = []
    for path in files:
        try:
            with Image.open(path) as img:
                img = img.convert("L" if channels == 1 else "RGB").resize((width, height))
                arr = np.asarray(img, dtype=np.float32) / 255.0
        except Exception as err:
            raise DataError(f"cannot read image {path}: {err}") from None
        images.append(arr.reshape(height, width, channels) * (high - low) + low)
    return np.stack(images)


def load_inputs(data: str | Path | np.ndarray | dict | None, shapes: dict[str, list], count: int | None = None,
                image_scale: str = "0..1", seed: int = 0, warn_random: bool = True) -> Samples | None:
    """Samples for every input named in ``shapes`` ({name: shape, None for a dynamic dimension}); None
    when ``data`` is None. A single-input model takes what :func:`load_samples` takes; a model with
    several inputs takes a .npz file (or a dict) with one array per input name, or ``random``::

        load_inputs("calib.npz", {"audio": [None, 16000], "speaker": [None, 8]})
    """
    if data is None:
        return None
    names = list(shapes)
    if len(names) == 1:
        if isinstance(data, dict):
            if names[0] not in data:
                raise DataError(f"the samples name {', '.join(map(repr, data))}; the model's input is {names[0]!r}")
            data = np.asarray(data[names[0]])
        one = load_samples(data, shapes[names[0]], count, image_scale, seed, warn_random)
        return Samples({names[0]: one.x}, one.source, one.is_random) if one is not None else None
    if str(data) == RANDOM and not isinstance(data, (dict, np.ndarray)):
        parts = {n: load_samples(RANDOM, shapes[n], count, seed=seed + i, warn_random=warn_random and i == 0)
                 for i, n in enumerate(names)}
        return Samples({n: p.x for n, p in parts.items()}, RANDOM, is_random=True)
    if isinstance(data, dict):
        arrays, source = data, "arrays " + ", ".join(names)
    else:
        path = Path(data)
        if path.suffix != ".npz" or not path.is_file():
            raise DataError(f"the model has {len(names)} inputs ({', '.join(names)}); pass a .npz file holding "
                            f"one array per input name (or `random`), not {path}")
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.keys() if k in names}
        except Exception as err:
            raise DataError(f"cannot read {path} as .npz: {err}") from None
        source = str(path)
    missing = [n for n in names if n not in arrays]
    if missing:
        raise DataError(f"{source} has no array for input(s) {', '.join(missing)}; name one array per input: "
                        f"{', '.join(names)}")
    inputs = {n: _check_shape(np.asarray(arrays[n]), shapes[n], f"{source} [{n}]", keep_dtype=True)
              for n in names}
    rows = {len(v) for v in inputs.values()}
    if len(rows) != 1:
        raise DataError(f"{source}: the inputs hold different numbers of samples ({sorted(rows)}); give each "
                        "input one row per sample")
    if count is not None:
        inputs = {k: v[:count] for k, v in inputs.items()}
    return Samples(inputs, source)


def load_samples(data: str | Path | np.ndarray | None, input_shape: list, count: int | None = None,
                 image_scale: str = "0..1", seed: int = 0, warn_random: bool = True) -> Samples | None:
    """Samples shaped for the model's first input; None when ``data`` is None.

    ``data="random"`` gives uniform [0, 1) samples and, for calibration, a warning.
    """
    if data is None:
        return None
    if image_scale not in IMAGE_SCALES:
        raise DataError(f"image scale {image_scale!r} is not one of {', '.join(IMAGE_SCALES)}")
    if isinstance(data, np.ndarray):
        x, source = data, f"array {list(data.shape)}"
    elif str(data) == RANDOM:
        n = count or 100
        shape = [n] + [d if d and d > 0 else 1 for d in input_shape[1:]]
        if warn_random:
            log.warning("calibrating on %d random samples: int8 ranges will not match real data; "
                        "pass real samples (.npy, .npz or a folder of images) for a faithful model", n)
        x = np.random.default_rng(seed).random(shape, dtype=np.float32)
        return Samples({"x": x}, source=RANDOM, is_random=True)
    else:
        path = Path(data)
        source = str(path)
        if not path.exists():
            raise DataError(f"data {path} does not exist; pass a .npy or .npz file or a folder of images")
        if path.is_dir():
            x = _from_images(path, input_shape, image_scale)
        elif path.suffix == ".npy":
            try:
                x = np.load(path, allow_pickle=False)
            except Exception as err:
                raise DataError(f"cannot read {path} as .npy: {err}") from None
        elif path.suffix == ".npz":
            x = _from_npz(path)
        else:
            raise DataError(f"unsupported data file {path}; pass a .npy or .npz file or a folder of images")
    if x.ndim == 0 or len(x) == 0:
        raise DataError(f"{source} holds no samples")
    x = _check_shape(np.asarray(x), input_shape, source)
    if count is not None:
        x = x[:count]
    return Samples({"x": x}, source=source)
