"""Model architectures, in a registry: `build_model("resnet_fast")`, `list_models()`.

Every model takes raw uint8 RGB images of shape (N, 32, 32, 3) and returns class probabilities of
shape (N, 10). Scaling, normalisation and resizing live inside the model, so a saved model cannot
be fed wrongly.

>>> from cifar_cnn.architectures import build_model, list_models
>>> list_models()
['mobilenet_transfer', 'resnet_fast', 'seed_cnn']
>>> model = build_model("seed_cnn")
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from cifar_cnn.data import CIFAR10_MEAN, CIFAR10_STD, IMAGE_SHAPE, NUM_CLASSES
from cifar_cnn.layers import ReverseChannels, ScaledBias

_REGISTRY: dict[str, Callable[..., keras.Model]] = {}

#: Where the genuine ImageNet MobileNet-0.25 weights lie on the project's machines.
SHARED_MOBILENET_WEIGHTS = (
    Path(__file__).resolve().parent.parent.parent
    / "shared"
    / "weights"
    / "mobilenet_2_5_224_tf_no_top.h5"
)


def register_model(name: str) -> Callable:
    """Decorator adding a builder `fn(num_classes=10, **options) -> keras.Model` to the registry."""

    def decorate(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        _REGISTRY[name] = builder
        return builder

    return decorate


def list_models() -> list[str]:
    """Names accepted by `build_model`."""
    return sorted(_REGISTRY)


def build_model(name: str, num_classes: int = NUM_CLASSES, **options) -> keras.Model:
    """Build an untrained model by registry name; `options` go to that architecture's builder."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(list_models())}")
    return _REGISTRY[name](num_classes=num_classes, **options)


def _image_input() -> keras.KerasTensor:
    return keras.Input(shape=IMAGE_SHAPE, dtype="uint8", name="image")


def _standardize(x: keras.KerasTensor) -> keras.KerasTensor:
    """uint8 0..255 to per-channel zero mean, unit variance (CIFAR-10 training statistics)."""
    mean, std = np.array(CIFAR10_MEAN), np.array(CIFAR10_STD)
    scale = (1.0 / (255.0 * std)).tolist()
    return keras.layers.Rescaling(scale=scale, offset=(-mean / std).tolist(), name="standardize")(x)


@register_model("seed_cnn")
def seed_cnn(
    num_classes: int = NUM_CLASSES,
    filters: tuple[int, ...] = (32, 64, 128),
    dense_units: int = 512,
    block_dropout: float = 0.25,
) -> keras.Model:
    """The original design's CNN: 3 x (Conv-BN-Conv-MaxPool-Dropout), Dense 512-BN-Dropout 0.5.

    The design as written uses `padding="valid"`, which shrinks 32 px to nothing before the third
    pooling and so does not build; this implementation uses `padding="same"`, its only change.
    """
    inputs = _image_input()
    x = _standardize(inputs)
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


def patch_whitening_filters(
    images: np.ndarray, patch_size: int = 2, eps: float = 5e-4
) -> np.ndarray:
    """Conv filters that whiten `patch_size` x `patch_size` patches of standardized images.

    The eigenvectors of the patch covariance, scaled by 1/sqrt(eigenvalue), and their negatives
    (so a following GELU keeps both signs): shape (patch, patch, 3, 2 * patch * patch * 3).
    As in Keller Jordan's airbench (2024).
    """
    x = (images.astype(np.float32) / 255.0 - np.array(CIFAR10_MEAN)) / np.array(CIFAR10_STD)
    h, w = x.shape[1] - patch_size + 1, x.shape[2] - patch_size + 1
    patches = np.stack(
        [x[:, i : i + h, j : j + w, :] for i in range(patch_size) for j in range(patch_size)],
        axis=3,
    )  # (N, h, w, p*p, 3): row-major over (dy, dx), matching a Conv2D kernel (dy, dx, c)
    patches = patches.reshape(-1, patch_size * patch_size * 3).astype(np.float64)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(patches, rowvar=False))
    filters = eigenvectors / np.sqrt(eigenvalues + eps)  # columns are filters
    filters = filters[:, ::-1].reshape(patch_size, patch_size, 3, -1)
    return np.concatenate([filters, -filters], axis=-1).astype(np.float32)


def _batch_norm(
    x: keras.KerasTensor, name: str, momentum: float, epsilon: float, bias_lr_scale: float
) -> keras.KerasTensor:
    """BatchNorm without a scale; its bias learns `bias_lr_scale` times faster under SGD."""
    bn = dict(momentum=momentum, epsilon=epsilon, scale=False, name=name)
    if bias_lr_scale == 1:
        return keras.layers.BatchNormalization(**bn)(x)
    x = keras.layers.BatchNormalization(center=False, **bn)(x)
    return ScaledBias(np.sqrt(bias_lr_scale), name=f"{name}_bias")(x)


