"""The custom layers keep their arithmetic exact under mixed precision and save safely."""

import keras
import numpy as np

from cifar_cnn.models.layers import ReverseChannels, ScaledBias


def test_reverse_channels_turns_rgb_into_bgr():
    rgb = np.arange(2 * 3, dtype="float32").reshape(1, 2, 3)
    np.testing.assert_array_equal(ReverseChannels()(rgb), rgb[..., ::-1])


def test_scaled_bias_adds_scale_times_the_stored_value():
    layer = ScaledBias(8.0)
    layer.build((None, 4))
    layer.stored.assign([0.5, -0.25, 0.0, 1.0])
    np.testing.assert_allclose(layer(np.ones((2, 4), "float32")), [[5, -1, 1, 9]] * 2)


def test_scaled_bias_keeps_float32_weights_and_rounds_once_under_mixed_precision():
    layer = ScaledBias(8.0, dtype="mixed_bfloat16")
    layer.build((None, 1))
    layer.stored.assign([0.08725])
    outputs = layer(keras.ops.ones((1, 1), "bfloat16"))
    assert layer.stored.dtype == "float32"
    assert keras.backend.standardize_dtype(outputs.dtype) == "bfloat16"
    # 1 + 8 * 0.08725 = 1.698, whose nearest bfloat16 is 1.6953125; reading the bias as
    # bfloat16 first (0.0874...) would round twice and give 1.703125.
    assert float(keras.ops.cast(outputs, "float32")[0, 0]) == 1.6953125
