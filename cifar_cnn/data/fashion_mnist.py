"""Fashion-MNIST (Xiao et al., 2017) as CIFAR-shaped images: real pictures that are none of the
ten CIFAR-10 classes, for measuring out-of-distribution detection.

>>> from cifar_cnn.data.fashion_mnist import load_fashion_mnist
>>> load_fashion_mnist("test", limit=100).shape
(100, 32, 32, 3)

The images come from the Debian package `dataset-fashion-mnist`, or any folder holding the
original IDX files.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import cv2
import numpy as np

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian: dataset-fashion-mnist
FASHION_MNIST_FILES = {"train": "train-images-idx3-ubyte.gz", "test": "t10k-images-idx3-ubyte.gz"}


def load_fashion_mnist(
    split: str = "test", folder: str | os.PathLike = FASHION_MNIST_DIR, limit: int | None = None
) -> np.ndarray:
    """Fashion-MNIST images (Xiao et al., 2017) as CIFAR-shaped uint8 (N, 32, 32, 3): the 28x28
    grayscale pictures enlarged bilinearly to 32x32 and repeated over three channels."""
    if split not in FASHION_MNIST_FILES:
        raise ValueError(f"unknown split {split!r}; choose train or test")
    path = Path(folder) / FASHION_MNIST_FILES[split]
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: install the Debian package dataset-fashion-mnist, or pass the "
            f"folder holding {FASHION_MNIST_FILES[split]}"
        )
    with gzip.open(path, "rb") as file:
        data = file.read()
    magic, count, rows, cols = np.frombuffer(data[:16], dtype=">u4")
    if magic != 2051 or len(data) != 16 + int(count) * int(rows) * int(cols):
        raise ValueError(f"{path} is not an IDX image file")
    count = int(count) if limit is None else min(int(count), limit)
    gray = np.frombuffer(data, dtype=np.uint8, offset=16, count=count * rows * cols)
    gray = gray.reshape(count, rows, cols)
    enlarged = np.stack([cv2.resize(g, (32, 32), interpolation=cv2.INTER_LINEAR) for g in gray])
    return np.repeat(enlarged[..., None], 3, axis=-1)
