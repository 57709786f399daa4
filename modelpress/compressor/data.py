"""Training and validation data for compression: an ``.npz`` file, arrays, or a ``tf.data.Dataset``.

    data = load_data("digits.npz")            # x_train, y_train and optionally x_val, y_val
    data = load_data((x, y))                  # arrays; 10% held out for validation when no val split
    data = load_data({"x_train": x, "y_train": y, "x_val": xv, "y_val": yv})
    data = load_data(tf_dataset)              # (x, y) batches or pairs, read once into memory
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelpress.errors import DataError

VAL_FRACTION = 0.1


@dataclass
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    source: str = "arrays"
    val_source: str = "x_val / y_val"

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "train": int(len(self.x_train)), "val": int(len(self.x_val)),
                "validation": self.val_source}


def _labels(y: np.ndarray, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype.kind in "iu" or (y.dtype.kind == "f" and y.ndim == 1 and np.all(y == np.round(y))):
        return y.astype(np.int64)
    if y.dtype.kind == "f":
        return y.astype(np.float32)
    raise DataError(f"{where} labels have dtype {y.dtype}; expected integer class ids or one-hot floats")


def _pair(x: Any, y: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        x = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise DataError(f"{where} inputs are not numeric arrays") from None
    y = _labels(y, where)
    if len(x) != len(y):
        raise DataError(f"{where} has {len(x)} inputs but {len(y)} labels; they must match one to one")
    if len(x) == 0:
        raise DataError(f"{where} is empty; compression fine-tunes on real training samples")
    return x, y


def _split(x: np.ndarray, y: np.ndarray, source: str, seed: int = 0) -> Dataset:
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = max(int(len(x) * VAL_FRACTION), 1)
    val, train = order[:n_val], order[n_val:]
    return Dataset(x[train], y[train], x[val], y[val], source, f"{n_val} samples held out of the training data")


def _from_mapping(arrays: Any, source: str) -> Dataset:
    keys = set(arrays.keys()) if hasattr(arrays, "keys") else set()
    if not {"x_train", "y_train"} <= keys:
        raise DataError(f"{source} needs arrays x_train and y_train (and optionally x_val, y_val); it has "
                        f"{', '.join(sorted(keys)) or 'none'}")
    x, y = _pair(arrays["x_train"], arrays["y_train"], f"{source} x_train/y_train")
    if {"x_val", "y_val"} <= keys:
        xv, yv = _pair(arrays["x_val"], arrays["y_val"], f"{source} x_val/y_val")
        return Dataset(x, y, xv, yv, source)
    return _split(x, y, source)


def _from_tf_data(dataset: Any) -> Dataset:
    xs, ys = [], []
    for item in dataset.as_numpy_iterator():
        if not (isinstance(item, tuple) and len(item) == 2):
            raise DataError("a tf.data.Dataset for compression must yield (x, y) pairs or batches")
        xs.append(np.asarray(item[0]))
        ys.append(np.asarray(item[1]))
    if not xs:
        raise DataError("the tf.data.Dataset is empty")
    batched = xs[0].ndim > 0 and ys[0].ndim >= 1 and len(xs[0]) == len(ys[0]) and len(xs) > 0 \
        and xs[0].ndim == len(xs[-1].shape) and ys[0].ndim == 1
    x = np.concatenate(xs) if batched else np.stack(xs)
    y = np.concatenate(ys) if batched else np.stack(ys)
    x, y = _pair(x, y, "tf.data.Dataset")
    return _split(x, y, "tf.data.Dataset")


def load_data(data: Any) -> Dataset:
    """Read training (and validation) data in any accepted form; DataError with what was expected."""
    if isinstance(data, Dataset):
        return data
    if data is None:
        raise DataError("compression fine-tunes the model: pass --data FILE.npz with x_train and y_train "
                        "(x_val / y_val optional)")
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.is_file():
            raise DataError(f"data file {path} does not exist; pass an .npz with x_train, y_train (x_val, y_val)")
        if path.suffix.lower() != ".npz":
            raise DataError(f"data file {path} is not an .npz; save arrays with numpy.savez(path, x_train=..., "
                            "y_train=..., x_val=..., y_val=...)")
        try:
            with np.load(path, allow_pickle=False) as arrays:
                return _from_mapping({k: arrays[k] for k in arrays.files}, str(path))
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read {path} as .npz: {err}") from None
    if isinstance(data, dict):
        return _from_mapping(data, "data")
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = _pair(data[0], data[1], "data (x, y)")
        return _split(x, y, "arrays")
    if hasattr(data, "as_numpy_iterator"):
        return _from_tf_data(data)
    raise DataError(f"unsupported data {type(data).__name__}; pass an .npz path, (x, y) arrays, a dict of "
                    "x_train/y_train/x_val/y_val or a tf.data.Dataset")


def load_eval_data(data: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """The validation split to evaluate on: x_val/y_val, else x_test/y_test, else x/y, else x_train."""
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.is_file() or path.suffix.lower() != ".npz":
            raise DataError(f"--data {path} must be an existing .npz with x_val/y_val (or x_test/y_test, x/y)")
        with np.load(path, allow_pickle=False) as arrays:
            files = set(arrays.files)
            for xk, yk in (("x_val", "y_val"), ("x_test", "y_test"), ("x", "y"), ("x_train", "y_train")):
                if {xk, yk} <= files:
                    x, y = _pair(arrays[xk], arrays[yk], f"{path} {xk}/{yk}")
                    return x, y, f"{path.name} {xk}/{yk}"
            raise DataError(f"{path} has no labelled arrays (x_val/y_val, x_test/y_test, x/y or x_train/y_train); "
                            f"it has {', '.join(sorted(files))}")
    dataset = load_data(data)
    return dataset.x_val, dataset.y_val, dataset.val_source


def selection_split(data: Dataset, fraction: float = VAL_FRACTION, cap: int = 5000, seed: int = 0) -> Dataset:
    """``data`` with a slice of its training samples (``fraction``, at most ``cap``) set aside as the split that
    fine-tuning picks its best epoch on, for callers that keep ``x_val`` for scoring the result (press)::

        tuning = selection_split(data)       # tuning.x_val: 10% of data.x_train, no longer trained on
    """
    n = len(data.x_train)
    k = min(max(int(n * fraction), 1), cap) if n > 1 else 0
    if k == 0:
        return Dataset(data.x_train, data.y_train, data.x_train[:0], data.y_train[:0], data.source, "none")
    order = np.random.default_rng(seed).permutation(n)
    held, kept = np.sort(order[:k]), np.sort(order[k:])
    return Dataset(data.x_train[kept], data.y_train[kept], data.x_train[held], data.y_train[held], data.source,
                   f"{k} training samples set aside to select the fine-tuning epoch")
