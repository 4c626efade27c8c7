"""Data: the CIFAR-10 images and labels, how any picture becomes model input, augmentation, and
pictures that are none of the ten classes.

- `cifar10`: loading (archive, directory, shipped slice, download), validation splits, k-fold.
- `images`: file, bytes, PIL image or array to the uint8 32x32 RGB input every model takes.
- `augmentation`: the training-time augmentation policies.
- `fashion_mnist`: Fashion-MNIST enlarged to 32x32 RGB, one of the outlier sources.
- `outliers`: every outlier source (choice and held-out) for out-of-distribution measurements.
"""

from cifar_cnn.data.cifar10 import (
    CLASS_NAMES,
    IMAGE_SHAPE,
    NUM_CLASSES,
    Cifar10,
    DataError,
    load_cifar10,
    load_slice,
    split_validation,
)

__all__ = [
    "CLASS_NAMES",
    "IMAGE_SHAPE",
    "NUM_CLASSES",
    "Cifar10",
    "DataError",
    "load_cifar10",
    "load_slice",
    "split_validation",
]
