"""cifar_cnn.data.augmentation: the named policies."""

import keras
import numpy as np
import pytest

from cifar_cnn.data.augmentation import build_augmentation


def shifted_views(image, pad=2):
    """Every horizontal flip and integer shift of up to `pad` pixels, edges mirrored."""
    views = []
    for view in (image, image[:, ::-1]):
        for mode in ("symmetric", "reflect"):
            padded = np.pad(view, ((pad, pad), (pad, pad), (0, 0)), mode=mode)
            for dy in range(2 * pad + 1):
                for dx in range(2 * pad + 1):
                    views.append(padded[dy : dy + 32, dx : dx + 32])
    return views


@pytest.mark.parametrize("policy", ["flip_translate", "flip_crop"])
def test_translating_policies_only_mirror_and_shift_whole_pixels(slice_data, policy):
    images = slice_data.x_train[:16]
    augment = build_augmentation(policy, seed=1)
    out = keras.ops.convert_to_numpy(augment(images.astype("float32"), training=True))
    assert out.shape == images.shape
    for original, augmented in zip(images, out.astype(np.uint8), strict=True):
        assert any(np.array_equal(augmented, view) for view in shifted_views(original))
    assert not np.array_equal(out, images)  # something moved


def vertical_shift_frequencies(policy: str, n: int = 4000) -> dict[int, float]:
    """How often each whole-pixel vertical shift occurs, read off an image of numbered rows."""
    rows = np.broadcast_to((np.arange(32) * 8)[:, None, None], (32, 32, 3)).astype("float32")
    out = build_augmentation(policy, seed=0)(np.repeat(rows[None], n, axis=0), training=True)
    shifts = np.round(keras.ops.convert_to_numpy(out)[:, 16, 16, 0] / 8).astype(int) - 16
    return {int(s): float(np.mean(shifts == s)) for s in np.unique(shifts)}


def test_flip_crop_draws_each_shift_from_minus_2_to_2_equally_often():
    frequencies = vertical_shift_frequencies("flip_crop")
    assert sorted(frequencies) == [-2, -1, 0, 1, 2]
    assert all(abs(f - 0.2) < 0.03 for f in frequencies.values()), frequencies


def test_flip_translate_shifts_by_2_pixels_half_as_often():
    frequencies = vertical_shift_frequencies("flip_translate")
    assert abs(frequencies[2] - 0.125) < 0.03 and abs(frequencies[0] - 0.25) < 0.03, frequencies


def test_original_policy_changes_images_within_range(slice_data):
    images = slice_data.x_train[:16].astype("float32")
    out = keras.ops.convert_to_numpy(build_augmentation("original", seed=0)(images, training=True))
    assert out.shape == images.shape
    assert 0 <= out.min() and out.max() <= 255
    assert np.abs(out - images).mean() > 5


def test_augmentation_is_off_at_inference(slice_data):
    images = slice_data.x_train[:4].astype("float32")
    out = build_augmentation("original")(images, training=False)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), images)


def test_none_and_unknown_policies():
    assert build_augmentation("none") is None
    with pytest.raises(ValueError, match="unknown augmentation 'mixup'"):
        build_augmentation("mixup")
