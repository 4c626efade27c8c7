"""cifar_cnn.trust.ood: out-of-distribution scores, their metrics, and Fashion-MNIST as outliers."""

import numpy as np
import pytest

from cifar_cnn.data.fashion_mnist import FASHION_MNIST_DIR, load_fashion_mnist
from cifar_cnn.trust.ood import (
    LOW_CONFIDENCE,
    OutlierCheck,
    auroc,
    energy_score,
    fpr_at_tpr,
    logits_for,
    ood_scores,
    outlier_check,
    threshold_at_tpr,
)


def test_auroc_is_one_when_separated_half_for_identical_and_zero_when_reversed():
    assert auroc([0.9, 0.8, 0.7], [0.1, 0.2]) == 1.0
    assert auroc([0.5, 0.5], [0.5, 0.5, 0.5]) == 0.5
    assert auroc([0.1, 0.2], [0.9, 0.8]) == 0.0
    assert auroc([0.3, 0.6], [0.4]) == 0.5  # one pair won, one lost


def test_fpr_at_95_tpr_counts_outliers_above_the_threshold_keeping_95_percent_inside():
    inside = np.arange(100) / 100.0  # 0.00 .. 0.99
    assert threshold_at_tpr(inside, 0.95) == pytest.approx(0.05)
    outside = np.array([0.0, 0.02, 0.05, 0.5])  # two at or above 0.05
    assert fpr_at_tpr(inside, outside, 0.95) == 0.5


def test_energy_is_the_stable_log_sum_exp_of_the_logits():
    logits = np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]])
    np.testing.assert_allclose(energy_score(logits), [1000 + np.log(2), np.log(4)])


def test_logits_reproduce_the_models_probabilities(trained_seed_cnn, slice_data):
    from cifar_cnn.classifier import CifarClassifier

    classifier = CifarClassifier.from_pretrained(trained_seed_cnn)
    images = slice_data.x_test[:20]
    logits = logits_for(classifier, images)
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    np.testing.assert_allclose(
        softmax, classifier.predict(images, calibrated=False), rtol=1e-4, atol=1e-6
    )
    scores = ood_scores(classifier, images)
    assert set(scores) == {"msp", "energy"} and all(len(v) == 20 for v in scores.values())


def test_a_check_flags_scores_below_its_threshold_and_says_why():
    assert OutlierCheck("msp", 0.3, 0.4, fitted=True).flagged
    assert not OutlierCheck("msp", 0.4, 0.4, fitted=True).flagged
    assert OutlierCheck("energy", 2.5, 2.7, fitted=True).notice.startswith(
        "This may not be one of the 10 classes: its energy score 2.5 is below 2.7"
    )
    assert OutlierCheck("msp", 0.9, 0.4, fitted=True).notice == ""


@pytest.mark.skipif(
    not FASHION_MNIST_DIR.is_dir(),
    reason="needs Debian's dataset-fashion-mnist (.ci/run installs it)",
)
def test_fashion_mnist_loads_as_cifar_shaped_rgb():
    images = load_fashion_mnist("test", limit=5)
    assert images.shape == (5, 32, 32, 3) and images.dtype == np.uint8
    assert np.array_equal(images[..., 0], images[..., 2]) and images.max() > 200


def test_a_missing_fashion_mnist_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        load_fashion_mnist("test", folder=tmp_path)
    with pytest.raises(ValueError, match="unknown split 'val'"):
        load_fashion_mnist("val")


def test_without_a_detector_the_top_probability_decides_the_warning(trained_seed_cnn):
    from cifar_cnn.classifier import CifarClassifier

    classifier = CifarClassifier.from_pretrained(trained_seed_cnn)
    classifier.config.pop("ood_detector", None)
    view = np.full((32, 32, 3), 128, np.uint8)
    check = outlier_check(classifier, view, np.array([0.3] + [0.7 / 9] * 9))
    assert not check.fitted and check.threshold == LOW_CONFIDENCE and check.flagged
    assert check.notice.startswith("Low confidence (30%): this may not be one of the 10 classes")
    assert not outlier_check(classifier, view, np.eye(10)[0]).flagged
