"""BatchNorm for training as oneDNN's fused kernels: `with_fused_batch_norm(model)`.

Keras 3 computes a training BatchNorm as separate operations (mean, squared difference, mean,
rsqrt, multiply, add, and under bfloat16 a cast up and one back), each one pass over the
activations. TensorFlow's `FusedBatchNormV3`, which oneDNN implements on a CPU, does the forward
pass as one kernel and the backward pass as another, in float32 or bfloat16. On the 2-core Xeon
with AMX, resnet_fast's bfloat16 training step went from 1,325 to 989 ms (`python
bench/training_profile.py`; docs/performance.md, "Fused BatchNorm").

Only training changes: the layers compute the same function with the same variables, evaluate
through Keras's own code, and `training.train` saves the plain Keras model its recipe builds.
"""

from __future__ import annotations

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


def with_fused_batch_norm(model: keras.Model) -> keras.Model:
    """A copy of a functional `model` whose top-level `keras.layers.BatchNormalization` layers
    run as fused kernels in training (this module's `BatchNormalization`), with the same
    weights; the model itself if it has none.

    Layers nested in a sub-model (such as a pretrained backbone) are left as they are.
    """
    plain = keras.layers.BatchNormalization
    if not any(type(layer) is plain for layer in model.layers):
        return model

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        cls = BatchNormalization if type(layer) is plain else type(layer)
        return cls.from_config(layer.get_config())

    fused = keras.models.clone_model(model, clone_function=clone)
    fused.set_weights(model.get_weights())
    return fused
