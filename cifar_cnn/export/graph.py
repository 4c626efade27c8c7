"""What every export does inside its graph: calibrate the probabilities, and (for TF Serving)
decode an image file into the model's input as `cifar_cnn.data.images` does."""

from __future__ import annotations

import tensorflow as tf

from cifar_cnn.data.cifar10 import IMAGE_SHAPE

IMAGE_SIZE = IMAGE_SHAPE[0]


def calibrated(probabilities: tf.Tensor, temperature: float | None) -> tf.Tensor:
    """`cifar_cnn.trust.calibration.apply_temperature`, in the graph: softmax(log(p) / T)."""
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
