"""Custom Keras layers inside the models, registered so saved models load with safe_mode=True,
and `fold_scaled_biases`, which removes them where that is exact so plain Keras loads the model."""

from __future__ import annotations

import json
from typing import Any

import keras
import numpy as np


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


def fold_scaled_biases(model: keras.Model) -> keras.Model:
    """The same model with each `BatchNormalization(center=False)` + `ScaledBias` pair folded into
    one `BatchNormalization` whose beta is `scale * stored`, so plain Keras can load it.

    Exact: the folded model's predictions are bit-identical (tests/test_layers.py checks a
    resnet_fast with random biases and statistics; the shipped flagship was checked the same way
    when it was re-saved). Top-level layers only; a model without ScaledBias comes back as is.
    """
    # A JSON round trip turns the config's tuples into lists that can be edited in place.
    config = json.loads(json.dumps(model.get_config()))
    if not any(layer["class_name"] == "ScaledBias" for layer in config.get("layers", [])):
        return model
    by_name = {layer["name"]: layer for layer in config["layers"]}
    folded_into: dict[str, str] = {}  # ScaledBias layer name -> the BatchNormalization before it
    for layer in [c for c in config["layers"] if c["class_name"] == "ScaledBias"]:
        (node,) = layer["inbound_nodes"]
        source = node["args"][0]["config"]["keras_history"][0]
        batch_norm = by_name[source]
        bn = batch_norm["config"]
        if batch_norm["class_name"] != "BatchNormalization" or bn["center"] or bn["scale"]:
            raise ValueError(
                f"{layer['name']}: can only fold a ScaledBias after a BatchNormalization "
                "with neither centre nor scale"
            )
        users = [c for c in config["layers"] if f'"{source}"' in json.dumps(c["inbound_nodes"])]
        if users != [layer]:
            raise ValueError(f"{layer['name']}: {source}'s output has other users; not folded")
        batch_norm["config"]["center"] = True
        folded_into[layer["name"]] = source
        config["layers"].remove(layer)

    def rewire(item: Any) -> None:
        if isinstance(item, dict):
            history = item.get("keras_history")
            if history and history[0] in folded_into:
                history[0] = folded_into[history[0]]
            for value in item.values():
                rewire(value)
        elif isinstance(item, list):
            if item and isinstance(item[0], str) and item[0] in folded_into:  # [name, node, index]
                item[0] = folded_into[item[0]]
            for value in item:
                rewire(value)

    for layer in config["layers"]:
        rewire(layer["inbound_nodes"])
    rewire(config["output_layers"])
    folded = model.__class__.from_config(config)
    betas = {
        folded_into[layer.name]: np.float32(layer.scale) * keras.ops.convert_to_numpy(layer.stored)
        for layer in model.layers
        if layer.name in folded_into
    }
    for layer in folded.layers:
        weights = model.get_layer(layer.name).get_weights()
        if layer.name in betas:  # BatchNormalization(scale=False): beta, moving mean, variance
            weights = [betas[layer.name], *weights]
        layer.set_weights(weights)
    return folded
