"""training.evaluate via `cifar-evaluate --ood --corruptions`: results land in the folder."""

import hashlib
import json
import shutil

import numpy as np
import pytest

from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.cifar10 import REPO_ROOT, SLICE_PATH, load_slice
from cifar_cnn.data.fashion_mnist import FASHION_MNIST_DIR
from cifar_cnn.ensemble import CifarEnsemble
from cifar_cnn.trust.corruptions import corruption_benchmark
from training.cli import evaluate_main

#: The ImageNet network the detectors use, from the flagship's folder (no download in tests).
FEATURES = str(REPO_ROOT / "models" / "resnet_fast" / "ood_features.weights.h5")
needs_fashion_mnist = pytest.mark.skipif(
    not FASHION_MNIST_DIR.is_dir(),
    reason="needs Debian's dataset-fashion-mnist (.ci/run installs it)",
)


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@needs_fashion_mnist
def test_evaluate_writes_the_ood_detector_and_corruption_accuracy_into_the_folder(
    trained_seed_cnn, tmp_path
):
    folder = tmp_path / "model"
    shutil.copytree(trained_seed_cnn, folder)
    weights = sha256(folder / "model.weights.h5")

    evaluate_main(
        [str(folder), "--data", str(SLICE_PATH), "--write", "--ood", "--corruptions",
         "--corruption-images", "20", "--ood-images", "500", "--ood-features", FEATURES,
         "--ood-sources", "fashion_mnist,synthetic,faces"]
    )  # fmt: skip

    metrics = json.loads((folder / "metrics.json").read_text())
    assert {"plain", "flip_tta", "ood", "corruptions"} <= set(metrics)
    sources = metrics["ood"]["sources"]
    assert {"fashion_mnist", "synthetic"} <= set(sources) <= {"fashion_mnist", "synthetic", "faces"}
    for source in sources.values():
        assert set(source["scores"]) == {"msp", "energy", "knn", "detector"}
        assert all(0 <= s["auroc"] <= 1 for s in source["scores"].values())
    assert 0 <= metrics["ood"]["test_flagged"] <= 1
    detector = json.loads((folder / "config.json").read_text())["ood_detector"]
    assert detector["method"] == "knn" and detector["tpr"] == 0.95
    assert "validation split (100 images) against fashion_mnist" in detector["fitted_on"]
    assert detector["bank_images"] == 900  # 90 training pictures per class are not validation
    coffee = REPO_ROOT / "examples" / "outliers" / "photo_coffee.jpg"
    assert CifarClassifier.from_pretrained(folder).check(coffee).check.method == "knn"
    assert metrics["corruptions"]["n"] == 20 and len(metrics["corruptions"]["corruptions"]) == 9
    assert (folder / "corruptions.png").stat().st_size > 10_000
    card = (folder / "README.md").read_text()
    assert "## Out-of-distribution warning" in card and "## Accuracy under corruptions" in card
    assert sha256(folder / "model.weights.h5") == weights  # the weights are never rewritten

    # A plain re-evaluation keeps the trust results, and the folder still loads.
    evaluate_main([str(folder), "--data", str(SLICE_PATH), "--write"])
    assert "ood" in json.loads((folder / "metrics.json").read_text())
    assert CifarClassifier.from_pretrained(folder).config["ood_detector"] == detector


def test_ood_needs_a_training_record_for_the_validation_split(trained_seed_cnn, tmp_path):
    from training.evaluate import validation_images

    classifier = CifarClassifier.from_pretrained(trained_seed_cnn)
    del classifier.config["training"]
    with pytest.raises(ValueError, match="no training record"):
        validation_images(classifier, load_slice())


def test_members_validated_on_nested_splits_share_the_smaller_one(trained_seed_cnn):
    from training.evaluate import validation_images

    data = load_slice()
    wide, narrow = (CifarClassifier.from_pretrained(trained_seed_cnn) for _ in range(2))
    wide.config["training"]["recipe"]["validation_fraction"] = 0.1
    narrow.config["training"]["recipe"]["validation_fraction"] = 0.04
    x_common, y_common = validation_images([wide, narrow], data)
    x_narrow, y_narrow = validation_images(narrow, data)
    assert len(x_common) == 40 and len(validation_images(wide, data)[0]) == 100
    np.testing.assert_array_equal(x_common, x_narrow)
    np.testing.assert_array_equal(y_common, y_narrow)


def test_members_differing_only_in_seed_validate_on_the_same_images(trained_seed_cnn):
    from training.evaluate import validation_images

    data = load_slice()
    first, second, older = (CifarClassifier.from_pretrained(trained_seed_cnn) for _ in range(3))
    second.config["training"]["recipe"].update(seed=1, split_seed=0)
    older.config["training"]["recipe"].update(seed=1)  # a record from before split_seed
    del older.config["training"]["recipe"]["split_seed"]
    x_first, _ = validation_images(first, data)
    np.testing.assert_array_equal(validation_images([first, second], data)[0], x_first)
    assert len(validation_images([first, older], data)[0]) < len(x_first)  # its seed moved it


