"""webapp.events: the answer to each app event, tested without a browser."""

from pathlib import Path

import numpy as np
import pytest

from cifar_cnn.data.cifar10 import REPO_ROOT
from webapp import events, outputs

SHIP = REPO_ROOT / "examples" / "test0001_ship.png"
FLAGSHIP = REPO_ROOT / "models" / "resnet_fast"


def test_classify_labels_the_shipped_ship_and_shows_the_32px_view(served):
    result = events.classify(served.get("resnet_fast"), str(SHIP), top_k=3)
    assert result.label == "ship" and len(result.probabilities) == 3
    shown = list(result.probabilities.values())
    assert shown == sorted(shown, reverse=True)
    assert result.view.shape == (256, 256, 3)
    assert not result.out_of_distribution and result.warning is None


@pytest.mark.parametrize("score", ["msp", "energy"])
def test_a_fitted_detector_warns_below_its_threshold(trained_seed_cnn, score):
    from cifar_cnn.classifier import CifarClassifier

    classifier = CifarClassifier.from_pretrained(trained_seed_cnn)
    classifier.config["ood_detector"] = {"score": score, "threshold": float("inf")}
    result = events.classify(classifier, str(SHIP))
    assert result.check.method == score  # a detector of an earlier release: one score
    assert result.warning.startswith("This may not be one of the 10 classes")
    classifier.config["ood_detector"]["threshold"] = float("-inf")
    assert events.classify(classifier, str(SHIP)).warning is None


@pytest.mark.parametrize("temperature", [None, 1.7])
def test_with_an_energy_detector_the_shown_probabilities_are_the_models_own(
    trained_seed_cnn, temperature
):
    from cifar_cnn.classifier import CifarClassifier

    classifier = CifarClassifier.from_pretrained(trained_seed_cnn)
    classifier.config["calibration"] = {"temperature": temperature} if temperature else None
    classifier.config["ood_detector"] = {"score": "energy", "threshold": 0.0}
    result = events.classify(classifier, str(SHIP), top_k=10)
    expected = classifier.predict(events.model_view(str(SHIP))[1])
    shown = [result.probabilities[name] for name in classifier.class_names]
    np.testing.assert_allclose(shown, expected, rtol=1e-4, atol=1e-6)


def test_ensemble_vote_has_one_row_per_model(served):
    vote = events.ensemble_vote(served, str(SHIP))
    assert [row[0] for row in vote.rows] == ["resnet_fast", "model"]
    assert all(len(row) == len(events.ENSEMBLE_COLUMNS) for row in vote.rows)
    assert vote.rows[0][1] == "ship" and vote.rows[0][2].endswith("%")
    assert sum(vote.soft.values()) == pytest.approx(1.0, abs=1e-4)
    # Weighted by validation accuracy, the flagship's vote outweighs the one-epoch model's.
    assert vote.hard_label == "ship" and "Soft vote: **ship**" in vote.summary
    assert not vote.outlier.flagged  # only the tiny model doubts the ship: not a majority
    assert vote.answer()["models"]["resnet_fast"]["label"] == "ship"


def test_compare_explains_each_chosen_model_and_captions_its_check(served):
    compared = events.compare(served, SHIP.read_bytes())  # bytes: decoded once for all models
    assert [model.name for model in compared] == ["resnet_fast", "model"]
    assert compared[0].caption.startswith("resnet_fast: ship ") and "⚠" not in compared[0].caption
    assert compared[0].explanation.overlay.shape == (256, 256, 3)
    coffee = REPO_ROOT / "examples" / "outliers" / "photo_coffee.jpg"
    (flagship,) = events.compare(served, str(coffee), ["resnet_fast"])
    assert flagship.check.flagged and flagship.caption.endswith(
        "(⚠ may not be one of the 10 classes)"
    )


def test_explain_lays_a_non_uniform_heat_over_the_picture(served):
    result = events.explain(served.get("resnet_fast"), str(SHIP), opacity=0.6)
    assert result.overlay.shape == (256, 256, 3) and result.overlay.dtype == np.uint8
    assert result.predicted_class == "ship" and result.explained_class == "ship"
    other = events.explain(served.get("resnet_fast"), str(SHIP), class_name="cat")
    assert other.explained_class == "cat" and not np.array_equal(other.overlay, result.overlay)
    assert result.overlay.std() > 10
    assert result.caption.startswith("Grad-CAM of **ship**") and "almost no" not in result.caption
    faint = events.explain(
        served.get("resnet_fast"), str(SHIP), class_name="cat", method="gradcam++"
    )
    assert faint.probability < events.FAINT  # the flagship gives the ship's picture ~0% cat
    assert faint.caption.startswith("Grad-CAM++ of **cat** (0%)") and "almost no" in faint.caption
    with pytest.raises(ValueError, match="unknown class 'unicorn'"):
        events.explain(served.get("resnet_fast"), str(SHIP), class_name="unicorn")


