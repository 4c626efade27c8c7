"""cifar_cnn.report.metrics and cifar-evaluate: metrics matching hand computation, tables, plots."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from cifar_cnn.data.cifar10 import SLICE_PATH
from cifar_cnn.report.metrics import (
    compute_metrics,
    mcnemar_p,
    most_confused_pairs,
    per_class_table,
)
from training.cli import evaluate_main

NAMES = ("a", "b", "c")


def one_hot_predictions(predicted, num_classes=3):
    probabilities = np.full((len(predicted), num_classes), 0.1)
    probabilities[np.arange(len(predicted)), predicted] = 0.8
    return probabilities


def test_metrics_match_a_hand_computed_example():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    metrics = compute_metrics(one_hot_predictions(y_pred), y_true, NAMES)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    a, b, c = (metrics["per_class"][n] for n in NAMES)
    assert (a["precision"], a["recall"]) == pytest.approx((1.0, 2 / 3))
    assert (b["precision"], b["recall"]) == pytest.approx((0.5, 0.5))
    assert (c["precision"], c["recall"]) == pytest.approx((0.5, 1.0))
    assert a["f1"] == pytest.approx(0.8) and c["f1"] == pytest.approx(2 / 3)
    assert metrics["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert metrics["top_k_accuracy"]["3"] == 1.0
    assert [a["support"], b["support"], c["support"]] == [3, 2, 1]


def test_top_k_counts_the_true_class_among_the_k_most_likely():
    probabilities = np.array([[0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.1, 0.6, 0.3]])
    metrics = compute_metrics(probabilities, np.array([1, 1, 0]), NAMES)
    assert metrics["top_k_accuracy"]["1"] == 0.0
    assert metrics["top_k_accuracy"]["3"] == 1.0


def test_most_confused_pairs_are_the_largest_off_diagonal_cells():
    matrix = np.array([[50, 9, 1], [2, 40, 0], [0, 7, 30]])
    pairs = most_confused_pairs(matrix, NAMES, k=2)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [
        ("a", "b", 9),
        ("c", "b", 7),
    ]
    assert pairs[0]["rate"] == pytest.approx(9 / 60)


def test_a_class_never_predicted_has_zero_precision_not_nan():
    metrics = compute_metrics(one_hot_predictions(np.array([0, 0])), np.array([0, 1]), NAMES)
    assert metrics["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert "| c | 0.000 | 0.000 | 0.000 | 0 |" in per_class_table(metrics)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="as many predictions as labels"):
        compute_metrics(one_hot_predictions(np.array([0])), np.array([0, 1]), NAMES)


def test_cifar_evaluate_prints_the_table_writes_the_plots_and_compares(
    trained_seed_cnn, tmp_path, capsys
):
    evaluate_main(
        [str(trained_seed_cnn), "--data", str(SLICE_PATH), "--output", str(tmp_path), "--errors",
         "--baseline", str(trained_seed_cnn), "--baseline-label", "itself"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "| class | precision | recall | F1 | support |" in out
    assert "| airplane |" in out and "with flip TTA" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["plain"]["n"] == 500 and set(metrics) >= {"plain", "flip_tta"}
    for name in (
        "confusion_matrix.png",
        "per_class.png",
        "learning_curves.png",
        "reliability.png",
        "errors.png",
    ):
        with Image.open(tmp_path / name) as image:
            assert image.size[0] > 400 and image.size[1] > 300
            assert len(np.unique(np.asarray(image.convert("L")))) > 10  # drawn, not blank
    card = (tmp_path / "README.md").read_text()
    assert "model-index" in card and "![Most confident mistakes](errors.png)" in card
    # --baseline: measured on the same images; compared with itself, nothing to choose.
    baseline = metrics["baseline"]
    assert baseline["label"] == "itself" and baseline["n"] == 500
    assert baseline["accuracy"] == metrics["plain"]["accuracy"]
    assert baseline["command"] == "pytest fixture"  # as its training recorded it
    assert "## Compared with itself" in card and "0.00 points above itself" in card


def test_mcnemar_p_is_one_for_an_even_split_and_small_for_a_lopsided_one():
    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(25, 25) == 1.0
    assert mcnemar_p(10, 30) == pytest.approx(0.0022, abs=1e-4)  # 2 * P(Binomial(40, 1/2) <= 10)
    assert mcnemar_p(30, 10) == mcnemar_p(10, 30)


def test_cifar_evaluate_writes_into_a_model_folder_only_when_asked(
    trained_seed_cnn, tmp_path, capsys
):
    folder = shutil.copytree(trained_seed_cnn, tmp_path / "model")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    evaluate_main([str(folder), "--data", str(SLICE_PATH)])
    out = capsys.readouterr().out
    assert "| airplane |" in out and "Nothing written (pass --write or --output" in out
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    evaluate_main([str(folder), "--data", str(SLICE_PATH), "--write"])
    assert "Nothing written" not in capsys.readouterr().out
    after = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert after["model.weights.h5"] == before["model.weights.h5"]  # weights never rewritten
    assert json.loads(after["metrics.json"])["plain"]["n"] == 500
