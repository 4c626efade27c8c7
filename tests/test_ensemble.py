"""cifar_cnn.ensemble: ensemble folders that save, load and vote, and cifar-ensemble."""

import json
import shutil

import numpy as np
import pytest

from cifar_cnn.data.cifar10 import SLICE_PATH
from cifar_cnn.ensemble import CifarEnsemble, load_pretrained
from cifar_cnn.report.metrics import evaluate_ensemble


def test_ensemble_folder_round_trip_and_metrics(trained_seed_cnn, slice_data, tmp_path):
    shutil.copytree(trained_seed_cnn, tmp_path / "a")
    shutil.copytree(trained_seed_cnn, tmp_path / "b")
    from cifar_cnn.classifier import CifarClassifier

    members = [CifarClassifier.from_pretrained(tmp_path / n) for n in ("a", "b")]
    built = CifarEnsemble(members, weights=[0.5, 0.25], names=["a", "b"], sources=["../a", "../b"])
    built.metrics = evaluate_ensemble(built, slice_data.x_test, slice_data.y_test)
    built.save_pretrained(tmp_path / "ensemble")  # the members are reachable: kept as references

    config = json.loads((tmp_path / "ensemble" / "config.json").read_text())
    assert config["type"] == "ensemble" and [m["source"] for m in config["members"]] == [
        "../a",
        "../b",
    ]
    card = (tmp_path / "ensemble" / "README.md").read_text()
    assert "model-index" in card and "soft vote" in card and "`../a`" in card
    assert "scores +0.00\npoints over its best member (a)" in card  # identical members add nothing

    loaded = CifarEnsemble.from_pretrained(tmp_path / "ensemble")
    np.testing.assert_allclose(loaded.weights, [0.5, 0.25])
    images = slice_data.x_test[:20]
    # Identical members: the ensemble says what each member says, and they always agree.
    np.testing.assert_allclose(loaded.predict(images), members[0].predict(images), rtol=1e-6)
    assert loaded.agreement(images)["all_agree"] == 1.0
    assert built.metrics["soft"]["accuracy"] == pytest.approx(built.metrics["members"]["a"])
    assert loaded.predict(images[0]).shape == (10,)


def test_evaluation_reads_each_member_twice_yet_matches_the_votes_it_reports(
    trained_seed_cnn, slice_data
):
    from cifar_cnn.classifier import CifarClassifier
    from cifar_cnn.report.metrics import ensemble_probabilities_with_flips

    member = CifarClassifier.from_pretrained(trained_seed_cnn)
    ensemble = CifarEnsemble([member, member], names=["a", "b"])
    images = slice_data.x_test[:40]
    plain, flipped = ensemble_probabilities_with_flips(ensemble, images)
    np.testing.assert_allclose(plain, ensemble.member_probabilities(images), rtol=1e-5)
    np.testing.assert_allclose(
        flipped, ensemble.member_probabilities(images, flip_tta=True), rtol=1e-5
    )


def test_members_named_alike_get_distinct_names_in_order():
    from cifar_cnn.ensemble import distinct_names

    assert distinct_names(["model", "seed_cnn", "model", "model"]) == [
        "model", "seed_cnn", "model-2", "model-3"
    ]  # fmt: skip
    assert distinct_names(["a", "a-2", "a"]) == ["a", "a-2", "a-3"]  # never a name twice


def test_loading_refuses_a_model_folder_as_an_ensemble(trained_seed_cnn):
    with pytest.raises(ValueError, match="not an ensemble config"):
        CifarEnsemble.from_pretrained(trained_seed_cnn)


def test_cifar_ensemble_weights_members_by_validation_accuracy(trained_seed_cnn, tmp_path, capsys):
    from training.cli import ensemble_main

    for name in ("a", "b"):
        shutil.copytree(trained_seed_cnn, tmp_path / "models" / name)
    ensemble_main(
        [str(tmp_path / "models" / "a"), str(tmp_path / "models" / "b"),
         "--output", str(tmp_path / "models" / "ensemble"), "--data", str(SLICE_PATH)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "soft vote" in out and "all members agree on 100.0% of 500 images" in out
    # Judged on the validation images neither member trained on (the slice's 10%), with and
    # without flip TTA; the test set's figures come beside them.
    assert "validation (100 images no member trained on): soft vote" in out
    assert "(flip TTA " in out
    config = json.loads((tmp_path / "models" / "ensemble" / "config.json").read_text())
    val_accuracy = json.loads((trained_seed_cnn / "config.json").read_text())["training"][
        "best_val_accuracy"
    ]
    assert [m["source"] for m in config["members"]] == ["../a", "../b"]
    # Members are named by their folders, as the app shows them.
    assert [m["name"] for m in config["members"]] == ["a", "b"]
    metrics = json.loads((tmp_path / "models" / "ensemble" / "metrics.json").read_text())
    assert list(metrics["members"]) == ["a", "b"] and metrics["validation"]["plain"]["n"] == 100
    card = (tmp_path / "models" / "ensemble" / "README.md").read_text()
    assert "| predictor | test accuracy | with flip TTA |" in card
    assert "On the 100 validation images no member trained on" in card
    assert [m["weight"] for m in config["members"]] == pytest.approx([val_accuracy] * 2)


def test_load_pretrained_returns_what_the_folder_holds(trained_seed_cnn, tmp_path):
    from cifar_cnn.classifier import CifarClassifier

    member = CifarClassifier.load_folder(trained_seed_cnn)
    CifarEnsemble([member, member], names=["a", "b"]).save_pretrained(tmp_path / "ensemble")
    assert type(load_pretrained(tmp_path / "ensemble")) is CifarEnsemble
    assert type(load_pretrained(trained_seed_cnn)) is CifarClassifier
    assert type(load_pretrained("seed_cnn")) is CifarClassifier  # a registry name
    with pytest.raises(ValueError, match="no such model folder, and not a Hub repo id"):
        load_pretrained(tmp_path / "missing" / "folder")