@pytest.mark.slow
@needs_fashion_mnist
def test_cifar_ensemble_reports_ood_and_corruptions_for_members_and_vote(
    trained_seed_cnn, tmp_path
):
    from training.cli import ensemble_main

    for name in ("a", "b"):
        shutil.copytree(trained_seed_cnn, tmp_path / name)
    output = tmp_path / "ensemble"
    ensemble_main([str(tmp_path / "a"), str(tmp_path / "b"), "--output", str(output),
                   "--data", str(SLICE_PATH), "--ood", "--ood-images", "500", "--ood-features",
                   FEATURES, "--ood-sources", "fashion_mnist", "--corruptions",
                   "--corruption-images", "20",
                   "--write-members"])  # fmt: skip
    metrics = json.loads((output / "metrics.json").read_text())
    report = metrics["ood"]
    scores = report["sources"]["fashion_mnist"]["scores"]
    assert set(scores) == {"msp", "energy", "vote_share", "knn", "detector"}
    assert report["detector"]["method"] == "knn"
    assert (output / "ood_bank.npy").is_file() and (output / "ood_features.weights.h5").is_file()
    card = (output / "README.md").read_text()
    assert "## Out-of-distribution detection" in card

    corruptions = metrics["corruptions"]
    assert set(corruptions["models"]) == {"a", "b", "ensemble"}
    assert corruptions["n"] == 20 and len(corruptions["corruptions"]) == 9
    assert sorted(corruptions["ranking"]["clean"]) == sorted(corruptions["models"])
    assert "## Accuracy under corruptions" in card and "| soft vote |" in card
    assert (output / "corruptions.png").stat().st_size > 10_000
    # With --write-members, each member's own folder gets what `cifar-evaluate --corruptions
    # --write` would write there (without it, the members' folders are left alone: below).
    member = CifarClassifier.from_pretrained(tmp_path / "a")
    data = load_slice()
    expected = corruption_benchmark(
        lambda x: member.predict(x, batch_size=500), data.x_test[:20], data.y_test[:20]
    )
    assert member.metrics["corruptions"] == expected
    assert (tmp_path / "a" / "corruptions.png").is_file()

    # Rebuilding needs --overwrite; the same ensemble keeps its corruption results (its detector
    # is fitted again with --ood, its files being gone), other members keep nothing.
    with pytest.raises(SystemExit, match="exists; pass --overwrite"):
        ensemble_main([str(tmp_path / "a"), "--output", str(output), "--data", str(SLICE_PATH)])
    ensemble_main([str(tmp_path / "a"), str(tmp_path / "b"), "--output", str(output),
                   "--data", str(SLICE_PATH), "--overwrite"])  # fmt: skip
    kept = json.loads((output / "metrics.json").read_text())
    assert "corruptions" in kept and "ood" not in kept
    assert "ood_detector" not in json.loads((output / "config.json").read_text())
    CifarEnsemble.from_pretrained(output)  # loads: no detector described, none needed
    ensemble_main([str(tmp_path / "a"), "--output", str(output), "--data", str(SLICE_PATH),
                   "--overwrite"])  # fmt: skip
    assert "corruptions" not in json.loads((output / "metrics.json").read_text())

    # Without --write-members, the members' own folders are left as they were.
    before = {f.name: f.read_bytes() for f in (tmp_path / "b").iterdir()}
    ensemble_main([str(tmp_path / "b"), "--output", str(tmp_path / "other"), "--data",
                   str(SLICE_PATH), "--corruptions", "--corruption-images", "4"])  # fmt: skip
    assert {f.name: f.read_bytes() for f in (tmp_path / "b").iterdir()} == before
    assert json.loads((tmp_path / "other" / "metrics.json").read_text())["corruptions"]["n"] == 4


@pytest.mark.parametrize("reserved", ["ensemble", "soft vote"])
def test_ensemble_corruptions_refuse_a_member_named_like_the_vote(trained_seed_cnn, reserved):
    from cifar_cnn.ensemble import CifarEnsemble
    from training.evaluate import evaluate_ensemble_corruptions

    member = CifarClassifier.from_pretrained(trained_seed_cnn)
    ensemble = CifarEnsemble([member, member], names=[reserved, "other"])
    with pytest.raises(ValueError, match=f"member named '{reserved}' would be confused"):
        evaluate_ensemble_corruptions(ensemble, load_slice(), "unused", ["a", "b"], limit=2)
