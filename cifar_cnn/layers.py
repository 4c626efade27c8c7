"""Custom Keras layers inside the models, registered so saved models load with safe_mode=True."""

import keras


@keras.saving.register_keras_serializable(package="cifar_cnn")
class ReverseChannels(keras.layers.Layer):
    """Reverse the last axis: RGB to BGR, for backbones trained on BGR ("caffe") inputs."""

    def call(self, inputs):
        return keras.ops.flip(inputs, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape
