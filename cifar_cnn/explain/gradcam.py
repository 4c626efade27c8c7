"""Class-activation maps: Grad-CAM and Grad-CAM++ for any shipped or loaded model.

>>> from cifar_cnn.explain.gradcam import GradCam
>>> cam = GradCam(classifier.model)                 # layer: the last spatial conv, found for you
>>> result = cam.explain(image_uint8_32x32)          # class: the predicted one
>>> result.heatmap.shape, result.class_index         # float32 in [0, 1] at the image's size
>>> overlay = overlay_heatmap(image, result.heatmap, opacity=0.5, colormap="jet")

Works on functional, Sequential and nested models (a transfer model's backbone is a model inside
the model): the forward pass is replayed layer by layer with the chosen layer's activations
exposed, so no "graph disconnected" error can arise. Scores are taken before the softmax. One
compiled gradient function is cached per (model, layer) by `grad_cam_for`, so repeat calls
are fast.

Selvaraju et al., "Grad-CAM", ICCV 2017; Chattopadhay et al., "Grad-CAM++", WACV 2018.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import cv2
import keras
import numpy as np
import tensorflow as tf

from cifar_cnn.explain.probing import activations_and_logits, resolve_layer, spatial_layers

COLORMAPS = {
    "jet": cv2.COLORMAP_JET,
    "turbo": cv2.COLORMAP_TURBO,
    "inferno": cv2.COLORMAP_INFERNO,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "hot": cv2.COLORMAP_HOT,
}
METHODS = ("gradcam", "gradcam++")


@dataclass
class CamResult:
    heatmap: np.ndarray  # (H, W) float32 in [0, 1], at the input image's resolution
    class_index: int
    probabilities: np.ndarray  # (num_classes,)
    layer: str


def cam_layers(model: keras.Model) -> list[str]:
    """The layers a CAM can be computed at: the spatial layers from the first one with weights
    on. The input's preprocessing before it (scaling, resizing) has no gradient to show."""
    paths = spatial_layers(model)
    first = next((i for i, p in enumerate(paths) if resolve_layer(model, p)[-1].weights), None)
    if first is None:
        raise ValueError(f"model {model.name!r} has no spatial layer with weights")
    return paths[first:]


def default_layer(model: keras.Model) -> str:
    """The last convolution, BatchNorm or activation layer with a spatial output, after pooling
    and dropout are skipped: the usual Grad-CAM layer (found inside a nested backbone too)."""
    kinds = (
        keras.layers.Conv2D,
        keras.layers.DepthwiseConv2D,
        keras.layers.BatchNormalization,
        keras.layers.Activation,
        keras.layers.ReLU,
    )
    layers = {path: resolve_layer(model, path)[-1] for path in spatial_layers(model)}
    if not any(isinstance(layer, keras.layers.Conv2D) for layer in layers.values()):
        raise ValueError(f"model {model.name!r} has no convolutional layer with a spatial output")
    return [path for path, layer in layers.items() if isinstance(layer, kinds)][-1]


def cam_stages(model: keras.Model) -> dict[str, str]:
    """A few layers worth explaining, by name: the default (the last convolutional stage) and
    the last layer of each earlier resolution, fine to coarse: {"16x16 stage (...)": path}."""
    default = default_layer(model)
    kinds = (keras.layers.Conv2D, keras.layers.BatchNormalization, keras.layers.Activation,
             keras.layers.ReLU, keras.layers.Add)  # fmt: skip
    last_at: dict[tuple[int, int], str] = {}
    for path in cam_layers(model):
        layer = resolve_layer(model, path)[-1]
        shape = tuple(layer.output.shape[1:3])
        if isinstance(layer, kinds) and None not in shape:
            last_at[shape] = path
    stages = {f"last stage ({default}, the default)": default}
    for (height, width), path in sorted(last_at.items(), reverse=True):
        if path != default:
            stages[f"{height}x{width} stage ({path})"] = path
    return stages


def colour_scale(colormap: str = "jet", width: int = 256, height: int = 12) -> np.ndarray:
    """The colour map as an RGB strip, no evidence on the left to the most on the right."""
    ramp = np.tile(np.linspace(0, 1, width, dtype=np.float32), (height, 1))
    return overlay_heatmap(np.zeros((height, width, 3), np.uint8), ramp, 1.0, colormap)


