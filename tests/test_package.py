"""The package's import-time behaviour, checked in fresh interpreters."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SHOW = "import os, modelpress; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"


@pytest.mark.parametrize(("given", "expected"), [(None, "0"), ("1", "1")])
def test_onednn_kernels_off_unless_the_user_asks(given, expected):
    """oneDNN's CPU kernels corrupt the heap while fine-tuning the fer model under TF 2.21: off by default,
    and a user's own choice wins."""
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if given is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = given
    out = subprocess.run([sys.executable, "-c", SHOW], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


def test_import_stays_light():
    """`import modelpress` must not pull TensorFlow in (a device that only serves cannot afford it)."""
    code = "import sys, modelpress; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
