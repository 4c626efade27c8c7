"""seed_cnn: the original design's CNN, trained with its own recipe."""

from __future__ import annotations

import keras

from cifar_cnn.data.cifar10 import NUM_CLASSES
from cifar_cnn.models.inputs import image_input, standardize
from cifar_cnn.models.registry import ModelSpec, Recipe, register


def build_seed_cnn(
    num_classes: int = NUM_CLASSES,
    filters: tuple[int, ...] = (32, 64, 128),
    dense_units: int = 512,
    block_dropout: float = 0.25,
) -> keras.Model:
    """The original design's CNN: 3 x (Conv-BN-Conv-MaxPool-Dropout), Dense 512-BN-Dropout 0.5.

    The design as written uses `padding="valid"`, which shrinks 32 px to nothing before the third
    pooling and so does not build; this implementation uses `padding="same"`, its only change.
    """
    inputs = image_input()
    x = standardize(inputs)
    for i, width in enumerate(filters, start=1):
        x = keras.layers.Conv2D(
            width, 3, padding="same", activation="relu", name=f"block{i}_conv1"
        )(x)
        x = keras.layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = keras.layers.Conv2D(
            width, 3, padding="same", activation="relu", name=f"block{i}_conv2"
        )(x)
        x = keras.layers.MaxPooling2D(name=f"block{i}_pool")(x)
        x = keras.layers.Dropout(block_dropout, name=f"block{i}_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name="dense")(x)
    x = keras.layers.BatchNormalization(name="dense_bn")(x)
    x = keras.layers.Dropout(0.5, name="dense_dropout")(x)
    # float32 so the softmax stays exact under a mixed-precision policy.
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="probabilities"
    )(x)
    return keras.Model(inputs, outputs, name="seed_cnn")


SPEC = register(
    ModelSpec(
        name="seed_cnn",
        build=build_seed_cnn,
        # The original design's recipe: Adam, its augmentation, early stopping, cosine restarts.
        recipe=Recipe(
            model="seed_cnn",
            epochs=40,
            batch_size=128,
            optimizer="adam",
            learning_rate=1e-3,
            schedule="cosine_restarts",
            restart_epochs=10,
            augmentation="original",
            patience=10,
        ),
        title="CIFAR-10 seed CNN (the original design)",
        description=(
            "The original design's CNN, trained with its recipe: three blocks of "
            "Conv-BN-Conv-MaxPool-Dropout (32/64/128 filters), Dense 512 with BatchNorm and "
            "dropout."
        ),
        claim="94.2%",
    )
)
