"""A TensorFlow Serving SavedModel with two signatures, both returning the (temperature-calibrated)
`probabilities`, the predicted `classes` (names) and `class_names`:

- ``serving_default``: ``images``, uint8 ``[N, 32, 32, 3]`` RGB;
- ``serve_bytes``: ``image_bytes``, a string ``[N]`` of encoded JPEG/PNG/GIF/BMP files, decoded,
  composited over white where transparent, centre-cropped to a square and resized to 32x32 inside
  the graph as `cifar_cnn.data.images` does (area averaging down, bicubic up). EXIF
  orientation is not applied in the graph: rotate such photos before sending them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from cifar_cnn.atomic import temporary_sibling
from cifar_cnn.export.graph import IMAGE_SIZE, calibrated, decode_to_model_input


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
        probabilities = calibrated(model(images, training=False), temperature)
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
