"""cifar_cnn.report.mistakes: the most confident mistakes and their gallery."""

import numpy as np
import pytest
from PIL import Image

from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.report.mistakes import most_confidently_wrong, plot_error_gallery


def test_most_confident_mistakes_come_first():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7], [0.95, 0.05]])
    labels = np.array([0, 0, 0, 1, 1])  # wrong: 1 (0.8), 2 (0.6), 4 (0.95)
    assert most_confidently_wrong(probabilities, labels, k=2).tolist() == [4, 1]
    assert most_confidently_wrong(probabilities, labels).tolist() == [4, 1, 2]


def test_gallery_png_shows_mistakes_with_grad_cams(trained_seed_cnn, slice_data, tmp_path):
    classifier = CifarClassifier.from_pretrained(trained_seed_cnn)
    images, labels = slice_data.x_test[:100], slice_data.y_test[:100]
    probabilities = classifier.predict(images, calibrated=False)
    path = plot_error_gallery(classifier, images, labels, probabilities, tmp_path / "e.png", k=8)
    with Image.open(path) as picture:
        assert picture.size[0] > 600 and len(np.unique(np.asarray(picture.convert("L")))) > 50


def test_gallery_needs_a_mistake(trained_seed_cnn, slice_data, tmp_path):
    classifier = CifarClassifier.from_pretrained(trained_seed_cnn)
    probabilities = np.eye(10)[slice_data.y_test[:10]]
    with pytest.raises(ValueError, match="no mistakes"):
        plot_error_gallery(classifier, slice_data.x_test[:10], slice_data.y_test[:10],
                           probabilities, tmp_path / "e.png")  # fmt: skip
