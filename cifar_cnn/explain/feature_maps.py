"""Feature maps: what a layer's channels respond to in one image, as a grid picture.

>>> from cifar_cnn.explain.feature_maps import feature_map_grid
>>> grid = feature_map_grid(model, image, layer="block1_conv2")  # RGB uint8, ready to show
"""

from __future__ import annotations

import cv2
import numpy as np

from cifar_cnn.explain.probing import activations_and_logits, spatial_layers


def layer_activations(model, image: np.ndarray, layer: str) -> np.ndarray:
    """Activations (H, W, C) of `layer` (a path from `spatial_layers`) for one uint8 image."""
    if layer not in spatial_layers(model):
        raise ValueError(f"layer {layer!r} is not a spatial layer of {model.name!r}")
    features, _ = activations_and_logits(model, layer)(np.asarray(image)[None])
    return np.asarray(features)[0]


def feature_map_grid(
    model,
    image: np.ndarray,
    layer: str | None = None,
    max_channels: int = 32,
    columns: int = 8,
    cell: int = 64,
) -> np.ndarray:
    """A grid of the `max_channels` most active channels of `layer`, each scaled to its own range
    and coloured with viridis; the most active channel comes first. Default layer: the first
    spatial layer after the input's preprocessing (the lowest-level features)."""
    layer = layer or spatial_layers(model)[0]
    activations = layer_activations(model, image, layer)
    order = np.argsort(activations.mean(axis=(0, 1)))[::-1][:max_channels]
    rows = int(np.ceil(len(order) / columns))
    gap = 2
    grid = np.full((rows * (cell + gap) - gap, columns * (cell + gap) - gap, 3), 255, np.uint8)
    for position, channel in enumerate(order):
        values = activations[..., channel].astype(np.float32)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
        tile = cv2.resize(np.uint8(scaled * 255), (cell, cell), interpolation=cv2.INTER_NEAREST)
        tile = cv2.cvtColor(cv2.applyColorMap(tile, cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB)
        row, column = divmod(position, columns)
        top, left = row * (cell + gap), column * (cell + gap)
        grid[top : top + cell, left : left + cell] = tile
    return grid
