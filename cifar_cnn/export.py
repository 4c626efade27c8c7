"""Export a classifier for serving outside Python: a TensorFlow Serving SavedModel, or TFLite.

>>> from cifar_cnn.export import export_saved_model, export_tflite
>>> export_saved_model(classifier, "serving/cifar10/1")       # TF Serving's version folder
>>> export_tflite(classifier, "cifar10-int8.tflite", quantization="int8",
...               representative_images=data.x_train[:500])

The SavedModel has two signatures, both returning the (temperature-calibrated) `probabilities`,
the predicted `classes` (names) and `class_names`:

- ``serving_default``: ``images``, uint8 ``[N, 32, 32, 3]`` RGB;
- ``serve_bytes``: ``image_bytes``, a string ``[N]`` of encoded JPEG/PNG/GIF/BMP files, decoded,
  composited over white where transparent, centre-cropped to a square and resized to 32x32 inside
  the graph as `cifar_cnn.data.images` does (area averaging down, bicubic up). EXIF
  orientation is not applied in the graph: rotate such photos before sending them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from cifar_cnn.atomic import temporary_sibling

IMAGE_SIZE = 32
QUANTIZATIONS = ("float32", "float16", "int8")


def _calibrated(probabilities: tf.Tensor, temperature: float | None) -> tf.Tensor:
    if not temperature:
        return probabilities
    logits = tf.math.log(tf.maximum(probabilities, 1e-12)) / temperature
    return tf.nn.softmax(logits, axis=-1)


def decode_to_model_input(encoded: tf.Tensor) -> tf.Tensor:
    """One encoded image (a scalar string) to uint8 [32, 32, 3], in the graph."""
    # Decode with the file's own channel count (JPEG and GIF decoders refuse to make 4), then
    # bring gray, gray+alpha and RGB to RGBA.
    decoded = tf.cast(tf.io.decode_image(encoded, channels=0, expand_animations=False), tf.float32)
    channels = tf.shape(decoded)[-1]
    opaque = tf.fill(tf.concat([tf.shape(decoded)[:2], [1]], axis=0), 255.0)
    rgba = tf.switch_case(
        tf.clip_by_value(channels, 1, 4) - 1,
        [
            lambda: tf.concat([tf.repeat(decoded[..., :1], 3, axis=-1), opaque], axis=-1),
            lambda: tf.concat([tf.repeat(decoded[..., :1], 3, axis=-1), decoded[..., 1:2]], -1),
            lambda: tf.concat([decoded[..., :3], opaque], axis=-1),
            lambda: decoded[..., :4],
        ],
    )
    alpha = rgba[..., 3:] / 255.0
    rgb = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)  # transparent parts on white
    height, width = tf.shape(rgb)[0], tf.shape(rgb)[1]
    side = tf.minimum(height, width)
    square = tf.image.crop_to_bounding_box(
        rgb, (height - side) // 2, (width - side) // 2, side, side
    )
    size = [IMAGE_SIZE, IMAGE_SIZE]
    resized = tf.cond(
        side >= IMAGE_SIZE,
        lambda: tf.image.resize(square, size, method="area"),
        lambda: tf.image.resize(square, size, method="bicubic"),
    )
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def export_saved_model(classifier: Any, directory: str | os.PathLike) -> Path:
    """Write a SavedModel for TensorFlow Serving to `directory` (conventionally
    ``.../MODEL_NAME/VERSION``), atomically: it appears complete or not at all."""
    directory = Path(directory)
    if directory.exists():
        raise ValueError(f"{directory} already exists; choose a new version folder")
    directory.parent.mkdir(parents=True, exist_ok=True)
    model, temperature = classifier.model, classifier.temperature
    class_names = list(classifier.class_names)

    def serve_images(images):
        probabilities = _calibrated(model(images, training=False), temperature)
        names = tf.constant(class_names)
        return {
            "probabilities": probabilities,
            "classes": tf.gather(names, tf.argmax(probabilities, axis=-1)),
            "class_names": tf.tile(names[None], [tf.shape(images)[0], 1]),
        }

    def serve_bytes(image_bytes):
        images = tf.map_fn(
            decode_to_model_input,
            image_bytes,
            fn_output_signature=tf.TensorSpec([IMAGE_SIZE, IMAGE_SIZE, 3], tf.uint8),
        )
        return serve_images(images)

    # Keras's exporter tracks the model's variables so that every loader finds them, TF1-style
    # ones such as saved_model_cli and TensorFlow Serving included.
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        serve_images,
        input_signature=[tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 3], tf.uint8, name="images")],
    )
    archive.add_endpoint(
        "serve_bytes",
        serve_bytes,
        input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")],
    )
    staging = temporary_sibling(directory)
    archive.write_out(str(staging), verbose=False)
    os.replace(staging, directory)
    return directory


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
    tmp = temporary_sibling(path)
    tmp.write_bytes(flatbuffer)
    os.replace(tmp, path)
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
        self.interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=num_threads)
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
