"""Training-time data augmentation, as Keras preprocessing layers applied in the tf.data pipeline.

>>> from cifar_cnn.data.augmentation import build_augmentation
>>> augment = build_augmentation("original")   # the original design's policy
>>> augmented = augment(images, training=True)  # float32, same shape

Augmentation runs on the input pipeline, never inside a saved model, so a loaded model behaves the
same at inference whichever policy trained it.
"""

from __future__ import annotations

import keras

AUGMENTATIONS = ("original", "flip_translate", "flip_crop", "none")


def build_augmentation(name: str, seed: int | None = None) -> keras.Sequential | None:
    """A policy by name; None for "none".

    - "original": the original design's policy: rotation up to 15 degrees, shift 10%, horizontal
      flip, zoom 10%, "nearest" fill.
    - "flip_translate": horizontal flip and up to 2 px translation with reflection
      (nearest-pixel, no blur); shifts of 2 px come half as often as the others.
    - "flip_crop": airbench's policy exactly: horizontal flip and a shift drawn uniformly from
      -2..2 whole pixels on each axis (a random 32 px crop of the reflection-padded 36 px image).
    """
    if name == "none":
        return None
    if name == "original":
        layers = [
            keras.layers.RandomRotation(15 / 360, fill_mode="nearest", seed=seed),
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed),
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomZoom(0.1, fill_mode="nearest", seed=seed),
        ]
    elif name in ("flip_translate", "flip_crop"):
        # RandomTranslation draws a continuous shift and rounds it to the nearest pixel: +-2.5 px
        # gives each whole shift in -2..2 the same chance, +-2 px halves the chance of +-2.
        shift = (2.5 if name == "flip_crop" else 2) / 32
        layers = [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomTranslation(
                shift, shift, fill_mode="reflect", interpolation="nearest", seed=seed
            ),
        ]
    else:
        raise ValueError(f"unknown augmentation {name!r}; choose one of {', '.join(AUGMENTATIONS)}")
    return keras.Sequential(layers, name=f"augment_{name}")
