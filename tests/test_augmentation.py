"""cifar_cnn.augmentation: the named policies."""

import keras
import numpy as np
import pytest

from cifar_cnn.augmentation import build_augmentation


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


def test_flip_translate_only_mirrors_and_shifts_whole_pixels(slice_data):
    images = slice_data.x_train[:16]
    augment = build_augmentation("flip_translate", seed=1)
    out = keras.ops.convert_to_numpy(augment(images.astype("float32"), training=True))
    assert out.shape == images.shape
    for original, augmented in zip(images, out.astype(np.uint8), strict=True):
        assert any(np.array_equal(augmented, view) for view in shifted_views(original))
    assert not np.array_equal(out, images)  # something moved


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
