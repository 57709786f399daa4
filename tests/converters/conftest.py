"""The converters need TensorFlow: skip this folder where it is absent."""

import pytest

pytest.importorskip("tensorflow")
