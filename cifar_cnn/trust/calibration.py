"""Calibration: how far a model's confidence can be trusted, and temperature scaling to fix it.

>>> from cifar_cnn.trust.calibration import expected_calibration_error, fit_temperature
>>> expected_calibration_error(probabilities, labels)           # 0 = confidence means accuracy
>>> temperature = fit_temperature(val_probabilities, val_labels)  # on validation data only
>>> calibrated = apply_temperature(probabilities, temperature)

Guo et al., "On Calibration of Modern Neural Networks", ICML 2017.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-12


def reliability_bins(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = 15
) -> list[dict[str, float]]:
    """Equal-width confidence bins: count, mean confidence and accuracy of the top-1 predictions."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        members = which == b
        rows.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "count": int(members.sum()),
                "confidence": float(confidence[members].mean()) if members.any() else 0.0,
                "accuracy": float(correct[members].mean()) if members.any() else 0.0,
            }
        )
    return rows


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = 15
) -> float:
    """ECE: the count-weighted mean gap between confidence and accuracy over confidence bins."""
    rows = reliability_bins(probabilities, labels, bins)
    total = sum(r["count"] for r in rows)
    return float(sum(r["count"] * abs(r["accuracy"] - r["confidence"]) for r in rows) / total)


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): T > 1 softens over-confident predictions, T < 1 sharpens."""
    if temperature is None:  # softmax_with_temperature reads None as 1; here it is a mistake
        raise ValueError("temperature must be positive, got None")
    return softmax_with_temperature(np.log(np.clip(probabilities, _EPS, 1.0)), temperature)


def softmax_with_temperature(logits: np.ndarray, temperature: float | None = None) -> np.ndarray:
    """softmax(logits / T): the calibrated probabilities straight from pre-softmax scores
    (`apply_temperature` of the softmax, without the round trip through probabilities)."""
    if temperature is not None and temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    scaled = np.asarray(logits, np.float64) / (temperature or 1.0)
    scaled = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    return (scaled / scaled.sum(axis=-1, keepdims=True)).astype(np.float32)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probabilities[np.arange(len(labels)), labels], _EPS, 1))))


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising negative log-likelihood (a log-spaced search, then refined).

    Fit on validation data, never on the test set.
    """

    def nll(t: float) -> float:
        return negative_log_likelihood(apply_temperature(probabilities, t), labels)

    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 61))
    best = float(grid[np.argmin([nll(t) for t in grid])])
    low, high = best / 1.2, best * 1.2  # golden-section search inside the best grid cell
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(40):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if nll(a) < nll(b):
            high = b
        else:
            low = a
    return round((low + high) / 2, 4)
