"""cifar_cnn.trust.corruptions: deterministic common corruptions at severities 0 (none) to 5."""

import numpy as np
import pytest

from cifar_cnn.trust.corruptions import (
    CORRUPTIONS,
    SEVERITIES,
    corrupt,
    corruption_benchmark,
    corruption_benchmarks,
)


@pytest.fixture(scope="module")
def images(slice_data):
    return slice_data.x_test[:50]


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_severity_zero_is_the_identity(images, name):
    np.testing.assert_array_equal(corrupt(images, name, 0), images)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_each_severity_moves_the_pixels_further(images, name):
    distances = [
        np.abs(corrupt(images, name, s).astype(float) - images).mean() for s in (0, *SEVERITIES)
    ]
    assert distances[0] == 0
    assert all(a < b for a, b in zip(distances, distances[1:], strict=False)), distances


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corruptions_are_deterministic_and_keep_shape_and_type(images, name):
    once, twice = corrupt(images, name, 3, seed=7), corrupt(images, name, 3, seed=7)
    np.testing.assert_array_equal(once, twice)
    assert once.shape == images.shape and once.dtype == np.uint8
    assert corrupt(images[0], name, 3, seed=7).shape == images[0].shape


def test_random_corruptions_depend_on_the_seed(images):
    assert not np.array_equal(
        corrupt(images, "gaussian_noise", 2, seed=0), corrupt(images, "gaussian_noise", 2, seed=1)
    )


def test_bad_arguments_are_named(images):
    with pytest.raises(ValueError, match="unknown corruption 'rain'; choose one of gaussian_noise"):
        corrupt(images, "rain", 1)
    with pytest.raises(ValueError, match="severity must be 0 to 5, got 6"):
        corrupt(images, "jpeg", 6)
    with pytest.raises(ValueError, match="severity must be an integer"):
        corrupt(images, "jpeg", 2.5)
    with pytest.raises(ValueError, match="expected uint8 RGB images"):
        corrupt(images.astype(np.float32), "jpeg", 1)


def test_benchmark_reports_clean_per_corruption_and_mean_accuracy(images, slice_data):
    labels = slice_data.y_test[:50]

    def oracle_fooled_by_noise(x):
        """Right while an image's pixels moved by under 25 levels on average, then wrong."""
        moved = np.abs(x.astype(float) - images).mean(axis=(1, 2, 3)) > 25
        predicted = np.where(moved, (labels + 1) % 10, labels)
        return np.eye(10)[predicted]

    report = corruption_benchmark(oracle_fooled_by_noise, images, labels, names=["contrast"])
    assert report["clean"] == 1.0 and report["n"] == 50
    by_severity = report["corruptions"]["contrast"]
    assert list(by_severity) == ["1", "2", "3", "4", "5"]
    assert by_severity["5"] < by_severity["1"] <= 1.0
    assert report["mean"] == pytest.approx(np.mean(list(by_severity.values())))


def test_several_models_are_measured_on_one_corrupted_set_each(images, slice_data):
    labels = slice_data.y_test[:50]
    calls = []

    def always_right(x):
        return np.eye(10)[labels]

    def predict_both(x):
        calls.append(x)
        return {"right": always_right(x), "airplane": np.eye(10)[np.zeros(len(x), int)]}

    reports = corruption_benchmarks(predict_both, images, labels, names=["jpeg", "haze"])
    assert len(calls) == 1 + 2 * 5  # clean, then each corruption and severity once
    assert reports["right"]["mean"] == 1.0
    assert reports["airplane"]["clean"] == pytest.approx(np.mean(labels == 0))
    single = corruption_benchmark(always_right, images, labels, names=["jpeg", "haze"])
    assert reports["right"] == single
