"""training.fast_layers: BatchNorm trains as oneDNN's fused kernels, small bfloat16 convolutions
take their kernel gradient from matrix products, bfloat16 GELUs go through the error function, and
all compute what Keras's layers do."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cifar_cnn.models import create_model
from training.fast_layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    gelu_by_erf,
    kernel_gradient_by_matmuls,
    with_fast_layers,
)

RECIPE_LIKE = dict(center=False, scale=False, epsilon=1e-12, momentum=0.6)  # resnet_fast's


@pytest.fixture
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


def one_training_call(layer, x, direction):
    """Outputs, gradients (input, then trainable weights) and moving statistics after one call."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = layer(tf.cast(x, layer.compute_dtype), training=True)
        loss = tf.reduce_sum(tf.cast(outputs, "float32") * direction)
    gradients = tape.gradient(loss, [x, *layer.trainable_weights])
    return outputs, gradients, [v.numpy() for v in layer.non_trainable_weights]


@pytest.mark.parametrize(
    "policy, tolerance", [("float32", 1e-5), ("mixed_bfloat16", 2e-2)], indirect=["policy"]
)
@pytest.mark.parametrize("options", [RECIPE_LIKE, dict(epsilon=1e-3)])
def test_a_training_step_computes_what_keras_batch_norm_computes(policy, tolerance, options):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2, 3, (16, 5, 5, 8)).astype("float32"))
    direction = tf.constant(rng.normal(size=x.shape).astype("float32"))
    plain, fused = keras.layers.BatchNormalization(**options), BatchNormalization(**options)
    for layer in (plain, fused):
        layer.build(x.shape)
    random = [rng.normal(size=w.shape).astype("float32") for w in plain.trainable_weights]
    for layer in (plain, fused):
        layer.set_weights(random + [np.zeros(8, "float32"), np.ones(8, "float32")])

    y0, grads0, stats0 = one_training_call(plain, x, direction)
    y1, grads1, stats1 = one_training_call(fused, x, direction)

    assert y1.dtype == y0.dtype
    np.testing.assert_allclose(tf.cast(y1, "float32"), tf.cast(y0, "float32"), atol=tolerance)
    for g1, g0 in zip(grads1, grads0, strict=True):
        np.testing.assert_allclose(g1, g0, atol=tolerance, rtol=tolerance)
    # The moving variance averages the biased batch variance, as Keras's does.
    for s1, s0 in zip(stats1, stats0, strict=True):
        np.testing.assert_allclose(s1, s0, rtol=1e-5, atol=1e-6)


def graph_ops(layer, x, training):
    function = tf.function(lambda t: layer(t, training=training))
    return {op.type for op in function.get_concrete_function(x).graph.get_operations()}


def test_it_trains_as_one_fused_kernel_and_infers_as_keras_does():
    layer = BatchNormalization(**RECIPE_LIKE)
    x = tf.zeros((4, 3, 3, 8))
    assert "FusedBatchNormV3" in graph_ops(layer, x, training=True)
    assert "FusedBatchNormV3" not in graph_ops(layer, x, training=False)


def test_inputs_the_kernel_cannot_take_go_through_keras():
    layer = BatchNormalization()
    vectors = tf.constant(np.random.default_rng(0).normal(size=(8, 4)).astype("float32"))
    assert "FusedBatchNormV3" not in graph_ops(layer, vectors, training=True)
    mean = layer(vectors, training=True).numpy().mean(axis=0)
    np.testing.assert_allclose(mean, 0.0, atol=1e-5)


@pytest.mark.parametrize("kernel_size, size", [(3, 5), (5, 4), ((1, 3), 3)])
def test_the_kernel_gradient_as_matrix_products_is_tensorflows(kernel_size, size):
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(3, size, size + 1, 4)).astype("float32"))
    dy = tf.constant(rng.normal(size=(3, size, size + 1, 6)).astype("float32"))
    expected = tf.raw_ops.Conv2DBackpropFilter(
        input=x, filter_sizes=[kh, kw, 4, 6], out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME"
    )
    np.testing.assert_allclose(
        kernel_gradient_by_matmuls(x, dy, (kh, kw, 4, 6)), expected, rtol=1e-5, atol=1e-5
    )


def conv_gradients(layer, x, direction):
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = layer(tf.cast(x, layer.compute_dtype))
        loss = tf.reduce_sum(tf.cast(outputs, "float32") * direction)
    return outputs, tape.gradient(loss, [x, layer.kernel])


@pytest.mark.parametrize("policy", ["mixed_bfloat16"], indirect=True)
def test_a_small_bfloat16_convolution_computes_what_keras_computes(policy):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(8, 7, 7, 16)).astype("float32"))
    direction = tf.constant(rng.normal(size=(8, 7, 7, 32)).astype("float32"))
    plain = keras.layers.Conv2D(32, 3, padding="same", use_bias=False)
    fast = Conv2D.from_config(plain.get_config())
    for layer in (plain, fast):
        layer.build(x.shape)
    fast.set_weights(plain.get_weights())

    y0, (dx0, dk0) = conv_gradients(plain, x, direction)
    y1, (dx1, dk1) = conv_gradients(fast, x, direction)

    assert y1.dtype == y0.dtype == tf.bfloat16 and dk1.dtype == dk0.dtype == tf.float32
    np.testing.assert_array_equal(tf.cast(y1, "float32"), tf.cast(y0, "float32"))
    np.testing.assert_array_equal(dx1, dx0)  # TensorFlow's own input gradient
    scale = float(tf.reduce_max(tf.abs(dk0)))
    np.testing.assert_allclose(dk1 / scale, dk0 / scale, atol=1e-2)


