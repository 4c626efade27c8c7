"""mobilenet_transfer: an ImageNet MobileNet backbone with a new head, fine-tuned on CIFAR-10."""

from __future__ import annotations

from pathlib import Path

import keras

from cifar_cnn.data.cifar10 import NUM_CLASSES
from cifar_cnn.models.inputs import image_input
from cifar_cnn.models.layers import ReverseChannels
from cifar_cnn.models.registry import ModelSpec, Recipe, register


def build_mobilenet_transfer(
    num_classes: int = NUM_CLASSES,
    backbone: str = "mobilenet",
    backbone_weights: str | None = "imagenet",
    input_size: int = 128,
    alpha: float = 0.25,
    dropout: float = 0.2,
) -> keras.Model:
    """Transfer learning: an ImageNet backbone (nested model named "backbone") and a new head.

    The 32 px image is upsampled inside the model to `input_size` and preprocessed the way the
    backbone was trained.

    Args:
        backbone: "mobilenet" (MobileNet v1, width `alpha`) or "resnet50".
        backbone_weights: "imagenet" (Keras download), a path to an `.h5` weights file, or None
            for random initialisation.
    """
    if isinstance(backbone_weights, Path):
        backbone_weights = str(backbone_weights)
    if backbone_weights not in (None, "imagenet") and not Path(backbone_weights).is_file():
        raise ValueError(
            f"backbone weights file not found: {backbone_weights} "
            "(cifar-train: --model-option backbone_weights=PATH)"
        )
    shape = (input_size, input_size, 3)
    inputs = image_input()
    x = keras.layers.Resizing(input_size, input_size, interpolation="bilinear", name="upsample")(
        inputs
    )
    if backbone == "mobilenet":
        x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="mobilenet_preprocess")(x)
        application = keras.applications.MobileNet
        options = {"alpha": alpha}
    elif backbone == "resnet50":
        # "caffe" preprocessing: BGR order, ImageNet mean subtracted, no scaling.
        x = ReverseChannels(name="rgb_to_bgr")(x)
        x = keras.layers.Rescaling(
            1.0, offset=[-103.939, -116.779, -123.68], name="caffe_preprocess"
        )(x)
        application, options = keras.applications.ResNet50, {}
    else:
        raise ValueError(f"unknown backbone {backbone!r}; choose 'mobilenet' or 'resnet50'")
    try:
        net = application(
            input_shape=shape, include_top=False, pooling="avg", weights=backbone_weights, **options
        )
    except Exception as error:  # noqa: BLE001 - Keras raises a bare Exception for a failed download
        if backbone_weights != "imagenet":
            raise
        raise ValueError(
            f"the ImageNet weights of {backbone} could not be downloaded "
            f"({' '.join(str(error).split())[:200]}); give a local .h5 file as backbone_weights "
            f"(cifar-train: --model-option backbone_weights=PATH), or None for random weights"
        ) from None
    net.name = "backbone"
    x = net(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="probabilities"
    )(x)
    return keras.Model(inputs, outputs, name="mobilenet_transfer")


SPEC = register(
    ModelSpec(
        name="mobilenet_transfer",
        build=build_mobilenet_transfer,
        # ImageNet MobileNet-0.25: head first on a frozen backbone, then fine-tune at a low LR.
        recipe=Recipe(
            model="mobilenet_transfer",
            epochs=12,
            head_epochs=2,
            batch_size=128,
            optimizer="adam",
            learning_rate=1e-3,
            fine_tune_learning_rate=3e-4,
            schedule="one_cycle",
            label_smoothing=0.1,
            augmentation="flip_translate",
            model_options={"input_size": 128},
        ),
        title="CIFAR-10 MobileNet transfer model",
        description=(
            "Transfer learning: an ImageNet-pretrained MobileNet (width 0.25) backbone with a new "
            "classifier head, head-trained on the frozen backbone, then fine-tuned."
        ),
        claim="96%",
        citations=(
            "Andrew G. Howard et al., *MobileNets: Efficient Convolutional Neural Networks for "
            "Mobile Vision Applications*, 2017, arXiv:1704.04861.",
        ),
    )
)
