"""Evaluation plots (matplotlib PNGs): confusion matrix, per-class bars, learning curves,
reliability, accuracy under corruptions, and a video's label timeline."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cifar_cnn.atomic import temporary_sibling  # noqa: E402

_PYPLOT = threading.Lock()


def plot_confusion_matrix(matrix, class_names, path: Path, title: str = "Confusion matrix") -> Path:
    matrix = np.asarray(matrix)
    rates = matrix / np.maximum(1, matrix.sum(axis=1, keepdims=True))
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    for (i, j), count in np.ndenumerate(matrix):
        color = "white" if rates[i, j] > 0.5 else "black"
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7, color=color)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    ax.set_title(title)
    return save_figure(fig, path)


def plot_per_class(metrics: dict[str, Any], path: Path, title: str = "Per-class metrics") -> Path:
    names = list(metrics["per_class"])
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.27
    positions = np.arange(len(names))
    for offset, key in zip((-width, 0, width), ("precision", "recall", "f1"), strict=True):
        values = [metrics["per_class"][n][key] for n in names]
        ax.bar(positions + offset, values, width, label=key)
    ax.set_xticks(positions, names, rotation=30, ha="right")
    lowest = min(min(row.values()) for row in _scores(metrics))
    ax.set_ylim(max(0.0, lowest - 0.1), 1.0)
    ax.set_ylabel("score")
    ax.legend(ncols=3, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title)
    return save_figure(fig, path)


def plot_learning_curves(history: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key in zip(axes[:2], ("loss", "accuracy"), strict=True):
        ax.plot(epochs, [h[key] for h in history], "o-", label=f"train {key}")
        if all(f"val_{key}" in h for h in history):
            ax.plot(epochs, [h[f"val_{key}"] for h in history], "o-", label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[2].plot(epochs, [h["learning_rate"] for h in history], "o-", color="tab:green")
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("learning rate (at epoch end)")
    axes[2].grid(alpha=0.3)
    fig.suptitle(title or "Learning curves (train metrics are on augmented images)")
    return save_figure(fig, path)


def plot_reliability(report: dict[str, Any], path: Path, title: str = "Reliability") -> Path:
    """Accuracy against confidence per bin, before (and after) temperature scaling."""
    curves = [("raw", report["plain"])]
    if "temperature_scaled" in report:
        scaled = report["temperature_scaled"]
        curves.append((f"temperature {scaled['temperature']:.2f}", scaled))
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    for label, metrics in curves:
        rows = [r for r in metrics["reliability"] if r["count"] > 0]
        ax.plot(
            [r["confidence"] for r in rows],
            [r["accuracy"] for r in rows],
            "o-",
            label=f"{label} (ECE {100 * metrics['ece']:.2f}%)",
        )
    ax.set_xlabel("confidence (top-1 probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    ax.set_title(title)
    return save_figure(fig, path)


def plot_corruption_accuracy(
    reports: dict[str, dict[str, Any]], path: Path, title: str = "Accuracy under corruptions"
) -> Path:
    """One panel per corruption: accuracy against severity (0 = clean), one line per model.

    `reports` maps a model name to its `cifar_cnn.trust.corruptions.corruption_benchmark` result."""
    names = list(next(iter(reports.values()))["corruptions"])
    columns = 3
    rows = int(np.ceil(len(names) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), sharey=True)
    for ax, corruption in zip(np.ravel(axes), names, strict=False):
        for model, report in reports.items():
            by_severity = report["corruptions"][corruption]
            severities = [0, *map(int, by_severity)]
            ax.plot(severities, [report["clean"], *by_severity.values()], "o-", label=model)
        ax.set_title(corruption.replace("_", " "))
        ax.set_xticks(range(6))
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    for ax in np.ravel(axes)[len(names) :]:
        ax.axis("off")
    np.ravel(axes)[0].legend(loc="lower left", fontsize="small")
    for ax in np.ravel(axes)[::columns]:
        ax.set_ylabel("accuracy")
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_video_timeline(result: Any, path: Path, title: str = "") -> Path:
    """Each class's probability over a video's sampled frames (a `VideoClassification`), with
    the frames the out-of-distribution check flags shaded. Safe to call from several threads
    (the app's requests): pyplot's state is shared, so one figure is drawn at a time."""
    with _PYPLOT:
        return _draw_video_timeline(result, path, title)


def _draw_video_timeline(result: Any, path: Path, title: str) -> Path:
    from cifar_cnn.trust.ood import OUTLIER_WARNING  # here: the other plots need no TensorFlow

    times, probabilities = result.times, result.probabilities
    fig, ax = plt.subplots(figsize=(9, 3.6))
    colours = plt.get_cmap("tab10")
    for i, name in enumerate(result.class_names):
        if probabilities[:, i].max() >= 0.05:  # classes that never reach 5% would only clutter
            ax.plot(times, probabilities[:, i], label=name, color=colours(i), linewidth=1.6)
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    flagged = [f.time for f in result.frames if f.out_of_distribution]
    for i, time in enumerate(flagged):
        label = OUTLIER_WARNING if i == 0 else None
        ax.axvspan(time - step / 2, time + step / 2, color="0.85", zorder=0, label=label)
    ax.set_ylim(0, 1.02)
    ax.set_xlim(times[0] - step / 2, times[-1] + step / 2)
    ax.set_xlabel("seconds")
    ax.set_ylabel("probability")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    ax.set_title(title or "Each class's probability over the video")
    return save_figure(fig, path)


def _scores(metrics):
    return [
        {k: row[k] for k in ("precision", "recall", "f1")} for row in metrics["per_class"].values()
    ]


def save_figure(fig, path: Path) -> Path:
    """Write a figure as PNG atomically and close it."""
    path = Path(path)
    tmp = temporary_sibling(path)
    fig.tight_layout()
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    tmp.replace(path)
    return path
