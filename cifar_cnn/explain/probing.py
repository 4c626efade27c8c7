"""Look inside a model: its spatial layers, and any layer's activations with the class scores.

>>> from cifar_cnn.explain.probing import spatial_layers, activations_and_logits
>>> spatial_layers(model)[-1]
'backbone/conv_pw_13_relu'
>>> features, logits = activations_and_logits(model, "backbone/conv_pw_13_relu")(images)

Layers are named by path: "layer" in the model, or "backbone/layer" inside a nested model.
"""

from __future__ import annotations

import keras


def spatial_layers(model: keras.Model, prefix: str = "") -> list[str]:
    """Paths ("layer" or "backbone/layer") of layers with 4-D outputs larger than 1x1, in order.

    These are the layers a CAM can be computed at; nested models are searched too.
    """
    paths = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            paths.extend(spatial_layers(layer, prefix=f"{prefix}{layer.name}/"))
            continue
        if isinstance(layer, keras.layers.InputLayer):
            continue
        shape = getattr(layer, "output", None)
        shape = None if shape is None else shape.shape
        if shape is not None and len(shape) == 4 and (shape[1] or 0) > 1:
            paths.append(f"{prefix}{layer.name}")
    return paths


def resolve_layer(model: keras.Model, path: str) -> list[keras.layers.Layer]:
    """[outer layer, ..., target layer] for "a/b/c"."""
    chain, current = [], model
    for name in path.split("/"):
        layer = current.get_layer(name)
        chain.append(layer)
        current = layer
    return chain


def activations_and_logits(model: keras.Model, path: str):
    """A function images -> (activations at the layer `path`, pre-softmax class scores).

    Nested models are handled by replaying the outer model layer by layer with the inner
    model's chosen activations exposed, so no "graph disconnected" error can arise.
    """
    chain = resolve_layer(model, path)
    last = model.layers[-1]
    if len(chain) == 1:
        trunk = keras.Model(model.inputs, [chain[0].output, last.input])

        def forward(x):
            features, penultimate = trunk(x, training=False)
            return features, logits_of_last(last, penultimate)

        return forward
    # Nested: replay the outer model layer by layer, and inside the backbone expose the target.
    outer, inner_path = chain[0], "/".join(path.split("/")[1:])
    inner = _build_forward_plain(outer, inner_path)
    layers = _chain_layers(model)
    index = layers.index(outer)

    def forward(x):
        for layer in layers[:index]:
            x = layer(x, training=False)
        features, x = inner(x)
        for layer in layers[index + 1 : -1]:
            x = layer(x, training=False)
        return features, logits_of_last(last, x)

    return forward


def _build_forward_plain(model: keras.Model, path: str):
    """images -> (activations at `path`, this (sub)model's plain output)."""
    chain = resolve_layer(model, path)
    if len(chain) != 1:
        raise ValueError(f"layers nested more than one model deep are not supported: {path}")
    trunk = keras.Model(model.inputs, [chain[0].output, model.outputs[0]])
    return lambda x: trunk(x, training=False)


def _chain_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's layers in order, if each feeds only the next (a simple chain)."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    for previous, layer in zip(layers, layers[1:], strict=False):
        inbound = layer._inbound_nodes[0].parent_nodes if layer._inbound_nodes else []
        if [node.operation for node in inbound] != [previous]:
            raise ValueError(
                f"a layer inside a nested model needs the outer model to be a simple chain; "
                f"{layer.name!r} does not follow {previous.name!r} alone"
            )
    return layers


def logits_of_last(last: keras.layers.Layer, x):
    """The pre-softmax class scores of `x`, the input of the model's last layer `last`."""
    if isinstance(last, keras.layers.Activation):
        return x
    if isinstance(last, keras.layers.Dense):
        logits = keras.ops.matmul(x, last.kernel)
        return logits + last.bias if last.use_bias else logits
    raise ValueError(
        f"the last layer must be a softmax Dense or Activation to take pre-softmax scores; "
        f"got {type(last).__name__}"
    )