def gradient_ops(layer, shape):
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(tf.cast(x, layer.compute_dtype))
        return tape.gradient(y, layer.kernel)

    graph = tf.function(step).get_concrete_function(tf.TensorSpec(shape)).graph
    return {op.type for op in graph.get_operations()}


@pytest.mark.parametrize(
    "policy, shape, by_matmuls",
    [
        ("mixed_bfloat16", (2, 7, 7, 8), True),
        ("mixed_bfloat16", (2, 15, 15, 8), False),  # larger maps: oneDNN's kernel is faster
        ("float32", (2, 7, 7, 8), False),  # float32: oneDNN's kernel is faster on every map
    ],
    indirect=["policy"],
)
def test_matrix_products_replace_onednns_kernel_gradient_only_where_they_are_faster(
    policy, shape, by_matmuls
):
    layer = Conv2D(4, 3, padding="same")
    ops = gradient_ops(layer, shape)
    assert ("MatMul" in ops) == by_matmuls
    assert ("Conv2DBackpropFilter" in ops) != by_matmuls


@pytest.mark.parametrize("policy", ["mixed_bfloat16"], indirect=True)
def test_strided_or_valid_convolutions_keep_keras_gradient(policy):
    for layer in (Conv2D(4, 3, strides=2, padding="same"), Conv2D(4, 2, padding="valid")):
        assert "MatMul" not in gradient_ops(layer, (2, 7, 7, 8))


def gelu_and_gradient(gelu, x, direction):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = gelu(x)
        loss = tf.reduce_sum(tf.cast(y, "float32") * direction)
    return tf.cast(y, "float32"), tf.cast(tape.gradient(loss, x), "float32")


@pytest.mark.parametrize("dtype, tolerance", [("float32", 1e-6), ("bfloat16", 1e-2)])
def test_gelu_by_erf_computes_kerass_exact_gelu_and_its_gradient(dtype, tolerance):
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 3, 1000), [-40.0, -6.0, 0.0, 6.0, 40.0]])
    x = tf.cast(values.astype("float32"), dtype)
    direction = tf.constant(rng.normal(size=values.shape).astype("float32"))

    y0, dx0 = gelu_and_gradient(keras.activations.gelu, x, direction)
    y1, dx1 = gelu_and_gradient(gelu_by_erf, x, direction)

    assert gelu_by_erf(x).dtype == x.dtype
    for fast, plain in ((y1, y0), (dx1, dx0)):
        scale = float(tf.reduce_max(tf.abs(plain)))
        np.testing.assert_allclose(fast / scale, plain / scale, atol=tolerance)
    # The function's own shape, not just agreement: GELU(x) = x * Phi(x).
    np.testing.assert_allclose(tf.cast(gelu_by_erf(tf.constant([-40.0, 0.0, 40.0])), "float32"),
                               [0.0, 0.0, 40.0], atol=1e-6)  # fmt: skip


def test_gelu_by_erf_keeps_the_inputs_shape_in_the_gradient():
    x = tf.constant(np.linspace(-3, 3, 24).reshape(2, 3, 4).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = gelu_by_erf(x)
    assert tape.gradient(y, x).shape == x.shape


@pytest.mark.parametrize(
    "policy, activation, training, by_erf",
    [
        ("mixed_bfloat16", "gelu", True, True),
        ("mixed_bfloat16", "gelu", False, False),  # inference: Keras's own
        ("mixed_bfloat16", "relu", True, False),
        ("float32", "gelu", True, False),  # float32 trains without XLA's fusion: Keras's GELU
    ],
    indirect=["policy"],
)
def test_only_a_bfloat16_training_gelu_goes_through_erf(policy, activation, training, by_erf):
    ops = graph_ops(Activation(activation), tf.zeros((2, 3, 3, 4)), training=training)
    assert ("Erf" in ops) == by_erf
    assert ("Erfc" in ops) == (activation == "gelu" and not by_erf)


def test_the_training_model_has_the_same_layers_weights_and_weight_files(tmp_path):
    model = create_model("resnet_fast", widths=(8, 8, 8))
    training_model = with_fast_layers(model)

    assert [layer.name for layer in training_model.layers] == [layer.name for layer in model.layers]
    assert sum(isinstance(layer, BatchNormalization) for layer in training_model.layers) == 6
    assert sum(isinstance(layer, Conv2D) for layer in training_model.layers) == 7  # and whiten
    assert sum(isinstance(layer, Activation) for layer in training_model.layers) == 8  # and softmax
    assert not any(
        isinstance(layer, (BatchNormalization, Conv2D, Activation)) for layer in model.layers
    )
    for trained, built in zip(training_model.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(trained, built)
    # Weights written in training (checkpoints, best weights) load into the plain model.
    for variable in training_model.non_trainable_variables:
        variable.assign(variable + 1.0)
    training_model.save_weights(tmp_path / "trained.weights.h5")
    model.load_weights(tmp_path / "trained.weights.h5")
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        model.predict(images, verbose=0), training_model.predict(images, verbose=0)
    )


def test_a_model_without_top_level_batch_norm_or_conv_comes_back_as_is():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    assert with_fast_layers(model) is model
