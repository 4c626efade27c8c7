"""training.batch_norm: BatchNorm trains as oneDNN's fused kernels and computes what Keras does."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cifar_cnn.models import create_model
from training.batch_norm import BatchNormalization, with_fused_batch_norm

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


def test_the_training_model_has_the_same_layers_weights_and_weight_files(tmp_path):
    model = create_model("resnet_fast", widths=(8, 8, 8))
    training_model = with_fused_batch_norm(model)

    assert [layer.name for layer in training_model.layers] == [layer.name for layer in model.layers]
    assert sum(isinstance(layer, BatchNormalization) for layer in training_model.layers) == 6
    assert not any(isinstance(layer, BatchNormalization) for layer in model.layers)
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


def test_a_model_without_top_level_batch_norm_comes_back_as_is():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    assert with_fused_batch_norm(model) is model
