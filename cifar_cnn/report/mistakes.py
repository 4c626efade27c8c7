"""Error analysis: the model's most confident mistakes, shown with what it looked at.

>>> from cifar_cnn.report.mistakes import most_confidently_wrong, plot_error_gallery
>>> worst = most_confidently_wrong(probabilities, labels, k=16)
>>> plot_error_gallery(classifier, images, labels, probabilities, "errors.png")

The most confused class pairs come from the confusion matrix: `evaluation.most_confused_pairs`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cifar_cnn.explain.gradcam import grad_cam_for, overlay_heatmap
from cifar_cnn.report.plots import plt, save_figure


def most_confidently_wrong(
    probabilities: np.ndarray, labels: np.ndarray, k: int = 16
) -> np.ndarray:
    """Indices of the `k` wrong predictions with the highest confidence, most confident first."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    return wrong[np.argsort(confidence, kind="stable")[::-1][:k]]


def plot_error_gallery(
    classifier,
    images: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    path: str | Path,
    k: int = 16,
    columns: int = 4,
) -> Path:
    """A PNG of the `k` most confident mistakes: each image beside its Grad-CAM for the wrongly
    predicted class, titled with the true class, the prediction and its confidence."""
    indices = most_confidently_wrong(probabilities, labels, k)
    if len(indices) == 0:
        raise ValueError("no mistakes to show: every prediction is correct")
    names = classifier.class_names
    cams = grad_cam_for(classifier.model).explain(images[indices])
    rows = int(np.ceil(len(indices) / columns))
    fig, axes = plt.subplots(rows, 2 * columns, figsize=(2.2 * columns * 2, 2.5 * rows))
    axes = np.atleast_2d(axes)
    for ax in axes.ravel():
        ax.axis("off")
    for position, (index, cam) in enumerate(zip(indices, cams, strict=True)):
        row, column = divmod(position, columns)
        image = images[index]
        predicted = int(probabilities[index].argmax())
        left, right = axes[row, 2 * column], axes[row, 2 * column + 1]
        left.imshow(image, interpolation="nearest")
        left.set_title(
            f"true {names[labels[index]]}\nsaid {names[predicted]} "
            f"{100 * probabilities[index, predicted]:.0f}%",
            fontsize=8,
        )
        right.imshow(overlay_heatmap(image, cam.heatmap, opacity=0.5), interpolation="bilinear")
        right.set_title(f"Grad-CAM: {names[predicted]}", fontsize=8)
    fig.suptitle("Most confident mistakes on the test set", fontsize=11)
    return save_figure(fig, Path(path))
