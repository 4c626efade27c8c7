"""webapp.outputs: output files written atomically, in a folder that prunes itself."""

import os
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cifar_cnn.data.cifar10 import REPO_ROOT
from webapp import outputs

SHIP = REPO_ROOT / "examples" / "test0001_ship.png"
FLAGSHIP = REPO_ROOT / "models" / "resnet_fast"


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
