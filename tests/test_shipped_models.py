"""The models shipped in models/: each loads with from_pretrained, performs as its card says, and
survives a save anywhere and a reload bit for bit."""

import json

import numpy as np
import pytest
from conftest import one_folder_per_architecture

from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.cifar10 import REPO_ROOT
from cifar_cnn.ensemble import CifarEnsemble
from cifar_cnn.hub.layout import model_folders

MODELS = REPO_ROOT / "models"
SHIPPED = [folder.name for folder in model_folders(MODELS)]
ONE_PER_ARCHITECTURE = [folder.name for folder in one_folder_per_architecture().values()]
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
    assert (folder / "model.weights.h5").stat().st_size < 20 * 2**20


def test_shipped_ensemble_matches_its_card(slice_data):
    ensemble = CifarEnsemble.from_pretrained(MODELS / "ensemble")
    card_accuracy = json.loads((MODELS / "ensemble" / "metrics.json").read_text())["soft"][
        "accuracy"
    ]
    accuracy = float(
        np.mean(ensemble.predict(slice_data.x_test).argmax(axis=1) == slice_data.y_test)
    )
    assert accuracy >= card_accuracy - MARGIN


def test_one_folder_of_each_architecture_is_checked_for_reloading():
    assert sorted(ONE_PER_ARCHITECTURE) == ["mobilenet_transfer", "resnet_fast", "seed_cnn"]


@pytest.mark.parametrize("name", ONE_PER_ARCHITECTURE)
def test_a_shipped_model_saved_elsewhere_reloads_bit_for_bit(name, slice_data, tmp_path):
    images = slice_data.x_test[:100]
    shipped = CifarClassifier.from_pretrained(MODELS / name)
    shipped.save_pretrained(tmp_path / name)
    copy = CifarClassifier.from_pretrained(tmp_path / name)
    np.testing.assert_array_equal(copy.predict(images), shipped.predict(images))
    assert copy.config == shipped.config
    assert json.loads((tmp_path / name / "metrics.json").read_text()) == shipped.metrics


def test_the_shipped_ensemble_saved_elsewhere_reloads_bit_for_bit(slice_data, tmp_path):
    images = slice_data.x_test[:100]
    shipped = CifarEnsemble.from_pretrained(MODELS / "ensemble")
    shipped.save_pretrained(tmp_path / "ensemble")  # outside the repository: members go inside
    copy = CifarEnsemble.from_pretrained(tmp_path / "ensemble")
    assert copy.sources == [f"members/{name}" for name in shipped.names]
    np.testing.assert_array_equal(copy.predict(images), shipped.predict(images))
    np.testing.assert_array_equal(copy.hard_vote(images), shipped.hard_vote(images))
    assert copy.metrics == shipped.metrics
    # Saved again where it stands, it keeps referring to its members: nothing is copied twice.
    copy.save_pretrained(tmp_path / "ensemble")
    assert CifarEnsemble.from_pretrained(tmp_path / "ensemble").sources == copy.sources
    # And a copy of the copy, elsewhere, is whole too.
    copy.save_pretrained(tmp_path / "again")
    again = CifarEnsemble.from_pretrained(tmp_path / "again")
    np.testing.assert_array_equal(again.predict(images), shipped.predict(images))


def test_an_ensemble_member_that_cannot_be_found_is_a_clear_error(tmp_path):
    shipped = json.loads((MODELS / "ensemble" / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(shipped))  # members as ../NAME
    first = shipped["members"][0]
    with pytest.raises(
        ValueError, match=f"ensemble member {first['name']}: no folder {first['source']}"
    ):
        CifarEnsemble.from_pretrained(tmp_path)
