"""webapp: the app's backend (serving, events, uploads, outputs, history), without a browser."""

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifar_cnn.data.cifar10 import REPO_ROOT
from cifar_cnn.hub.reference import display_name
from cifar_cnn.trust import ood
from webapp import events, outputs, serving, uploads
from webapp.history import HISTORY_LIMIT, add_to_history

SHIP = REPO_ROOT / "examples" / "test0001_ship.png"
FLAGSHIP = REPO_ROOT / "models" / "resnet_fast"


@pytest.fixture(scope="module")
def served(trained_seed_cnn):
    return serving.load_models([str(FLAGSHIP), str(trained_seed_cnn), "/srv/private/missing_model"])


def test_default_sources_are_the_shipped_models_flagship_first(monkeypatch):
    monkeypatch.delenv(serving.MODELS_ENV, raising=False)
    sources = serving.model_sources()
    assert sources[0] == str(FLAGSHIP)
    monkeypatch.setenv(serving.MODELS_ENV, "a/b@v2, models/x")
    assert serving.model_sources() == ["a/b@v2", "models/x"]
    assert serving.model_sources("c/d") == ["c/d"]


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("tester/cifar-resnet", "tester/cifar-resnet"),
        ("tester/cifar-resnet@v2", "tester/cifar-resnet@v2"),
        ("/srv/models/resnet_fast", "resnet_fast"),
        ("./resnet_fast", "resnet_fast"),
        ("runs/v4/model", "model"),
        (str(FLAGSHIP), "resnet_fast"),
    ],
)
def test_sources_are_shown_by_repo_id_or_folder_name_never_by_server_path(source, name):
    assert display_name(source) == name


def test_a_model_that_fails_to_load_is_reported_and_the_rest_serve(served):
    assert served.names == ["resnet_fast", "model"]
    failure = served.failures["missing_model"]  # named as visitors see it, not by its path
    assert failure.source == "/srv/private/missing_model"
    assert failure.error_type in failure.reason
    with pytest.raises(ValueError, match="unknown model 'vgg'; loaded: resnet_fast, model"):
        served.get("vgg")


def test_classify_labels_the_shipped_ship_and_shows_the_32px_view(served):
    result = events.classify(served.get("resnet_fast"), str(SHIP), top_k=3)
    assert result.label == "ship" and len(result.top) == 3
    assert list(result.top.values()) == sorted(result.top.values(), reverse=True)
    assert result.view.shape == (256, 256, 3)
    assert not result.outlier.flagged and result.notice == ""


def test_without_a_detector_the_top_probability_decides_the_warning(trained_seed_cnn):
    from cifar_cnn.classifier import CifarClassifier

    classifier = CifarClassifier.from_pretrained(trained_seed_cnn)
    classifier.config.pop("ood_detector", None)
    view = np.full((32, 32, 3), 128, np.uint8)
    check = ood.outlier_check(classifier, view, np.array([0.3] + [0.7 / 9] * 9))
    assert not check.fitted and check.threshold == ood.LOW_CONFIDENCE and check.flagged
    assert check.notice.startswith("Low confidence (30%): this may not be one of the 10 classes")
    assert not ood.outlier_check(classifier, view, np.eye(10)[0]).flagged


@pytest.mark.parametrize("score", ["msp", "energy"])
def test_a_fitted_detector_warns_below_its_threshold(trained_seed_cnn, score):
    from cifar_cnn.classifier import CifarClassifier

    classifier = CifarClassifier.from_pretrained(trained_seed_cnn)
    classifier.config["ood_detector"] = {"score": score, "threshold": float("inf")}
    result = events.classify(classifier, str(SHIP))
    assert result.outlier.fitted and result.outlier.score_name == score
    assert result.notice.startswith("This may not be one of the 10 classes")
    classifier.config["ood_detector"]["threshold"] = float("-inf")
    assert events.classify(classifier, str(SHIP)).notice == ""


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
    shown = [result.top[name] for name in classifier.class_names]
    np.testing.assert_allclose(shown, expected, rtol=1e-4, atol=1e-6)