def _conv_group(
    x: keras.KerasTensor,
    width: int,
    name: str,
    bn_momentum: float,
    bn_epsilon: float = 1e-3,
    bias_lr_scale: float = 1,
) -> keras.KerasTensor:
    x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    x = keras.layers.MaxPooling2D(name=f"{name}_pool")(x)
    x = _batch_norm(x, f"{name}_bn1", bn_momentum, bn_epsilon, bias_lr_scale)
    x = keras.layers.Activation("gelu", name=f"{name}_gelu1")(x)
    x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"{name}_conv2")(x)
    x = _batch_norm(x, f"{name}_bn2", bn_momentum, bn_epsilon, bias_lr_scale)
    return keras.layers.Activation("gelu", name=f"{name}_gelu2")(x)


@register_model("resnet_fast")
def resnet_fast(
    num_classes: int = NUM_CLASSES,
    widths: tuple[int, ...] = (64, 256, 256),
    whitening_images: np.ndarray | None = None,
    bn_momentum: float = 0.6,
    bn_epsilon: float = 1e-3,
    logit_scale: float = 1 / 9,
    dirac_init: bool = True,
    bias_lr_scale: float = 1,
) -> keras.Model:
    """The flagship: a compact VGG-style net after Keller Jordan's airbench94, fast per FLOP on CPU.

    A fixed 2x2 patch-whitening conv (fitted to `whitening_images`, 24 filters), then three conv
    groups (Conv-Pool-BN-GELU-Conv-BN-GELU) of `widths` channels, a global max pool and a
    bias-free linear head with scaled logits. About 2M parameters.

    Args:
        whitening_images: uint8 training images used to fit the whitening filters (a few thousand
            suffice). Without them the filters start random; a loaded model carries its own.
        dirac_init: start each conv's first `in_channels` filters as the identity (airbench), so
            the fresh network passes its input through; it trains faster.
        bn_momentum: Keras semantics (the weight of the old running statistics): 0.6, which is
            airbench's PyTorch momentum of 0.4.
        bn_epsilon: added to the batch variance. Keras's default 1e-3 is not small next to the
            variances deep in a trained net (about 0.01), so weight decay then shrinks the
            activations as well; airbench uses 1e-12, which leaves BatchNorm scale-invariant.
        bias_lr_scale: how much faster the BatchNorm biases learn than the other weights under
            SGD (airbench uses 64), by reparametrisation (`cifar_cnn.layers.ScaledBias`).
    """
    if not bias_lr_scale > 0:
        raise ValueError(f"bias_lr_scale must be positive, got {bias_lr_scale}")
    if not bn_epsilon > 0:
        raise ValueError(f"bn_epsilon must be positive, got {bn_epsilon}")
    inputs = _image_input()
    x = _standardize(inputs)
    whiten = keras.layers.Conv2D(
        24, 2, padding="valid", use_bias=False, name="whiten", trainable=False
    )
    x = whiten(x)
    if whitening_images is not None:
        whiten.set_weights([patch_whitening_filters(whitening_images)])
    x = keras.layers.Activation("gelu", name="whiten_gelu")(x)
    for i, width in enumerate(widths, start=1):
        x = _conv_group(
            x, width, f"group{i}", bn_momentum, bn_epsilon=bn_epsilon, bias_lr_scale=bias_lr_scale
        )
    x = keras.layers.GlobalMaxPooling2D(name="pool")(x)
    x = keras.layers.Dense(num_classes, use_bias=False, name="head")(x)
    x = keras.layers.Rescaling(logit_scale, name="logit_scale")(x)
    outputs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="resnet_fast")
    if dirac_init:
        for layer in model.layers:
            if isinstance(layer, keras.layers.Conv2D) and layer.trainable:
                kernel = keras.ops.convert_to_numpy(layer.kernel).copy()
                k, _, c_in, c_out = kernel.shape
                n = min(c_in, c_out)
                kernel[:, :, :, :n] = 0.0
                kernel[k // 2, k // 2, np.arange(n), np.arange(n)] = 1.0
                layer.kernel.assign(kernel)
    return model


@register_model("mobilenet_transfer")
def mobilenet_transfer(
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
        raise ValueError(f"backbone weights file not found: {backbone_weights}")
    shape = (input_size, input_size, 3)
    inputs = _image_input()
    x = keras.layers.Resizing(input_size, input_size, interpolation="bilinear", name="upsample")(
        inputs
    )
    if backbone == "mobilenet":
        x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="mobilenet_preprocess")(x)
        net = keras.applications.MobileNet(
            input_shape=shape,
            alpha=alpha,
            include_top=False,
            pooling="avg",
            weights=backbone_weights,
        )
    elif backbone == "resnet50":
        # "caffe" preprocessing: BGR order, ImageNet mean subtracted, no scaling.
        x = ReverseChannels(name="rgb_to_bgr")(x)
        x = keras.layers.Rescaling(
            1.0, offset=[-103.939, -116.779, -123.68], name="caffe_preprocess"
        )(x)
        net = keras.applications.ResNet50(
            input_shape=shape, include_top=False, pooling="avg", weights=backbone_weights
        )
    else:
        raise ValueError(f"unknown backbone {backbone!r}; choose 'mobilenet' or 'resnet50'")
    net.name = "backbone"
    x = net(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="probabilities"
    )(x)
    return keras.Model(inputs, outputs, name="mobilenet_transfer")
