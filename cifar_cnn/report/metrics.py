"""Evaluation metrics from predicted probabilities: accuracy, top-k, precision/recall/F1, confusion.

>>> from cifar_cnn.report.metrics import evaluate_classifier, per_class_table
>>> report = evaluate_classifier(clf, data.x_test, data.y_test)   # plain and flip-TTA
>>> print(per_class_table(report["plain"]))
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cifar_cnn.data.cifar10 import CLASS_NAMES
from cifar_cnn.data.images import mirrored
from cifar_cnn.trust.calibration import (
    apply_temperature,
    expected_calibration_error,
    negative_log_likelihood,
    reliability_bins,
)
from cifar_cnn.voting import agreement, hard_vote, mirror_average, soft_vote


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts: rows are true classes, columns predicted classes."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def top_k_accuracy(probabilities: np.ndarray, y_true: np.ndarray, k: int) -> float:
    top = np.argsort(probabilities, axis=1)[:, ::-1][:, :k]
    return float(np.mean((top == y_true[:, None]).any(axis=1)))


def most_confused_pairs(matrix: np.ndarray, class_names=CLASS_NAMES, k: int = 5) -> list[dict]:
    """The `k` largest off-diagonal cells: which true class is most often taken for which."""
    off_diagonal = matrix.copy()
    np.fill_diagonal(off_diagonal, 0)
    order = np.argsort(off_diagonal, axis=None)[::-1][:k]
    pairs = []
    for flat in order:
        true, predicted = np.unravel_index(flat, matrix.shape)
        if off_diagonal[true, predicted] == 0:
            break
        pairs.append(
            {
                "true": class_names[true],
                "predicted": class_names[predicted],
                "count": int(off_diagonal[true, predicted]),
                "rate": float(off_diagonal[true, predicted] / max(1, matrix[true].sum())),
            }
        )
    return pairs


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar test for two models scored on the same images.

    `only_a` and `only_b` count the images only one of them gets right; the result is the chance
    of a split at least this uneven if neither model were better.

    >>> round(mcnemar_p(10, 30), 4)
    0.0022
    """
    n = only_a + only_b
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def compute_metrics(
    probabilities: np.ndarray, y_true: np.ndarray, class_names=CLASS_NAMES
) -> dict[str, Any]:
    """All metrics for one set of predictions, JSON-serialisable."""
    y_true = np.asarray(y_true, dtype=np.int64)
    if len(probabilities) != len(y_true) or len(y_true) == 0:
        raise ValueError(
            f"need as many predictions as labels (> 0), got {len(probabilities)} and {len(y_true)}"
        )
    num_classes = len(class_names)
    y_pred = probabilities.argmax(axis=1)
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    true_positives = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    precision = np.divide(true_positives, predicted, out=np.zeros(num_classes), where=predicted > 0)
    recall = np.divide(true_positives, actual, out=np.zeros(num_classes), where=actual > 0)
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall, denominator, out=np.zeros(num_classes), where=denominator > 0
    )
    return {
        "n": int(len(y_true)),
        "accuracy": float(np.mean(y_pred == y_true)),
        "top_k_accuracy": {str(k): top_k_accuracy(probabilities, y_true, k) for k in (1, 3, 5)},
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(actual[i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": matrix.tolist(),
        "most_confused": most_confused_pairs(matrix, class_names),
        **calibration_metrics(probabilities, y_true),
    }


def calibration_metrics(probabilities: np.ndarray, y_true: np.ndarray) -> dict[str, Any]:
    """Expected calibration error (15 bins), negative log-likelihood and the reliability bins."""
    return {
        "ece": expected_calibration_error(probabilities, y_true),
        "nll": negative_log_likelihood(probabilities, y_true),
        "reliability": reliability_bins(probabilities, y_true),
    }


def evaluate_classifier(
    classifier, x: np.ndarray, y: np.ndarray, batch_size: int = 500
) -> dict[str, dict[str, Any]]:
    """Metrics without and with horizontal-flip test-time augmentation, on the model's raw
    probabilities; plus calibration after temperature scaling when the model has a temperature."""
    plain, flipped = predict_with_flips(classifier, x, batch_size)
    return evaluate_probabilities(plain, flipped, y, classifier.class_names, classifier.temperature)


def predict_with_flips(classifier, x: np.ndarray, batch_size: int = 500):
    """Raw (uncalibrated) probabilities for the images and for their mirror images."""
    plain = classifier.predict(x, batch_size=batch_size, calibrated=False)
    flipped = classifier.predict(mirrored(x), batch_size=batch_size, calibrated=False)
    return plain, flipped


def evaluate_probabilities(
    plain: np.ndarray,
    flipped: np.ndarray,
    y: np.ndarray,
    class_names=CLASS_NAMES,
    temperature: float | None = None,
) -> dict[str, dict[str, Any]]:
    """The report of `evaluate_classifier` from precomputed probabilities."""
    report = {
        "plain": compute_metrics(plain, y, class_names),
        "flip_tta": compute_metrics(mirror_average(plain, flipped), y, class_names),
    }
    if temperature is not None:
        report["temperature_scaled"] = {
            "temperature": temperature,
            **calibration_metrics(apply_temperature(plain, temperature), y),
        }
    return report


def evaluate_ensemble(ensemble, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Test metrics of an ensemble: each member's accuracy, the soft vote (all metrics), the hard
    vote's accuracy, how often the members agree, and the accuracies again with every member
    averaging each image with its mirror (`flip_tta`)."""
    plain, flipped = ensemble_probabilities_with_flips(ensemble, x)
    return {
        "n": int(len(y)),
        "members": _member_accuracies(ensemble, plain, y),
        "weights": [float(w) for w in ensemble.weights],
        "soft": compute_metrics(soft_vote(plain, ensemble.weights), y, ensemble.class_names),
        "hard_accuracy": float(np.mean(hard_vote(plain, ensemble.weights) == y)),
        "agreement": agreement(plain),
        "flip_tta": vote_accuracies(ensemble, flipped, y),
    }


def ensemble_probabilities_with_flips(
    ensemble, x: np.ndarray, batch_size: int = 500
) -> tuple[np.ndarray, np.ndarray]:
    """Each member's calibrated probabilities, (M, N, C), without and with flip TTA: what
    `ensemble.member_probabilities(x)` and `(x, flip_tta=True)` give, from two passes over the
    images per member instead of three."""
    plain, flipped = [], []
    for member in ensemble.members:
        raw, mirrored = predict_with_flips(member, x, batch_size)
        plain.append(member.calibrate(raw))
        flipped.append(member.calibrate(mirror_average(raw, mirrored)))
    return np.stack(plain), np.stack(flipped)


def vote_accuracies(ensemble, member_probabilities: np.ndarray, y: np.ndarray) -> dict:
    """Each member's accuracy and the soft and hard votes', from the members' probabilities
    (M, N, C) for the images labelled `y`."""
    return {
        "n": int(len(y)),
        "members": _member_accuracies(ensemble, member_probabilities, y),
        "soft_accuracy": soft_vote_accuracy(member_probabilities, ensemble.weights, y),
        "hard_accuracy": float(np.mean(hard_vote(member_probabilities, ensemble.weights) == y)),
    }


def soft_vote_accuracy(member_probabilities: np.ndarray, weights, y: np.ndarray) -> float:
    """How often the weighted soft vote of the members' probabilities (M, N, C) is the label."""
    return float(np.mean(soft_vote(member_probabilities, weights).argmax(axis=1) == y))


def best_validation_member(validation: dict[str, Any]) -> str:
    """The member with the highest validation accuracy with flip TTA (plain breaks a tie), of an
    ensemble's `metrics["validation"]`."""
    plain, flipped = validation["plain"]["members"], validation["flip_tta"]["members"]
    return max(plain, key=lambda name: (flipped[name], plain[name]))


def _member_accuracies(ensemble, member_probabilities: np.ndarray, y: np.ndarray) -> dict:
    return {
        name: float(np.mean(p.argmax(axis=1) == y))
        for name, p in zip(ensemble.names, member_probabilities, strict=True)
    }


def per_class_table(metrics: dict[str, Any]) -> str:
    """A markdown table: precision, recall, F1 and support per class, then the macro average."""
    lines = ["| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for name, row in metrics["per_class"].items():
        lines.append(
            f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | "
            f"{row['support']} |"
        )
    lines.append(
        f"| **macro** | {metrics['macro_precision']:.3f} | {metrics['macro_recall']:.3f} | "
        f"{metrics['macro_f1']:.3f} | {metrics['n']} |"
    )
    return "\n".join(lines)


def confused_pairs_table(metrics: dict[str, Any]) -> str:
    lines = ["| true class | predicted as | count | share of the class |", "|---|---|---:|---:|"]
    for pair in metrics["most_confused"]:
        lines.append(
            f"| {pair['true']} | {pair['predicted']} | {pair['count']} | {pair['rate']:.1%} |"
        )
    return "\n".join(lines)