class GradCam:
    """Grad-CAM / Grad-CAM++ for one model; `explain` works on one image or a batch."""

    def __init__(self, model: keras.Model, layer: str | None = None):
        self.model = model
        self.layer = layer or default_layer(model)
        if self.layer not in cam_layers(model):
            raise ValueError(
                f"no Grad-CAM at layer {self.layer!r} of {model.name!r}; choose one of "
                f"{', '.join(cam_layers(model))}"
            )
        self._forward = activations_and_logits(model, self.layer)
        spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), model.inputs[0].dtype)
        self._gradients = tf.function(
            self._compute, input_signature=[spec, tf.TensorSpec((None,), tf.int32)]
        )

    def _compute(self, images, class_indices):
        with tf.GradientTape() as tape:
            features, logits = self._forward(images)
            score = tf.gather(logits, class_indices, axis=1, batch_dims=1)
        gradients = tape.gradient(score, features)
        return features, gradients, tf.nn.softmax(logits), score

    def explain(
        self,
        images: np.ndarray,
        class_index: int | list[int] | None = None,
        method: str = "gradcam",
    ) -> CamResult | list[CamResult]:
        """CAMs for uint8 images (H, W, 3) or (N, H, W, 3) at the model's input size.

        `class_index`: None for each image's predicted class, an int for all, or one per image.
        """
        if method not in METHODS:
            raise ValueError(f"unknown CAM method {method!r}; choose {' or '.join(METHODS)}")
        images = np.asarray(images)
        single = images.ndim == 3
        batch = images[None] if single else images
        if class_index is None:
            _, logits = self._forward(tf.constant(batch))
            classes = np.argmax(keras.ops.convert_to_numpy(logits), axis=1)
        else:
            classes = np.broadcast_to(np.asarray(class_index), (len(batch),))
        num_classes = self.model.outputs[0].shape[-1]
        if classes.min() < 0 or classes.max() >= num_classes:
            raise ValueError(f"class index must be in 0..{num_classes - 1}, got {class_index}")
        features, gradients, probabilities, score = (
            t.numpy() for t in self._gradients(tf.constant(batch), tf.constant(classes, tf.int32))
        )
        maps = _combine(features, gradients, score, method)
        size = batch.shape[1:3]
        results = [
            CamResult(
                heatmap=_normalise(
                    cv2.resize(m, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
                ),
                class_index=int(c),
                probabilities=p,
                layer=self.layer,
            )
            for m, c, p in zip(maps, classes, probabilities, strict=True)
        ]
        return results[0] if single else results


def overlay_heatmap(
    image: np.ndarray, heatmap: np.ndarray, opacity: float = 0.5, colormap: str = "jet"
) -> np.ndarray:
    """Blend a [0, 1] heatmap, coloured with an OpenCV colour map, over an RGB uint8 image.

    The heatmap is resized to the image, so a 32 px CAM can be laid over the original photo.
    """
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colour map {colormap!r}; choose one of {', '.join(COLORMAPS)}")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    height, width = image.shape[:2]
    heat = cv2.resize(heatmap.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    coloured = cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), COLORMAPS[colormap])
    coloured = cv2.cvtColor(coloured, cv2.COLOR_BGR2RGB)
    blended = (1 - opacity) * image.astype(np.float32) + opacity * coloured.astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {layer: GradCam}


def grad_cam_for(model: keras.Model, layer: str | None = None) -> GradCam:
    """The GradCam of (model, layer), built once: its compiled gradient function is reused by
    every later call, and forgotten with the model."""
    by_layer = _CACHE.setdefault(model, {})
    if layer not in by_layer:
        by_layer[layer] = GradCam(model, layer)
    return by_layer[layer]


def _combine(features, gradients, score, method: str) -> np.ndarray:
    if method == "gradcam":
        weights = gradients.mean(axis=(1, 2))  # (N, C): global-average-pooled gradients
    else:
        # Grad-CAM++ with the exponential-score closed form: alpha from 2nd/3rd gradient powers.
        grads2, grads3 = gradients**2, gradients**3
        sum_features = features.sum(axis=(1, 2), keepdims=True)
        denominator = 2 * grads2 + sum_features * grads3
        alpha = grads2 / np.where(denominator != 0, denominator, 1.0)
        exp_score = np.exp(score)[:, None, None, None]
        weights = (alpha * np.maximum(exp_score * gradients, 0)).sum(axis=(1, 2))
    cams = np.einsum("nhwc,nc->nhw", features, weights)
    return np.maximum(cams, 0).astype(np.float32)


def _normalise(heatmap: np.ndarray) -> np.ndarray:
    heatmap = np.maximum(heatmap, 0)
    peak = heatmap.max()
    return (heatmap / peak if peak > 0 else heatmap).astype(np.float32)
