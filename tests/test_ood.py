"""cifar_cnn.trust.ood: out-of-distribution scores, their metrics, the shipped kNN detector and
the check every label comes with."""

import shutil

import numpy as np
import pytest

from cifar_cnn.data.cifar10 import REPO_ROOT
from cifar_cnn.data.fashion_mnist import FASHION_MNIST_DIR, load_fashion_mnist
from cifar_cnn.trust.ood import (
    DETECTOR_FILES,
    OutlierCheck,
    auroc,
    check_batch,
    detector_of,
    energy_score,
    fpr_at_tpr,
    knn_similarity,
    logits_for,
    ood_scores,
    predict_and_check,
    threshold_at_tpr,
)

OUTLIERS = REPO_ROOT / "examples" / "outliers"


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


def test_a_check_says_why_only_when_it_flags():
    assert OutlierCheck(True, "it looks unlike the photos.", "knn").notice == (
        "This may not be one of the 10 classes: it looks unlike the photos."
    )
    assert OutlierCheck(False, "", "knn").notice == ""


def test_knn_similarity_is_the_kth_nearest_neighbours_cosine():
    bank = np.eye(4, dtype=np.float16)  # four orthogonal unit vectors
    query = np.array([[1.0, 0, 0, 0], [0.6, 0.8, 0, 0]], np.float32)
    np.testing.assert_allclose(knn_similarity(query, bank, 1), [1.0, 0.8], atol=1e-3)
    np.testing.assert_allclose(knn_similarity(query, bank, 2), [0.0, 0.6], atol=1e-3)


# The acceptance of the detector: everyday photos from a source held out of every choice get
# the warning, and confidently classified CIFAR-10 test images do not (docs/ood_benchmark.md has
# the full benchmark; these pictures are in examples/outliers/README.md).
def test_the_flagship_warns_on_held_out_photos_with_a_reason_in_plain_words(flagship):
    for name in ("photo_coffee.jpg", "photo_rocket.jpg"):
        answer = flagship.check(OUTLIERS / name)
        assert answer.out_of_distribution, name
        assert answer.warning.startswith("This may not be one of the 10 classes: it looks unlike")
        assert "airplanes, cars, birds" in answer.warning and "score" not in answer.warning
        assert answer.as_dict()["label"] == answer.label and len(answer.probabilities) == 3
    ship = flagship.check(REPO_ROOT / "examples" / "test0001_ship.png")
    assert (ship.label, ship.out_of_distribution, ship.warning) == ("ship", False, None)


def test_the_shipped_test_slice_is_rarely_flagged_and_confident_answers_almost_never(
    flagship, slice_data
):
    """On the 500 shipped test images the flagship flags 18 (3.6%), and 9 of the 421 (2.1%) it
    classifies correctly with over 90% confidence; 4.5% of all 10,000 test images are flagged."""
    probabilities, checks = predict_and_check(flagship, slice_data.x_test)
    flagged = np.array([c.flagged for c in checks])
    confident = (probabilities.argmax(1) == slice_data.y_test) & (probabilities.max(1) > 0.9)
    assert flagged.mean() <= 0.05 and flagged[confident].mean() <= 0.03
    np.testing.assert_allclose(probabilities, flagship.predict(slice_data.x_test), atol=1e-5)


def test_the_shipped_ensemble_has_its_own_detector(slice_data):
    """Its detector flags 4.9% of all 10,000 test images (its threshold keeps 95% of validation);
    on the 500 shipped ones 24 (4.8%), and 7 of the 389 (1.8%) it classifies correctly with over
    90% confidence."""
    from cifar_cnn.ensemble import CifarEnsemble

    ensemble = CifarEnsemble.from_pretrained(REPO_ROOT / "models" / "ensemble")
    assert detector_of(ensemble).own_score == ensemble.config["ood_detector"]["own_score"]
    assert ensemble.check(OUTLIERS / "photo_coffee.jpg").out_of_distribution
    probabilities, checks = predict_and_check(ensemble, slice_data.x_test)
    flagged = np.array([c.flagged for c in checks])
    confident = (probabilities.argmax(1) == slice_data.y_test) & (probabilities.max(1) > 0.9)
    assert flagged.mean() <= 0.07 and flagged[confident].mean() <= 0.03  # 500 images: noisy
    assert {c.method for c in checks} == {"knn"}


def test_a_folder_whose_detector_files_are_altered_or_missing_does_not_load(tmp_path):
    from cifar_cnn.classifier import CifarClassifier

    folder = tmp_path / "resnet_fast"
    shutil.copytree(REPO_ROOT / "models" / "resnet_fast", folder)
    bank = (folder / DETECTOR_FILES[0]).read_bytes()
    np.save(folder / DETECTOR_FILES[0], np.zeros((5, 256), np.float16))
    with pytest.raises(ValueError, match="ood_bank.npy: checksum mismatch"):
        CifarClassifier.from_pretrained(folder)
    (folder / DETECTOR_FILES[0]).write_bytes(bank)
    (folder / DETECTOR_FILES[1]).unlink()
    with pytest.raises(ValueError, match=r"incomplete model folder \(no ood_features"):
        CifarClassifier.from_pretrained(folder)


def test_a_detector_of_an_earlier_release_still_checks_by_its_score(trained_seed_cnn):
    from cifar_cnn.classifier import CifarClassifier

    classifier = CifarClassifier.from_pretrained(trained_seed_cnn)
    classifier.config["ood_detector"] = {"score": "energy", "threshold": 2.7}
    probabilities = np.full((2, 10), 0.1)
    checks = check_batch(classifier, None, probabilities, {"energy": np.array([2.5, 3.0])})
    assert [c.flagged for c in checks] == [True, False]
    assert checks[0].reason.startswith("its energy score 2.5 is below 2.7")


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
    probabilities = np.stack([[0.3] + [0.7 / 9] * 9, np.eye(10)[0]])
    unsure, sure = check_batch(classifier, None, probabilities, {"msp": probabilities.max(1)})
    assert unsure.flagged and unsure.method == "low confidence"
    assert unsure.notice == (
        "This may not be one of the 10 classes: the model's top probability is only 30%."
    )
    assert not sure.flagged
