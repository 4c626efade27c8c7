"""The models shipped in models/: each loads with from_pretrained and performs as its card says."""

import json

import numpy as np
import pytest

from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data import REPO_ROOT
from cifar_cnn.ensemble import CifarEnsemble

MODELS = REPO_ROOT / "models"
SHIPPED = sorted(p.parent.name for p in MODELS.glob("*/model.keras"))
MARGIN = 0.05  # 500 test images: a standard error of about 1.2 points at 93% accuracy


def test_the_flagship_ships():
    assert "resnet_fast" in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_matches_its_card_on_the_test_slice(name, slice_data):
    folder = MODELS / name
    classifier = CifarClassifier.from_pretrained(folder)
    card_accuracy = json.loads((folder / "metrics.json").read_text())["plain"]["accuracy"]
    predicted = classifier.predict(slice_data.x_test).argmax(axis=1)
    accuracy = float(np.mean(predicted == slice_data.y_test))
    assert accuracy >= card_accuracy - MARGIN, f"{name}: {accuracy:.3f} vs card {card_accuracy:.3f}"
    assert f"{100 * card_accuracy:.2f}%" in (folder / "README.md").read_text()
    assert (folder / "model.keras").stat().st_size < 20 * 2**20


@pytest.mark.skipif(not (MODELS / "ensemble").is_dir(), reason="no ensemble shipped yet")
def test_shipped_ensemble_matches_its_card(slice_data):
    ensemble = CifarEnsemble.from_pretrained(MODELS / "ensemble")
    card_accuracy = json.loads((MODELS / "ensemble" / "metrics.json").read_text())["soft"][
        "accuracy"
    ]
    accuracy = float(
        np.mean(ensemble.predict(slice_data.x_test).argmax(axis=1) == slice_data.y_test)
    )
    assert accuracy >= card_accuracy - MARGIN