def test_ensemble_vote_has_one_row_per_model(served):
    vote = events.ensemble_vote(served, str(SHIP))
    assert [row[0] for row in vote.rows] == ["resnet_fast", "model"]
    assert all(len(row) == 3 + 10 for row in vote.rows)
    assert sum(vote.soft.values()) == pytest.approx(1.0, abs=1e-4)
    # Weighted by validation accuracy, the flagship's vote outweighs the one-epoch model's.
    assert vote.hard_label == "ship" and "Soft vote: **ship**" in vote.summary
    assert not vote.outlier  # only the tiny model doubts the ship: not a majority


def test_explain_lays_a_non_uniform_heat_over_the_picture(served):
    result = events.explain(served.get("resnet_fast"), str(SHIP), opacity=0.6)
    assert result.overlay.shape == (256, 256, 3) and result.overlay.dtype == np.uint8
    assert result.predicted_class == "ship" and result.explained_class == "ship"
    other = events.explain(served.get("resnet_fast"), str(SHIP), class_name="cat")
    assert other.explained_class == "cat" and not np.array_equal(other.overlay, result.overlay)
    assert result.overlay.std() > 10
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
    rows = events.classify_batch(served, [str(SHIP), str(bad)], ["resnet_fast", "model"])
    assert [r[:2] for r in rows[:2]] == [["test0001_ship.png", "resnet_fast"],
                                          ["test0001_ship.png", "model"]]  # fmt: skip
    assert rows[0][2] == "ship" and 0 < rows[0][3] <= 1
    assert rows[2][0] == "broken.png" and "empty" in rows[2][4]
    csv = Path(outputs.OutputFolder(folder=tmp_path).csv_file(rows, events.BATCH_COLUMNS))
    assert csv.name.startswith("predictions-") and csv.suffix == ".csv"
    lines = csv.read_text().splitlines()
    assert lines[0] == "file,model,label,confidence,error" and len(lines) == 4


def test_history_keeps_the_newest_predictions_first(served):
    first = events.classify(served.get("resnet_fast"), str(SHIP))
    entries = add_to_history(None, first.view, "resnet_fast", first.top)
    entries = add_to_history(entries, first.view, "model", first.top)
    assert [h["model"] for h in entries] == ["model", "resnet_fast"]
    assert entries[0]["label"] == "ship" and entries[0]["thumbnail"].shape == (32, 32, 3)
    _, view = events.model_view(str(SHIP))
    np.testing.assert_array_equal(entries[0]["thumbnail"], view)  # exactly what the model saw
    # It owns its 3 KB: a slice would keep the 192 KB enlarged view alive in the session (the
    # load test's memory growth).
    assert entries[0]["thumbnail"].base is None and entries[0]["thumbnail"].nbytes == 3072
    for _ in range(HISTORY_LIMIT + 5):
        entries = add_to_history(entries, first.view, "model", first.top)
    assert len(entries) == HISTORY_LIMIT


def test_an_upload_is_a_path_or_gradios_file_record():
    assert uploads.uploaded_path("/tmp/a.png") == "/tmp/a.png"
    assert uploads.uploaded_path({"path": "/tmp/b.jpg", "orig_name": "b.jpg"}) == "/tmp/b.jpg"
    with pytest.raises(ValueError, match="please upload one first"):
        uploads.uploaded_path(None)
    with pytest.raises(ValueError, match="upload has no file"):
        uploads.uploaded_path({"url": "http://example.com/x.png", "path": None})
    with pytest.raises(ValueError, match="expected an uploaded file, got int"):
        uploads.uploaded_path(3)


def test_an_upload_error_names_the_uploaders_file_not_the_servers_copy():
    upload = {"path": "/tmp/gradio/0af3/notes.png", "orig_name": "notes.png"}
    error = ValueError("/tmp/gradio/0af3/notes.png: not an image file (format not recognised)")
    assert uploads.upload_error_message(error, upload) == (
        "notes.png: not an image file (format not recognised)"
    )
    assert uploads.upload_error_message(error, "/tmp/gradio/0af3/notes.png") == str(error)


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
    assert np.abs(noisy.corrupted.astype(int) - clean.corrupted).mean() > 5
    ship = "ship"
    assert noisy.classification.top.get(ship, 0.0) < clean.classification.top[ship] - 0.05
    with pytest.raises(ValueError, match="unknown corruption 'rain'"):
        events.robustness(flagship, str(SHIP), "rain", 1)


