"""ONNX models (via tf2onnx), and a runner for them (onnxruntime).

>>> from cifar_cnn.export.onnx import ONNXClassifier, export_onnx
>>> export_onnx(classifier, "resnet_fast.onnx")
>>> ONNXClassifier("resnet_fast.onnx").predict(images)     # (N, 10), as classifier.predict

The model takes ``images``, uint8 ``[N, 32, 32, 3]`` RGB, and returns ``probabilities``, float32
``[N, 10]``, temperature-calibrated as `CifarClassifier.predict` returns them.

TensorFlow computes the exact GELU as `0.5 x erfc(-x / sqrt 2)`, and ONNX has no Erfc
(onnx/tensorflow-onnx#2463): converted as it is, the flagship gives an invalid file. The export
rebuilds the network with the same GELU written as `0.5 x (1 + erf(x / sqrt 2))` (equal in exact
arithmetic; tests/test_export.py measures the float32 difference) and the same weights.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import keras
import numpy as np
import onnx.defs
import onnxruntime
import tensorflow as tf
import tf2onnx

from cifar_cnn.atomic import atomic_write_bytes
from cifar_cnn.data.images import ImageLike, to_model_input
from cifar_cnn.export.graph import IMAGE_SIZE, calibrated

#: ONNX opset 17 (2022): onnxruntime 1.13 and later run it.
OPSET = 17


def gelu_with_erf(x):
    """The exact GELU through erf, which ONNX has (TensorFlow's goes through erfc)."""
    return 0.5 * x * (1.0 + tf.math.erf(x * 0.7071067811865476))


def without_erfc(model: keras.Model) -> keras.Model:
    """The same network and weights, its GELU activations computed through erf."""

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if isinstance(layer, keras.layers.Activation) and config.get("activation") == "gelu":
            return keras.layers.Activation(gelu_with_erf, name=layer.name, dtype=layer.dtype_policy)
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def export_onnx(classifier: Any, path: str | os.PathLike, opset: int = OPSET) -> Path:
    """Write `classifier` as an ONNX model to `path`, atomically."""
    model, temperature = without_erfc(classifier.model), classifier.temperature
    signature = [tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 3], tf.uint8, name="images")]

    @tf.function(input_signature=signature)
    def serve(images):
        probabilities = calibrated(model(images, training=False), temperature)
        return {"probabilities": tf.identity(probabilities, name="probabilities")}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=signature, opset=opset)
    unsupported = sorted({node.op_type for node in proto.graph.node} - _onnx_operators(opset))
    if unsupported:
        raise ValueError(f"the converted model uses operators ONNX lacks: {unsupported}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, proto.SerializeToString())
    return path


def _onnx_operators(opset: int) -> set[str]:
    return {schema.name for schema in onnx.defs.get_all_schemas_with_history()
            if schema.domain in ("", "ai.onnx") and schema.since_version <= opset}  # fmt: skip


class ONNXClassifier:
    """Run an exported .onnx file with onnxruntime: `predict(images)` -> (N, 10) probabilities."""

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        options = onnxruntime.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        self.session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[0].name

    def predict(self, images: ImageLike | list[ImageLike]) -> np.ndarray:
        """Probabilities: (10,) for one image, (N, 10) for a batch; images as `predict` takes
        them (paths, bytes, PIL images, arrays of any size)."""
        batch, single = to_model_input(images)
        probabilities = self.session.run([self.output], {self.input: batch})[0]
        return probabilities[0] if single else probabilities
