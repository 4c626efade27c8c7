"""The custom layers keep their arithmetic exact under mixed precision and save safely."""

import keras
import numpy as np
import pytest

from cifar_cnn.models.layers import ReverseChannels, ScaledBias, fold_scaled_biases


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


def test_folding_scaled_biases_into_batch_norm_changes_no_prediction(slice_data):
    from cifar_cnn.models import create_model

    keras.utils.set_random_seed(3)
    model = create_model("resnet_fast", widths=(16, 32, 32), bias_lr_scale=64)
    rng = np.random.default_rng(3)
    for layer in model.layers:  # trained-looking biases and statistics, not zeros and ones
        if isinstance(layer, ScaledBias):
            layer.stored.assign(rng.normal(0, 0.1, layer.stored.shape).astype("float32"))
        if isinstance(layer, keras.layers.BatchNormalization):
            mean, variance = layer.get_weights()
            layer.set_weights([rng.normal(0, 0.5, mean.shape), rng.uniform(0.5, 2, variance.shape)])

    folded = fold_scaled_biases(model)

    assert not any(isinstance(layer, ScaledBias) for layer in folded.layers)
    assert all(type(layer).__module__.startswith("keras.") for layer in folded.layers)
    images = slice_data.x_test[:64]
    expected = model.predict(images, verbose=0)
    np.testing.assert_array_equal(folded.predict(images, verbose=0), expected)
    assert fold_scaled_biases(folded) is folded  # nothing left to fold


def test_folding_refuses_a_batch_norm_it_cannot_fold_exactly():
    inputs = keras.Input((4, 4, 3))
    normed = keras.layers.BatchNormalization(center=False, scale=True, name="bn")(inputs)
    outputs = ScaledBias(8.0, name="bias")(normed)
    with pytest.raises(ValueError, match="neither centre nor scale"):
        fold_scaled_biases(keras.Model(inputs, outputs))
    shared = keras.layers.BatchNormalization(center=False, scale=False, name="bn")(inputs)
    both = keras.layers.Concatenate()([ScaledBias(8.0, name="bias")(shared), shared])
    with pytest.raises(ValueError, match="bn's output has other users"):
        fold_scaled_biases(keras.Model(inputs, both))
