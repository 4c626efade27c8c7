"""Turn whatever a user has (file, bytes, PIL image, array, or a batch of them) into model input.

>>> from cifar_cnn.data.images import to_model_input
>>> batch, single = to_model_input("examples/test0000_cat.png")
>>> batch.shape, batch.dtype, single
((1, 32, 32, 3), dtype('uint8'), True)

One resizing rule for every caller: the image is centre-cropped to a square (keeping its aspect
ratio), then shrunk with area averaging (PIL's BOX filter, i.e. antialiased) or, if smaller than
32 px, enlarged with bicubic interpolation. A 32x32 RGB uint8 image passes through unchanged.
Transparent pixels are composited onto white; grayscale is repeated into RGB; EXIF orientation
is applied; an animated image contributes its first frame. A large JPEG is decoded at a reduced
scale (1/2, 1/4 or 1/8, straight from its DCT coefficients) that keeps its shorter side at least
`DECODE_MIN_SIDE` pixels: a 12-megapixel photo decodes in about half the time and a sixtieth of
the memory (bench/image_decode.py), and the 32x32 view still averages at least 8x8 decoded pixels
per model pixel.

Anything unusable raises `ValueError` with a message naming the problem.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cifar_cnn.data.cifar10 import IMAGE_SHAPE

SIZE = IMAGE_SHAPE[0]
#: Larger images are refused rather than decoded (a decompression bomb could exhaust memory).
MAX_PIXELS = 50_000_000
#: JPEGs decode at the strongest reduction (up to 1/8) that keeps their shorter side this long:
#: 8x the model's 32 px, and the app's 256 px display.
DECODE_MIN_SIDE = 256
# The raster formats people upload (the JPEG decoder also opens phones' multi-picture MPO files).
# Pillow knows others, some of which run external programs (EPS via Ghostscript); those are
# refused as non-images.
DECODED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")

ImageLike = str | os.PathLike | bytes | Image.Image | np.ndarray


def to_model_input(images: ImageLike | Sequence[ImageLike]) -> tuple[np.ndarray, bool]:
    """Return `(batch, single)`: a uint8 array (N, 32, 32, 3), and whether one image was given."""
    if isinstance(images, np.ndarray):
        array = images
        if array.ndim == 4:
            if array.shape[0] == 0:
                raise ValueError("empty batch: the array has 0 images")
            if array.shape[1:] == IMAGE_SHAPE and array.dtype == np.uint8:
                return array, False
            return np.stack([_prepare_one(a, i) for i, a in enumerate(array)]), False
        return _prepare_one(array)[None], True
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError("empty batch: no images given")
        return np.stack([_prepare_one(item, i) for i, item in enumerate(images)]), False
    return _prepare_one(images)[None], True


def mirrored(images: np.ndarray) -> np.ndarray:
    """Each image of a batch (N, H, W, C) flipped left to right: what flip TTA also looks at."""
    return images[:, :, ::-1]


def to_pil(image: ImageLike) -> Image.Image:
    """Decode/convert one image to an RGB PIL image (validated) at its own size, except that a
    large JPEG file decodes at a reduced scale (shorter side still >= `DECODE_MIN_SIDE`)."""
    if isinstance(image, Image.Image):
        return _to_rgb(image)
    if isinstance(image, (str, os.PathLike)):
        return _open_file(Path(image))
    if isinstance(image, (bytes, bytearray, memoryview)):
        return _decode(bytes(image), "image bytes")
    if isinstance(image, np.ndarray):
        return Image.fromarray(_array_to_uint8_rgb(image))
    raise ValueError(
        f"unsupported image type {type(image).__name__}: give a file path, bytes, a PIL image or "
        f"a numpy array"
    )


def centre_square(image: Image.Image) -> Image.Image:
    """The largest centred square of `image` (the part every model sees)."""
    width, height = image.size
    if width == height:
        return image
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))


def resize_to_model(image: Image.Image) -> np.ndarray:
    """Centre-crop to a square, then resize to 32x32 (area when shrinking, bicubic when growing)."""
    image = centre_square(image)
    side = image.size[0]
    if side != SIZE:
        resample = Image.Resampling.BOX if side > SIZE else Image.Resampling.BICUBIC
        image = image.resize((SIZE, SIZE), resample=resample)
    return np.asarray(image, dtype=np.uint8)


def _prepare_one(image: Any, index: int | None = None) -> np.ndarray:
    try:
        if isinstance(image, np.ndarray):
            rgb = _array_to_uint8_rgb(image)
            if rgb.shape == IMAGE_SHAPE:
                return rgb
            return resize_to_model(Image.fromarray(rgb))
        return resize_to_model(to_pil(image))
    except ValueError as error:
        if index is None:
            raise
        raise ValueError(f"image {index}: {error}") from None


def _array_to_uint8_rgb(array: np.ndarray) -> np.ndarray:
    if array.size == 0:
        raise ValueError(f"empty image: array of shape {array.shape}")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(
            f"wrong image shape {array.shape}: expected (H, W) grayscale, (H, W, 1|3|4), or a "
            f"batch (N, H, W, C)"
        )
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"unsupported pixel type {array.dtype}: expected uint8 or float")
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError("image contains NaN or infinite values")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 255:
            raise ValueError(
                f"float pixel values must lie in 0..1 or 0..255, got {low:.3g}..{high:.3g}"
            )
        array = np.rint(array * 255.0 if high <= 1.0 else array)
    elif array.dtype != np.uint8:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ValueError(f"integer pixel values must lie in 0..255, got {low}..{high}")
    array = array.astype(np.uint8)
    if array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=-1)
    if array.shape[-1] == 4:
        return np.asarray(_to_rgb(Image.fromarray(array, mode="RGBA")))
    return np.ascontiguousarray(array)


def _open_file(path: Path) -> Image.Image:
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    if not path.is_file():
        raise ValueError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file (0 bytes), not an image")
    return _decode(path.read_bytes(), str(path))


def _decode(data: bytes, name: str) -> Image.Image:
    if not data:
        raise ValueError(f"{name}: empty (0 bytes), not an image")
    try:
        with Image.open(io.BytesIO(data), formats=DECODED_FORMATS) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ValueError(
                    f"{name}: image too large ({image.width}x{image.height} pixels; "
                    f"limit {MAX_PIXELS:,})"
                )
            image.draft(image.mode, (DECODE_MIN_SIDE, DECODE_MIN_SIDE))  # no-op unless JPEG
            image.load()
            # Phone photos store their orientation in EXIF; show the picture upright.
            return _to_rgb(ImageOps.exif_transpose(image))
    except UnidentifiedImageError:
        accepted = ", ".join(DECODED_FORMATS)
        raise ValueError(
            f"{name}: not an image file this app reads (accepted: {accepted}; SVG and PDF are not)"
        ) from None
    except Image.DecompressionBombError as error:
        raise ValueError(f"{name}: image too large ({error})") from None
    except (OSError, SyntaxError) as error:
        raise ValueError(f"{name}: truncated or corrupt image ({error})") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.width == 0 or image.height == 0:
        raise ValueError(f"empty image ({image.width}x{image.height} pixels)")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale: map 0..65535 onto 0..255.
        values = np.asarray(image, dtype=np.float64)
        values = values / 257.0 if values.max() > 255 else values
        return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")
