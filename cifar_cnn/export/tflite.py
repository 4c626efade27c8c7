"""TFLite files for phones and small devices, float32, float16 or int8, and a runner for them.

The runner uses LiteRT (`ai_edge_litert`), TFLite's successor, where it is installed, and
TensorFlow's own `tf.lite.Interpreter` (scheduled for deletion) elsewhere.
"""

from __future__ import annotations

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
