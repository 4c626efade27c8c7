"""Custom Keras layers inside the models, registered so saved models load with safe_mode=True."""

import keras


@keras.saving.register_keras_serializable(package="cifar_cnn")
class ReverseChannels(keras.layers.Layer):
    """Reverse the last axis: RGB to BGR, for backbones trained on BGR ("caffe") inputs."""

    def call(self, inputs):
        return keras.ops.flip(inputs, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="cifar_cnn")
class ScaledBias(keras.layers.Layer):
    """Add a per-channel bias stored divided by `scale`: `outputs = inputs + scale * stored`.

    The value is the same, but plain SGD moves it `scale**2` times faster (the gradient of the
    stored variable is `scale` times larger, and each step of it counts `scale` times), while a
    decoupled weight decay still shrinks it by the same fraction per step. This is airbench's
    64x learning rate for BatchNorm biases (scale 8) with one optimizer for every variable.
    """

    def __init__(self, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def build(self, input_shape):
        self.stored = self.add_weight(
            name="stored",
            shape=(input_shape[-1],),
            initializer="zeros",
            trainable=True,
            # Under a mixed policy the variable stays float32 when read, and the sum is taken in
            # float32: a float16 `scale * stored` would lose the small steps the scale is for.
            autocast=False,
        )

    def call(self, inputs):
        outputs = keras.ops.cast(inputs, "float32") + self.scale * self.stored
        return keras.ops.cast(outputs, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale}
