"""Layers that train faster than Keras's own on a CPU: `with_fast_layers(model)`.

Same functions, same variables; only how a training step computes them changes:

- `BatchNormalization` trains as oneDNN's fused kernels. Keras 3 computes a training BatchNorm as
  separate operations (mean, squared difference, mean, rsqrt, multiply, add, and under bfloat16 a
  cast up and one back), each one pass over the activations; TensorFlow's `FusedBatchNormV3`,
  which oneDNN implements on a CPU, does the forward pass as one kernel and the backward pass as
  another, in float32 or bfloat16. On the 2-core Xeon with AMX, resnet_fast's bfloat16 training
  step went from 1,325 to 989 ms (`python bench/training_profile.py`; docs/performance.md, "Fused
  BatchNorm").
- `Conv2D` computes a 3x3 kernel's gradient on small bfloat16 maps as nine matrix products, one per
  kernel offset, where oneDNN's bfloat16 kernel for it is slow (`python
  bench/conv_weight_gradient.py`; docs/performance.md, "Kernel gradients as matrix products").
- `Activation("gelu")` computes the exact GELU of bfloat16 activations as `gelu_by_erf`: through
  the error function in float32, with a hand-written gradient (`python bench/gelu.py`;
  docs/performance.md, "GELU through the error function").

Layers evaluate through Keras's own code, and `training.train` saves the plain Keras model its
recipe builds. The classes keep Keras's names because Keras's weights files address each layer by
its class name: checkpoints and best weights written in training load into the plain model.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

#: Input types oneDNN's fused BatchNorm takes (its statistics and scale are float32 either way).
FUSED_DTYPES = ("float32", "bfloat16")


@keras.saving.register_keras_serializable(package="cifar_cnn_training")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose training step on 4-D channels-last inputs runs as
    `tf.raw_ops.FusedBatchNormV3` (and its gradient as `FusedBatchNormGradV3`).

    Same variables, same moving-statistics update (momentum, biased batch variance) and the same
    outputs up to rounding. Anything else (inference, masks, renorm, synchronized statistics,
    another axis or dtype) goes through Keras's own code. The class keeps Keras's name because
    Keras's weights files address each layer by its class name: checkpoints and best weights
    written in training load into the plain model, and the other way round.
    """

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable and self._fusable(inputs, mask)):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=tf.cast(self.gamma, "float32") if self.scale else tf.ones(channels),
            offset=tf.cast(self.beta, "float32") if self.center else tf.zeros(channels),
            mean=tf.constant([], "float32"),
            variance=tf.constant([], "float32"),
            epsilon=self.epsilon,
            data_format="NHWC",
            is_training=True,
        )
        # The kernel returns the unbiased batch variance; Keras averages the biased one.
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), "float32")
        variance = variance * (count - 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
        )
        return outputs

    def _fusable(self, inputs, mask) -> bool:
        rank = len(inputs.shape)
        return (
            mask is None
            and rank == 4
            and self.axis in (-1, rank - 1)
            and not self.renorm
            and not self.synchronized
            and keras.backend.standardize_dtype(inputs.dtype) in FUSED_DTYPES
            and keras.backend.backend() == "tensorflow"
        )


#: The largest map (height and width) whose kernel gradient `Conv2D` computes as matrix products.
#: `python bench/conv_weight_gradient.py` on the AMX Xeon, bfloat16, batch 1,024, 256 channels:
#: 3.5x as fast as oneDNN on 3x3 maps, 1.1x on 7x7, 3-5x slower on 15x15 and 31x31; in float32,
#: slower on every map.
MATMUL_GRADIENT_MAX_SIZE = 8


def kernel_gradient_by_matmuls(inputs: tf.Tensor, d_outputs: tf.Tensor, kernel_shape) -> tf.Tensor:
    """The kernel gradient of a stride-1 "same" convolution, as one matrix product per kernel
    offset: dW[i, j] = x shifted by (i, j), as (images * rows * columns, in channels), transposed,
    times dY as (images * rows * columns, out channels)."""
    kh, kw, channels_in, channels_out = kernel_shape
    height, width = inputs.shape[1], inputs.shape[2]
    top, left = (kh - 1) // 2, (kw - 1) // 2  # "same" padding, as TensorFlow splits it
    padded = tf.pad(inputs, [[0, 0], [top, kh - 1 - top], [left, kw - 1 - left], [0, 0]])
    d_rows = tf.reshape(d_outputs, [-1, channels_out])
    products = [
        tf.matmul(
            tf.reshape(padded[:, i : i + height, j : j + width, :], [-1, channels_in]),
            d_rows,
            transpose_a=True,
        )
        for i in range(kh)
        for j in range(kw)
    ]
    return tf.reshape(tf.stack(products), kernel_shape)


@tf.custom_gradient
def _conv_same_with_matmul_gradient(inputs: tf.Tensor, kernel: tf.Tensor):
    outputs = tf.nn.conv2d(inputs, kernel, strides=1, padding="SAME")

    def gradient(d_outputs):
        d_inputs = tf.raw_ops.Conv2DBackpropInput(
            input_sizes=tf.shape(inputs),
            filter=kernel,
            out_backprop=d_outputs,
            strides=[1, 1, 1, 1],
            padding="SAME",
        )
        return d_inputs, kernel_gradient_by_matmuls(inputs, d_outputs, kernel.shape)

    return outputs, gradient


@keras.saving.register_keras_serializable(package="cifar_cnn_training")
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose kernel gradient, for a stride-1 "same" convolution of bfloat16
    maps no larger than `MATMUL_GRADIENT_MAX_SIZE`, is `kernel_gradient_by_matmuls` (the outputs
    and the input gradient are TensorFlow's, through oneDNN, as always).

    Anything else goes through Keras's own code. The class keeps Keras's name (see the module).
    """

    def convolution_op(self, inputs, kernel):
        if not self._by_matmuls(inputs):
            return super().convolution_op(inputs, kernel)
        return _conv_same_with_matmul_gradient(inputs, tf.convert_to_tensor(kernel))

    def _by_matmuls(self, inputs) -> bool:
        height, width = inputs.shape[1], inputs.shape[2]
        return (
            keras.backend.backend() == "tensorflow"
            and keras.backend.standardize_dtype(inputs.dtype) == "bfloat16"
            and self.rank == 2
            and self.data_format == "channels_last"
            and self.padding == "same"
            and tuple(self.strides) == (1, 1)
            and tuple(self.dilation_rate) == (1, 1)
            and self.groups == 1
            and all(k % 2 == 1 for k in self.kernel_size)
            and height is not None
            and width is not None
            and max(height, width) <= MATMUL_GRADIENT_MAX_SIZE
        )


@tf.custom_gradient
def gelu_by_erf(x: tf.Tensor):
    """The exact GELU, x * Phi(x), computed in float32 through the error function, in `x`'s dtype.

    Keras's GELU (`tf.nn.gelu`) computes 0.5 * x * erfc(-x / sqrt(2)) in the activations' own
    dtype, and its gradient is TensorFlow's automatic one, which keeps the forward pass's erfc for
    the backward pass. Under XLA's fusion (bfloat16 training on a CPU) this form costs much less,
    with its gradient, Phi(x) + x * phi(x), recomputed from the input instead of read from a saved
    tensor: on the AMX Xeon, resnet_fast's seven GELUs, forward and backward at batch
    1,024 in bfloat16, took 96 ms against Keras's 259 (`python bench/gelu.py`). Same function;
    the values differ by bfloat16 rounding.
    """
    dtype = x.dtype

    def phi(x32):  # Phi(x), the standard normal distribution function
        return 0.5 + 0.5 * tf.math.erf(x32 * (1 / math.sqrt(2)))

    def gradient(d_outputs):
        # On a flat view of x: otherwise Grappler's common-subexpression elimination would hand
        # the forward pass's float32 x and Phi(x) to the backward pass, two float32 copies of the
        # activations written and read again instead of one cheap recomputation.
        x32 = tf.cast(tf.reshape(x, [-1]), "float32")
        density = tf.exp(-0.5 * x32 * x32) * (1 / math.sqrt(2 * math.pi))
        d_x = tf.cast(tf.reshape(d_outputs, [-1]), "float32") * (phi(x32) + x32 * density)
        return tf.reshape(tf.cast(d_x, dtype), tf.shape(x))

    x32 = tf.cast(x, "float32")
    return tf.cast(x32 * phi(x32), dtype), gradient


@keras.saving.register_keras_serializable(package="cifar_cnn_training")
class Activation(keras.layers.Activation):
    """`keras.layers.Activation` whose exact GELU of bfloat16 inputs in training is
    `gelu_by_erf`.

    Anything else (inference, another activation, dtype or backend) goes through Keras's own code.
    """

    def call(self, inputs, training=None):
        if (
            training
            and self.activation is keras.activations.gelu
            and keras.backend.backend() == "tensorflow"
            and keras.backend.standardize_dtype(inputs.dtype) == "bfloat16"
        ):
            return gelu_by_erf(inputs)
        return super().call(inputs)


#: Keras's layer -> the one that trains faster.
FAST_LAYERS = {
    keras.layers.BatchNormalization: BatchNormalization,
    keras.layers.Conv2D: Conv2D,
    keras.layers.Activation: Activation,
}


def with_fast_layers(model: keras.Model) -> keras.Model:
    """A copy of a functional `model` whose top-level Keras `BatchNormalization` and `Conv2D`
    layers are this module's, with the same weights; the model itself if it has none.

    Layers nested in a sub-model (such as a pretrained backbone) are left as they are.
    """
    if not any(type(layer) in FAST_LAYERS for layer in model.layers):
        return model

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        return FAST_LAYERS.get(type(layer), type(layer)).from_config(layer.get_config())

    fast = keras.models.clone_model(model, clone_function=clone)
    fast.set_weights(model.get_weights())
    return fast