def test_top_k_and_layer_must_be_sensible(served):
    flagship = served.get("resnet_fast")
    for bad in (0, 11, -1, 2.5, "3"):
        with pytest.raises(ValueError, match="top_k must be"):
            events.classify(flagship, str(SHIP), top_k=bad)
    with pytest.raises(ValueError, match="layer must be a layer name, got list"):
        events.explain(flagship, str(SHIP), layer=["conv"])


def test_a_file_record_must_point_into_the_upload_folder(tmp_path):
    inside = tmp_path / "uploads" / "abc" / "cat.png"
    record = {"path": str(inside), "orig_name": "cat.png"}
    assert uploads.uploaded_path(record, upload_folder=tmp_path / "uploads") == str(inside)
    with pytest.raises(ValueError, match="not a file uploaded to this app"):
        uploads.uploaded_path({"path": "/etc/hostname"}, upload_folder=tmp_path / "uploads")
    with pytest.raises(ValueError, match="not a file uploaded to this app"):
        uploads.uploaded_path(
            {"path": str(tmp_path / "uploads" / ".." / "secret.png")},
            upload_folder=tmp_path / "uploads",
        )


def test_an_image_output_is_a_complete_png_named_by_its_content(tmp_path):
    picture = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    path = outputs.image_file(picture, tmp_path)
    assert np.array_equal(np.asarray(Image.open(path)), picture)
    assert outputs.image_file(picture.copy(), tmp_path) == path
    assert outputs.image_file(255 - picture, tmp_path) != path


def test_concurrent_writers_of_one_image_never_expose_a_partial_file(tmp_path):
    # Gradio's own array-to-cache write is in place; this is what the app returns instead.
    picture = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    (tmp_path / "probe").mkdir()
    expected = len(Path(outputs.image_file(picture, tmp_path / "probe")).read_bytes())
    seen: list[int] = []

    def write_and_read():
        for _ in range(20):
            seen.append(len(Path(outputs.image_file(picture, tmp_path)).read_bytes()))

    threads = [threading.Thread(target=write_and_read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [expected] * 160
    assert [p.name for p in tmp_path.glob(".tmp-*")] == []


def test_an_output_folder_removes_files_nobody_asked_for_within_the_max_age(tmp_path):
    folder = outputs.OutputFolder(max_age_seconds=3600, prune_every_seconds=0, folder=tmp_path)
    old, reused, recent = (np.full((8, 8, 3), value, np.uint8) for value in (0, 1, 2))
    paths = [Path(folder.image_file(picture)) for picture in (old, reused, recent)]
    os.utime(paths[0], (time.time() - 7200,) * 2)
    os.utime(paths[1], (time.time() - 3000,) * 2)

    assert folder.image_file(reused) == str(paths[1])  # asked for again: its age starts anew
    assert paths[1].stat().st_mtime > time.time() - 60
    leftover = tmp_path / ".tmp-abc.png-xyz"  # from a write the server did not finish
    leftover.write_bytes(b"partial")
    os.utime(leftover, (time.time() - 7200,) * 2)
    new = Path(folder.csv_file([["a.png", "cat"]], ["file", "label"]))
    assert sorted(tmp_path.iterdir()) == sorted([paths[1], paths[2], new])
    assert np.array_equal(np.asarray(Image.open(paths[1])), reused)


def test_an_output_folder_checks_for_stale_images_at_most_every_interval(tmp_path):
    folder = outputs.OutputFolder(max_age_seconds=0, prune_every_seconds=3600, folder=tmp_path)
    first = Path(folder.image_file(np.zeros((8, 8, 3), np.uint8)))
    folder.image_file(np.ones((8, 8, 3), np.uint8))
    assert first.exists()  # stale, but the next check is not due for an hour
