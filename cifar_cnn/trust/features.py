"""General-purpose picture features for out-of-distribution detection: an ImageNet-trained
MobileNet (alpha 0.25) that knows coffee cups, faces and landscapes, which a CIFAR-10 model has
never seen and maps onto its ten classes regardless.

>>> from cifar_cnn.trust.features import ImageNetFeatures
>>> features = ImageNetFeatures.load("models/resnet_fast/ood_features.weights.h5")
>>> features(views).shape          # views: uint8 (N, 32, 32, 3)
(N, 256)

The 32x32 views are enlarged to 128x128, as the mobilenet_transfer model does, and the pooled
features are scaled to unit length (the k-nearest-neighbour detector compares directions; Sun et
al., ICML 2022). On the benchmark in docs/ood_benchmark.md these features separate every outlier
source from CIFAR-10 better than the CIFAR-10 models' own features do.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cifar_cnn.hub.layout import OOD_FEATURES_FILE, sha256

#: The file a model folder carries these features' weights in.
FEATURES_FILE = OOD_FEATURES_FILE
FEATURES_INPUT_SIZE = 128
FEATURES_DESCRIPTION = "MobileNet alpha 0.25, ImageNet weights, 128x128 input, average-pooled"

_loaded: dict[str, ImageNetFeatures] = {}
_lock = threading.Lock()


def _backbone(weights: str | None = None) -> keras.Model:
    """The network: `weights` None (random), "imagenet" (Keras's download) or an .h5 file."""
    return keras.applications.MobileNet(
        input_shape=(FEATURES_INPUT_SIZE, FEATURES_INPUT_SIZE, 3),
        alpha=0.25,
        include_top=False,
        weights=weights,
        pooling="avg",
    )


class ImageNetFeatures:
    """Unit-length ImageNet features (256 numbers) of 32x32 uint8 views."""

    def __init__(self, backbone: keras.Model):
        self.backbone = backbone
        spec = tf.TensorSpec((None, 32, 32, 3), tf.uint8)
        self._forward = tf.function(self._features, input_signature=[spec])

    def _features(self, views):
        pixels = tf.image.resize(tf.cast(views, tf.float32), (FEATURES_INPUT_SIZE,) * 2)
        features = self.backbone(pixels / 127.5 - 1.0, training=False)  # MobileNet's [-1, 1]
        return tf.math.l2_normalize(features, axis=-1)

    def __call__(self, views: np.ndarray, batch_size: int = 500) -> np.ndarray:
        batches = range(0, len(views), batch_size)
        return np.concatenate([self._forward(views[i : i + batch_size]).numpy() for i in batches])

    @classmethod
    def from_imagenet_file(cls, path: str | os.PathLike) -> ImageNetFeatures:
        """From Keras's ImageNet weights file for MobileNet alpha 0.25 without its top
        (`mobilenet_2_5_224_tf_no_top.h5`), or "imagenet" to let Keras download it."""
        return cls(_backbone(str(path)))

    def save(self, path: str | os.PathLike) -> None:
        """Write the weights (Keras's weights-only .h5: no code) for `load`."""
        self.backbone.save_weights(str(path))

    @classmethod
    def load(cls, path: str | os.PathLike, digest: str | None = None) -> ImageNetFeatures:
        """The features saved at `path`, built once per process for identical files (every
        shipped model folder carries the same ones); `digest`, the file's SHA-256 if already
        checked, spares reading it again."""
        digest = digest or sha256(Path(path))
        with _lock:
            if digest not in _loaded:
                _loaded[digest] = cls(_backbone(str(path)))
            return _loaded[digest]