def test_model_card_is_markdown_without_front_matter_with_plots(served):
    text, plots = events.model_card(served.get("resnet_fast"))
    assert text.startswith("# CIFAR-10 resnet_fast") and "model-index" not in text
    assert "![" not in text
    assert [caption for _, caption in plots][0] == "Learning curves"


def test_batch_classifies_every_file_with_every_model_and_reports_bad_files(served, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"")
    rows, views = events.classify_batch(served, [str(SHIP), str(bad)], ["resnet_fast", "model"])
    assert [name for name, _ in views] == ["test0001_ship.png"] and views[0][1].shape == (32, 32, 3)
    assert [r[:2] for r in rows[:2]] == [["test0001_ship.png", "resnet_fast"],
                                          ["test0001_ship.png", "model"]]  # fmt: skip
    assert rows[0][2] == "ship" and 0 < rows[0][3] <= 1
    assert rows[0][4] == ""  # a ship: no warning
    assert rows[2][0] == "broken.png" and "empty" in rows[2][5]
    csv = Path(outputs.OutputFolder(folder=tmp_path).csv_file(rows, events.BATCH_COLUMNS))
    assert csv.name.startswith("predictions-") and csv.suffix == ".csv"
    lines = csv.read_text().splitlines()
    assert lines[0] == "file,model,label,confidence,warning,error" and len(lines) == 4
    pullover = REPO_ROOT / "examples" / "outliers" / "fashion_mnist_test0001_pullover.png"
    (row,), _ = events.classify_batch(served, [str(pullover)], ["resnet_fast"])
    assert row[4] == events.BATCH_WARNING  # the flagship's detector flags the pullover


def test_robustness_shows_the_corrupted_view_its_prediction_and_grad_cam(served):
    flagship = served.get("resnet_fast")
    clean = events.robustness(flagship, str(SHIP), "gaussian_noise", 0)
    assert clean.classification.label == "ship"
    assert clean.corrupted.shape == (256, 256, 3) and clean.explanation.overlay.shape == (
        256,
        256,
        3,
    )
    noisy = events.robustness(flagship, str(SHIP), "gaussian_noise", 5)
    assert noisy.clean.label == "ship"  # the clean baseline, shown beside the corrupted view
    assert np.abs(noisy.corrupted.astype(int) - clean.corrupted).mean() > 5
    ship = "ship"
    before, after = clean.classification.probabilities, noisy.classification.probabilities
    assert after.get(ship, 0.0) < before[ship] - 0.05
    with pytest.raises(ValueError, match="unknown corruption 'rain'"):
        events.robustness(flagship, str(SHIP), "rain", 1)


def test_top_k_and_layer_must_be_sensible(served):
    flagship = served.get("resnet_fast")
    for bad in (0, 11, -1, 2.5, "3"):
        with pytest.raises(ValueError, match="top_k must be"):
            events.classify(flagship, str(SHIP), top_k=bad)
    with pytest.raises(ValueError, match="layer must be a layer name, got list"):
        events.explain(flagship, str(SHIP), layer=["conv"])


def test_the_ensemble_summary_says_when_there_is_no_majority(served):
    """Two models (the flagship and a one-epoch seed_cnn): agreeing is a majority, a split is
    not, whatever the weighted vote then picks."""
    pictures = sorted((REPO_ROOT / "examples").rglob("*.png"))
    votes = [events.ensemble_vote(served, str(p)) for p in pictures]
    agreed = [v for v in votes if v.all_agree]
    split = [v for v in votes if not v.all_agree]
    assert agreed and split, "the two models should agree on some pictures and not on others"
    assert all(f"**{v.hard_label}** (2 of 2 models)" in v.summary for v in agreed)
    for vote in split:
        assert "Majority vote" not in vote.summary
        assert "No majority: a 2-way tie, every model votes differently" in vote.summary
        assert f"breaks it for **{vote.hard_label}**" in vote.summary
