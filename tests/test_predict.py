"""training.predict (cifar-predict): pictures or a video in, one CSV or JSON row each out."""

import csv
import json
import shutil

import numpy as np
import pytest

from cifar_cnn.data.cifar10 import REPO_ROOT
from cifar_cnn.video import slideshow, write_video
from training.predict import predict_main

EXAMPLES = REPO_ROOT / "examples"
FLAGSHIP = str(REPO_ROOT / "models" / "resnet_fast")


def test_the_examples_folder_gives_a_csv_matching_predict(flagship, tmp_path):
    output = tmp_path / "labels.csv"
    predict_main([FLAGSHIP, str(EXAMPLES), "--output", str(output), "--quiet"])

    rows = list(csv.DictReader(output.open()))
    files = sorted(EXAMPLES.glob("*.png"))
    assert [row["file"] for row in rows] == [str(f) for f in files]
    expected = flagship.predict([str(f) for f in files])
    names = flagship.class_names
    got = np.array([[float(row[name]) for name in names] for row in rows])
    np.testing.assert_allclose(got, expected, atol=5e-5)  # rounded to 4 decimals
    assert [row["label"] for row in rows] == [names[i] for i in expected.argmax(1)]
    # The file names say the true class: the flagship gets all ten shipped examples right.
    assert all(row["file"].endswith(f"_{row['label']}.png") for row in rows)
    assert {row["out_of_distribution"] for row in rows} <= {"False", "True"}


def test_a_bad_picture_gets_its_error_and_the_rest_go_on(tmp_path, capsys):
    folder = tmp_path / "pictures"
    folder.mkdir()
    shutil.copy(EXAMPLES / "test0001_ship.png", folder / "a_ship.png")
    (folder / "b_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    shutil.copy(EXAMPLES / "outliers" / "fashion_mnist_test0001_pullover.png", folder / "c.png")
    predict_main([FLAGSHIP, str(folder), "--quiet"])  # CSV on stdout

    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert [row["label"] for row in rows][0] == "ship" and rows[0]["error"] == ""
    assert rows[1]["label"] == "" and "b_broken.png" in rows[1]["error"]
    assert rows[2]["out_of_distribution"] == "True"  # a pullover is none of the ten classes


def test_a_video_gives_one_json_row_per_sampled_frame(tmp_path):
    from PIL import Image

    scenes = [
        np.asarray(Image.open(EXAMPLES / n)) for n in ["test0000_cat.png", "test0001_ship.png"]
    ]
    clip = write_video(tmp_path / "clip.webm", slideshow(scenes, frames_each=6), fps=6)
    output = tmp_path / "clip.json"
    predict_main([FLAGSHIP, str(clip), "--every", "3", "--output", str(output)])

    rows = json.loads(output.read_text())
    assert [(row["frame"], row["time"], row["label"]) for row in rows] == [
        (0, 0.0, "cat"), (3, 0.5, "cat"), (6, 1.0, "ship"), (9, 1.5, "ship"),
    ]  # fmt: skip


def test_errors_are_one_line(tmp_path, capsys):
    for argv, message in [
        ([FLAGSHIP, str(tmp_path / "missing")], "no such file or folder"),
        ([FLAGSHIP, str(tmp_path), "--output", "x.txt"], "expected a .csv or .json file"),
        ([FLAGSHIP, str(tmp_path)], "no pictures in"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            predict_main(argv)
        assert str(exit_info.value).startswith("cifar-predict: error: ") and message in str(
            exit_info.value
        )


def test_a_folder_of_undecodable_pictures_gives_a_row_each(tmp_path, capsys):
    folder = tmp_path / "broken"
    folder.mkdir()
    for name in ("a.png", "b.jpg"):
        (folder / name).write_bytes(b"not a picture")
    predict_main([FLAGSHIP, str(folder), "--quiet"])
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert [row["file"].rsplit("/", 1)[1] for row in rows] == ["a.png", "b.jpg"]
    assert all(row["error"] and not row.get("label") for row in rows)
