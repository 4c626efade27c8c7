"""TFLite files for phones and small devices, float32, float16 or int8, and a runner for them.

The runner uses LiteRT (`ai_edge_litert`), TFLite's successor, where it is installed, and
TensorFlow's own `tf.lite.Interpreter` (scheduled for deletion) elsewhere.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from cifar_cnn.atomic import atomic_write_bytes
from cifar_cnn.export.graph import IMAGE_SIZE

try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:  # pragma: no cover - ai-edge-litert is in requirements.txt
    Interpreter = tf.lite.Interpreter

QUANTIZATIONS = ("float32", "float16", "int8")


def export_tflite(
    classifier: Any,
    path: str | os.PathLike,
    quantization: str = "float16",
    representative_images: np.ndarray | None = None,
) -> Path:
    """Write a TFLite model taking uint8 [1, 32, 32, 3] and returning the raw probabilities.

    `quantization`: "float32" (none), "float16" (weights), or "int8" (weights and activations,
    calibrated on `representative_images`, a few hundred training images; operations without an
    integer kernel stay float)."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"unknown quantization {quantization!r}; choose {', '.join(QUANTIZATIONS)}"
        )
    if quantization == "int8" and (representative_images is None or not len(representative_images)):
        raise ValueError("int8 quantization needs representative_images (training images)")
    # Through Keras's own SavedModel export, which the converter reads with every variable
    # frozen (a plain tf.Module or concrete function left them as resource reads: garbage).
    model = classifier.model
    if quantization == "int8":
        model = scales_moved_before_relu(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve",
        lambda images: model(images, training=False),
        input_signature=[tf.TensorSpec([1, IMAGE_SIZE, IMAGE_SIZE, 3], tf.uint8)],
    )
    with tempfile.TemporaryDirectory() as staging:
        archive.write_out(staging, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(staging)
        flatbuffer = _convert(converter, quantization, representative_images)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, flatbuffer)
    return path


def scales_moved_before_relu(model: keras.Model) -> keras.Model:
    """The same function with each BatchNormalization that follows a ReLU-activated Dense or
    Conv2D (as its only user) reduced to the sign of its scale and its shift, the scale's
    magnitude moved into that layer's kernel and bias: `s * relu(z) = sign(s) * relu(|s| * z)`.

    Why: int8 quantizes each activation tensor with one scale. Before, the ReLU's output was
    quantized raw, with units of very different ranges, and the BatchNormalization then multiplied
    the quantization error of the quiet units by up to ~30 (TFLite fuses it into the next Dense):
    seed_cnn's int8 file agreed with Keras on 31% of 300 slice images. After, the ReLU's output is
    already normalised: 99.3%. Exact in float32 (to ~1e-6); a model without the pattern comes
    back as is; the model passed in is not changed.
    """
    config = json.loads(json.dumps(model.get_config()))
    layers = {layer["name"]: layer for layer in config.get("layers", [])}

    def inputs_of(layer: dict) -> list[str]:
        inbound = json.dumps(layer["inbound_nodes"])
        return [name for name in layers if name != layer["name"] and f'"{name}"' in inbound]

    outputs = json.dumps(config.get("output_layers", []))
    pairs = []
    for layer in layers.values():
        bn = layer["config"]
        if (
            layer["class_name"] != "BatchNormalization"
            or not (bn["scale"] and bn["center"])
            or bn["axis"] not in (-1, [-1])  # per channel, channels last
        ):
            continue
        sources = inputs_of(layer)
        producer = layers[sources[0]] if len(sources) == 1 else None
        if (
            producer is None
            or producer["class_name"] not in ("Dense", "Conv2D")
            or producer["config"].get("data_format", "channels_last") != "channels_last"
            or producer["config"].get("activation") != "relu"
            or not producer["config"].get("use_bias")
            or f'"{producer["name"]}"' in outputs  # its raw output is wanted as it is
            or [name for name, user in layers.items() if producer["name"] in inputs_of(user)]
            != [layer["name"]]
        ):
            continue
        pairs.append((producer["name"], layer["name"]))
    if not pairs:
        return model
    moved = keras.models.clone_model(model)
    moved.set_weights(model.get_weights())
    for producer_name, batch_norm_name in pairs:
        producer, batch_norm = moved.get_layer(producer_name), moved.get_layer(batch_norm_name)
        gamma, beta, mean, variance = (
            np.asarray(v, np.float64)
            for v in (batch_norm.gamma, batch_norm.beta, batch_norm.moving_mean,
                      batch_norm.moving_variance)
        )  # fmt: skip
        scale = gamma / np.sqrt(variance + batch_norm.epsilon)
        producer.kernel.assign(np.asarray(producer.kernel) * np.abs(scale))
        producer.bias.assign(np.asarray(producer.bias) * np.abs(scale))
        # gamma / sqrt(variance + epsilon) is then exactly sign(scale).
        batch_norm.gamma.assign(np.sign(scale) * np.sqrt(1 + batch_norm.epsilon))
        batch_norm.beta.assign(beta - mean * scale)
        batch_norm.moving_mean.assign(np.zeros_like(mean))
        batch_norm.moving_variance.assign(np.ones_like(variance))
    return moved


def _convert(converter, quantization: str, representative_images: np.ndarray | None) -> bytes:
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [image[None]] for image in representative_images
        )
    return converter.convert()


class TFLiteClassifier:
    """Run an exported .tflite file: `predict(images)` -> (N, 10) probabilities."""

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def predict(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, np.uint8)
        out = np.empty((len(images), self.output["shape"][-1]), np.float32)
        for i, image in enumerate(images):
            self.interpreter.set_tensor(self.input["index"], image[None])
            self.interpreter.invoke()
            out[i] = self.interpreter.get_tensor(self.output["index"])[0]
        return out
