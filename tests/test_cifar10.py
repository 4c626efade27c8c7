"""cifar_cnn.data.cifar10: finding and reading CIFAR-10, splits, the shipped slice."""

import io
import pickle
import tarfile

import numpy as np
import pytest

from cifar_cnn.data.cifar10 import (
    CLASS_NAMES,
    SLICE_PATH,
    DataError,
    kfold_indices,
    load_cifar10,
    split_validation,
    validation_mask,
)


def write_batches(folder, x_train, y_train, x_test, y_test):
    """Write images in the python-version CIFAR-10 layout (five train batches and a test batch)."""
    folder.mkdir(parents=True)

    def dump(name, x, y):
        data = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
        batch = {b"data": data, b"labels": [int(v) for v in y], b"batch_label": name.encode()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))

    for i, (xs, ys) in enumerate(
        zip(np.array_split(x_train, 5), np.array_split(y_train, 5), strict=True)
    ):
        dump(f"data_batch_{i + 1}", xs, ys)
    dump("test_batch", x_test, y_test)
    (folder / "batches.meta").write_bytes(
        pickle.dumps({b"label_names": [n.encode() for n in CLASS_NAMES]})
    )
    return folder


def test_the_slice_ships_real_balanced_images(slice_data):
    assert SLICE_PATH.is_file()
    assert slice_data.x_train.shape == (1000, 32, 32, 3) and slice_data.x_train.dtype == np.uint8
    assert slice_data.x_test.shape == (500, 32, 32, 3)
    assert np.bincount(slice_data.y_train).tolist() == [100] * 10
    assert np.bincount(slice_data.y_test).tolist() == [50] * 10
    assert slice_data.x_train.std() > 40  # real photos, not blank arrays


def test_loads_an_extracted_directory_and_a_tar_archive(slice_data, tmp_path):
    batches = write_batches(
        tmp_path / "cifar-10-batches-py",
        slice_data.x_train,
        slice_data.y_train,
        slice_data.x_test,
        slice_data.y_test,
    )
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(batches, arcname="cifar-10-batches-py")

    for source in (batches, tmp_path, archive):  # the directory, its parent, the archive
        data = load_cifar10(source)
        np.testing.assert_array_equal(data.x_train, slice_data.x_train)
        np.testing.assert_array_equal(data.y_test, slice_data.y_test)


def test_full_archive_matches_the_published_facts(shared_archive):
    data = load_cifar10(shared_archive)
    assert data.x_train.shape == (50000, 32, 32, 3) and data.x_test.shape == (10000, 32, 32, 3)
    assert data.y_train[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert data.y_test[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    means = data.x_train.reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(means, [125.307, 122.950, 113.865], atol=0.01)


def test_path_comes_from_the_environment(slice_data, monkeypatch):
    monkeypatch.setenv("CIFAR10_PATH", str(SLICE_PATH))
    assert load_cifar10().source == str(SLICE_PATH)


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "no such file"),
        (b"", "not a readable tar archive"),
        (b"this is not a tar archive at all", "not a readable tar archive"),
    ],
)
def test_missing_or_corrupt_archive_gives_one_clear_line(tmp_path, content, expected):
    path = tmp_path / "cifar-10-python.tar.gz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_cifar10(path)
    message = str(info.value)
    assert str(path) in message and expected in message
    assert "cifar-10-batches-py" in message  # says what was expected
    assert "\n" not in message


def test_archive_without_the_batches_names_what_is_missing(tmp_path):
    archive = tmp_path / "other.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("readme.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    with pytest.raises(DataError, match="has no cifar-10-batches-py/data_batch_1"):
        load_cifar10(archive)


def test_a_pickle_that_would_run_code_is_refused(tmp_path, slice_data):
    folder = write_batches(
        tmp_path / "cifar-10-batches-py",
        slice_data.x_train[:50],
        slice_data.y_train[:50],
        slice_data.x_test[:10],
        slice_data.y_test[:10],
    )

    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Exploit()}))
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        load_cifar10(folder)


def test_cli_reports_bad_data_path_in_one_line_without_traceback(tmp_path):
    from training.cli import train_main

    missing = tmp_path / "nowhere.tar.gz"
    # SystemExit with a message: Python prints the message alone, no traceback, and exits with 1.
    with pytest.raises(SystemExit) as exit_:
        train_main(["--model", "seed_cnn", "--data", str(missing), "--run-dir", str(tmp_path)])
    message = exit_.value.code
    assert isinstance(message, str) and "\n" not in message
    assert message.startswith("cifar-train: error:") and str(missing) in message


def test_validation_split_is_stratified_seeded_and_disjoint(slice_data):
    x, y = slice_data.x_train, slice_data.y_train
    x_tr, y_tr, x_val, y_val = split_validation(x, y, fraction=0.1, seed=3)
    assert len(x_val) == 100 and len(x_tr) == 900
    assert np.bincount(y_val).tolist() == [10] * 10
    again = split_validation(x, y, fraction=0.1, seed=3)
    np.testing.assert_array_equal(again[2], x_val)
    rows = {r.tobytes() for r in x_tr.reshape(len(x_tr), -1)}
    assert not any(r.tobytes() in rows for r in x_val.reshape(len(x_val), -1))


def test_a_smaller_validation_split_lies_inside_a_larger_one_with_the_same_seed(slice_data):
    small = validation_mask(slice_data.y_train, fraction=0.04, seed=0)
    large = validation_mask(slice_data.y_train, fraction=0.1, seed=0)
    assert small.sum() == 40 and large.sum() == 100 and not (small & ~large).any()


def test_kfold_partitions_the_training_set(slice_data):
    folds = kfold_indices(slice_data.y_train, folds=5)
    val = np.concatenate([v for _, v in folds])
    assert sorted(val.tolist()) == list(range(1000))
    for train_idx, val_idx in folds:
        assert len(np.intersect1d(train_idx, val_idx)) == 0
        assert np.bincount(slice_data.y_train[val_idx]).tolist() == [20] * 10
