"""What every model starts with: a uint8 32x32 RGB input, standardised inside the model, so a
saved model cannot be fed wrongly."""

from __future__ import annotations

import keras
import numpy as np

from cifar_cnn.data.cifar10 import CIFAR10_MEAN, CIFAR10_STD, IMAGE_SHAPE


def image_input() -> keras.KerasTensor:
    return keras.Input(shape=IMAGE_SHAPE, dtype="uint8", name="image")


def standardize(x: keras.KerasTensor) -> keras.KerasTensor:
    """uint8 0..255 to per-channel zero mean, unit variance (CIFAR-10 training statistics)."""
    mean, std = np.array(CIFAR10_MEAN), np.array(CIFAR10_STD)
    scale = (1.0 / (255.0 * std)).tolist()
    return keras.layers.Rescaling(scale=scale, offset=(-mean / std).tolist(), name="standardize")(x)
