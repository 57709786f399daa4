"""Keras 3 quantization-aware training: int8 weight fake-quantization with a straight-through estimator."""

from __future__ import annotations

import numpy as np
import pytest

from modelpress.compressor.fake_quant import WeightFakeQuant, int8_round_trip


def test_round_trip_is_per_output_channel_and_on_the_int8_grid():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 4, 8)).astype(np.float32) * np.arange(1, 9, dtype=np.float32)
    out = int8_round_trip(kernel)
    for channel in range(8):
        step = np.abs(kernel[..., channel]).max() / 127
        codes = out[..., channel] / step
        np.testing.assert_allclose(codes, np.round(codes), atol=1e-3)  # whole steps of this channel's own scale
        assert np.abs(out[..., channel] - kernel[..., channel]).max() <= step / 2 + 1e-6
    assert out.dtype == np.float32
    np.testing.assert_array_equal(int8_round_trip(np.zeros((2, 3), np.float32)), 0)  # no division by zero


def test_the_hook_trains_the_float_master_weights_straight_through(mlp_keras3):
    """One step: the forward pass sees the int8 round trip; the saved float weights get the optimizer's update."""
    pytest.importorskip("tensorflow")
    from modelpress.compressor.flavors import kernel_layers, kernel_variable, variable_value

    hook = WeightFakeQuant(mlp_keras3)
    assert len(hook.variables) == len(kernel_layers(mlp_keras3)) == 3
    variable = kernel_variable(mlp_keras3.get_layer("fc1"))
    master = variable_value(variable).copy()
    hook.before_step(0)
    np.testing.assert_array_equal(variable_value(variable), int8_round_trip(master))
    update = np.full_like(master, 1e-3)
    variable.assign(variable_value(variable) + update)  # what an optimizer step would do
    hook.after_step(0)
    np.testing.assert_allclose(variable_value(variable), master + update, atol=1e-6)
    variable.assign(master)
