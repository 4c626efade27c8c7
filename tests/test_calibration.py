"""cifar_cnn.trust.calibration: ECE, reliability bins and temperature scaling."""

import numpy as np
import pytest

from cifar_cnn.trust.calibration import (
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
    softmax_with_temperature,
)


def overconfident_predictions(n=4000, seed=0):
    """Labels drawn from softmax(z), reported as softmax(3 z): right ranking, too confident."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, 10))
    true_probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(10, p=p) for p in true_probabilities])
    reported = np.exp(3 * logits) / np.exp(3 * logits).sum(axis=1, keepdims=True)
    return reported, labels


def test_perfectly_calibrated_predictions_have_zero_ece():
    probabilities = np.array([[0.75, 0.25]] * 4)
    labels = np.array([0, 0, 0, 1])  # 75% confident and 75% right
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.0)


def test_ece_is_the_weighted_gap_between_confidence_and_accuracy():
    probabilities = np.array([[0.9, 0.1]] * 10 + [[0.6, 0.4]] * 10)
    labels = np.array([0] * 5 + [1] * 5 + [0] * 10)  # 90% sure, 50% right; 60% sure, 100% right
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    bins = [b for b in reliability_bins(probabilities, labels) if b["count"]]
    assert [(b["count"], b["accuracy"]) for b in bins] == [(10, 1.0), (10, 0.5)]


def test_temperature_scaling_recovers_the_true_temperature():
    reported, labels = overconfident_predictions()
    temperature = fit_temperature(reported, labels)
    assert temperature == pytest.approx(3.0, rel=0.1)
    scaled = apply_temperature(reported, temperature)
    assert (
        expected_calibration_error(scaled, labels)
        < expected_calibration_error(reported, labels) / 3
    )
    assert negative_log_likelihood(scaled, labels) < negative_log_likelihood(reported, labels)
    np.testing.assert_array_equal(scaled.argmax(axis=1), reported.argmax(axis=1))


def test_temperature_must_be_positive():
    with pytest.raises(ValueError, match="temperature must be positive"):
        apply_temperature(np.array([[0.5, 0.5]]), 0.0)


def test_softmax_with_temperature_is_temperature_scaling_of_the_softmax():
    logits = np.random.default_rng(0).normal(0, 4, (50, 10))
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(softmax_with_temperature(logits), softmax, rtol=1e-5)
    np.testing.assert_allclose(
        softmax_with_temperature(logits, 2.5), apply_temperature(softmax, 2.5), rtol=1e-4
    )
    with pytest.raises(ValueError, match="temperature must be positive"):
        softmax_with_temperature(logits, -1.0)
