"""cifar_cnn.data.images: any image a user has becomes a uint8 (N, 32, 32, 3) batch, or a
clear ValueError."""

import io

import numpy as np
import pytest
from PIL import Image

from cifar_cnn.data import images as preprocessing
from cifar_cnn.data.images import to_model_input


@pytest.fixture
def cat(slice_data):
    return slice_data.x_test[0]


def png_bytes(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_32px_rgb_uint8_image_passes_through_unchanged(cat, tmp_path):
    path = tmp_path / "cat.png"
    path.write_bytes(png_bytes(cat))
    for form in (cat, Image.fromarray(cat), str(path), path, png_bytes(cat)):
        batch, single = to_model_input(form)
        assert single and batch.shape == (1, 32, 32, 3) and batch.dtype == np.uint8
        np.testing.assert_array_equal(batch[0], cat)


def test_batches_keep_their_length(slice_data):
    batch, single = to_model_input(slice_data.x_test[:5])
    assert not single and batch.shape == (5, 32, 32, 3)
    batch, single = to_model_input([slice_data.x_test[0], Image.fromarray(slice_data.x_test[1])])
    assert not single and batch.shape == (2, 32, 32, 3)


def test_float_gray_and_rgba_inputs_are_converted(cat):
    np.testing.assert_array_equal(to_model_input(cat / 255.0)[0][0], cat)
    np.testing.assert_array_equal(to_model_input(cat.astype(np.float32))[0][0], cat)
    gray = cat[..., 0]
    np.testing.assert_array_equal(to_model_input(gray)[0][0], np.stack([gray] * 3, axis=-1))
    opaque = np.concatenate([cat, np.full((32, 32, 1), 255, np.uint8)], axis=-1)
    np.testing.assert_array_equal(to_model_input(opaque)[0][0], cat)
    transparent = opaque.copy()
    transparent[..., 3] = 0
    assert (to_model_input(transparent)[0][0] == 255).all()  # composited onto white


def test_large_images_are_centre_cropped_and_area_resized():
    wide = np.zeros((64, 128, 3), np.uint8)
    wide[:, 32:96] = 200  # the centre square is uniform; the sides, cropped away, are black
    np.testing.assert_array_equal(to_model_input(wide)[0][0], np.full((32, 32, 3), 200))
    checker = np.indices((64, 64)).sum(axis=0) % 2 * 255  # area averaging gives flat grey
    result = to_model_input(checker.astype(np.uint8))[0][0]
    assert np.abs(result.astype(int) - 127).max() <= 1


def test_exif_orientation_is_applied():
    tall = np.zeros((64, 32, 3), np.uint8)
    tall[:32] = 255  # white top half
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(tall).save(buffer, format="JPEG", exif=exif, quality=95)
    shown = preprocessing.to_pil(buffer.getvalue())
    assert shown.size == (64, 32)  # displayed landscape
    array = np.asarray(shown)
    assert array[:, 48:].mean() > 200 and array[:, :16].mean() < 50  # white half now on the right


def test_small_images_are_enlarged():
    batch, _ = to_model_input(np.full((8, 8, 3), 90, np.uint8))
    assert batch.shape == (1, 32, 32, 3) and (batch == 90).all()


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((0, 32, 3), np.uint8), "empty image"),
        (np.zeros((0, 32, 32, 3), np.uint8), "empty batch"),
        ([], "empty batch"),
        (np.zeros(32, np.uint8), "wrong image shape"),
        (np.zeros((2, 2, 32, 32, 3), np.uint8), "wrong image shape"),
        (np.zeros((32, 32, 5), np.uint8), "wrong image shape"),
        (np.full((32, 32, 3), np.nan), "NaN or infinite"),
        (np.full((32, 32, 3), 300.0), "float pixel values must lie in 0..1 or 0..255"),
        (np.full((32, 32, 3), -1, np.int16), "integer pixel values must lie in 0..255"),
        (np.zeros((32, 32, 3), bool), "unsupported pixel type bool"),
        (b"", "empty"),
        (12345, "unsupported image type int"),
    ],
)
def test_bad_arrays_and_objects_raise_a_specific_value_error(bad, message):
    with pytest.raises(ValueError, match=message):
        to_model_input(bad)


def test_bad_files_raise_a_value_error_naming_the_file(tmp_path, cat):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("this is a text file, not a picture\n")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(
        png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))[:400]
    )
    cases = [
        (empty, "empty file \\(0 bytes\\)"),
        (text, "not an image file"),
        (truncated, "truncated or corrupt image"),
        (tmp_path / "missing.jpg", "no such file"),
        (tmp_path, "not a file"),
    ]
    for path, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            to_model_input(str(path))
        assert str(path) in str(info.value)


def test_a_bad_image_in_a_batch_is_named_by_index(cat):
    with pytest.raises(ValueError, match="image 1: image contains NaN"):
        to_model_input([cat, np.full((32, 32, 3), np.nan)])


def photo_jpeg(cat, size=(2048, 1536)) -> bytes:
    """The cat enlarged to photo size with sensor-like noise, saved as a JPEG."""
    enlarged = np.asarray(Image.fromarray(cat).resize(size, Image.Resampling.BICUBIC), np.int16)
    noise = np.random.default_rng(0).integers(-20, 21, enlarged.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(enlarged + noise, 0, 255).astype(np.uint8)).save(
        buffer, format="JPEG", quality=90
    )
    return buffer.getvalue()


def test_large_jpegs_decode_at_a_reduced_scale_and_give_the_same_model_view(cat):
    data = photo_jpeg(cat)
    reduced = preprocessing.to_pil(data)
    assert reduced.size == (512, 384)  # 1/4: 1/8 would leave the shorter side under 256 px
    with Image.open(io.BytesIO(data)) as full:
        full_view = preprocessing.resize_to_model(full.convert("RGB"))
    difference = np.abs(to_model_input(data)[0][0].astype(int) - full_view.astype(int))
    assert difference.mean() < 1.0 and difference.max() <= 8  # rounding, not a different image


def test_jpegs_near_display_size_and_other_formats_decode_at_full_size(cat):
    assert preprocessing.to_pil(photo_jpeg(cat, (500, 300))).size == (500, 300)
    big_png = np.asarray(Image.fromarray(cat).resize((1024, 768)))
    assert preprocessing.to_pil(png_bytes(big_png)).size == (1024, 768)


def test_images_over_the_pixel_limit_are_refused_before_decoding(monkeypatch, cat):
    monkeypatch.setattr(preprocessing, "MAX_PIXELS", 32 * 32 - 1)
    with pytest.raises(ValueError, match="image too large \\(32x32 pixels"):
        to_model_input(png_bytes(cat))


def test_formats_that_run_external_programs_are_not_decoded():
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 32\nshowpage\n"
    with pytest.raises(ValueError, match="not an image file"):
        to_model_input(eps)
