"""Pictures that are none of the ten CIFAR-10 classes, from offline sources of real variety, for
choosing and measuring out-of-distribution detectors (`cifar_cnn.trust.ood`).

>>> from cifar_cnn.data.outliers import OUTLIER_SOURCES, load_outliers
>>> [s.name for s in OUTLIER_SOURCES.values() if s.held_out]
['plasma_wallpapers', 'skimage_photos', 'paper_textures', 'faces']
>>> load_outliers("synthetic").shape
(1000, 32, 32, 3)

Each source is either used to choose a detector and its settings ("choice") or held out of every
choice and reported as the test of what was chosen. Photographs and artwork come from Debian
packages (install them with `apt-get install` the packages named below) and from scikit-image's
bundled sample pictures (`pip install scikit-image`); a source whose files are missing raises
FileNotFoundError naming what to install. Every picture is seen as a model sees an upload: whole
(centre square, resized to 32x32), and as a few seeded crops of 10-50% of its shorter side,
since visitors upload close-ups as often as wide views.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from cifar_cnn.data.fashion_mnist import load_fashion_mnist
from cifar_cnn.data.images import resize_to_model, to_pil

#: Seeded crops taken from each photograph besides its whole view.
CROPS_PER_PHOTO = 7
#: Pictures below this shorter side (icons, logos' small renditions) are not used.
MIN_SIDE = 256
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
#: scikit-image samples that show a CIFAR-10 class (chelsea is a cat, horse a horse's outline),
#: or are not photographs of a scene (binary masks, chessboards, stereo disparity).
SKIMAGE_EXCLUDED = {"chelsea", "horse", "chessboard_GRAY", "chessboard_RGB", "phantom"}


@dataclass(frozen=True)
class OutlierSource:
    name: str
    description: str
    held_out: bool  # True: never used to choose anything, reported as the test
    load: Callable[[int], np.ndarray]  # seed -> uint8 (N, 32, 32, 3)


def load_outliers(name: str, seed: int = 0) -> np.ndarray:
    """One source's pictures as uint8 (N, 32, 32, 3), the same for the same seed."""
    if name not in OUTLIER_SOURCES:
        choices = ", ".join(OUTLIER_SOURCES)
        raise ValueError(f"unknown outlier source {name!r}; choose from {choices}")
    return OUTLIER_SOURCES[name].load(seed)


# ----------------------------------------------------------------------------- photographs


def photo_views(paths: list[Path], seed: int = 0, crops: int = CROPS_PER_PHOTO) -> np.ndarray:
    """Each picture whole and as `crops` seeded square crops (10-50% of its shorter side), every
    view resized to 32x32 by the models' own rule (`resize_to_model`)."""
    if not paths:
        raise FileNotFoundError("no pictures to take views of")
    rng = np.random.default_rng(seed)
    views = []
    for path in paths:
        image = to_pil(path)
        views.append(resize_to_model(image))
        width, height = image.size
        for _ in range(crops):
            side = int(min(width, height) * rng.uniform(0.1, 0.5))
            left, top = rng.integers(0, width - side + 1), rng.integers(0, height - side + 1)
            views.append(resize_to_model(image.crop((left, top, left + side, top + side))))
    return np.stack(views)


def one_per_picture(paths: list[Path]) -> list[Path]:
    """The largest rendition of each picture (packages ship one picture at several sizes:
    `Name_1920x1080.png`, `Name/contents/images/5120x2880.png`), skipping small ones."""
    best: dict[str, tuple[int, Path]] = {}
    for path in sorted(paths):
        if path.suffix.lower() not in PHOTO_SUFFIXES or path.name.startswith("screenshot"):
            continue
        with Image.open(path) as image:
            width, height = image.size
        if min(width, height) < MIN_SIDE:
            continue
        if path.parent.name == "images" and path.parent.parent.name == "contents":
            key = str(path.parent.parent.parent)  # a KDE wallpaper package: one picture
        else:
            stem = re.sub(r"[_-]?\d+x\d+|[_-]?(portrait|landscape)$", "", path.stem, flags=re.I)
            key = str(path.parent / stem.lower())
        if key not in best or width * height > best[key][0]:
            best[key] = (width * height, path)
    return [path for _, path in sorted(best.values(), key=lambda item: str(item[1]))]


def debian_pictures(folders: list[str], packages: str) -> list[Path]:
    paths = [p for folder in folders if Path(folder).is_dir() for p in Path(folder).rglob("*")]
    pictures = one_per_picture([p for p in paths if p.is_file()])
    if not pictures:
        raise FileNotFoundError(f"no pictures in {', '.join(folders)}: apt-get install {packages}")
    return pictures


def skimage_pictures() -> list[Path]:
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("scikit-image's sample pictures: pip install scikit-image")
    folder = Path(spec.origin).parent / "data"
    pictures = [
        p
        for p in sorted(folder.iterdir())
        if p.suffix in (".png", ".jpg") and p.stem not in SKIMAGE_EXCLUDED
    ]
    if not pictures:
        raise FileNotFoundError(f"no sample pictures in scikit-image's {folder.name} folder")
    return pictures


def skimage_faces(seed: int = 0) -> np.ndarray:
    """The 200 Labeled Faces in the Wild crops scikit-image bundles (25x25 gray), as RGB."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("scikit-image's sample faces: pip install scikit-image")
    faces = np.load(Path(spec.origin).parent / "data" / "lfw_subset.npy", allow_pickle=False)
    gray = (np.clip(faces[:100], 0, 1) * 255).astype(np.uint8)  # the first 100 are faces
    return np.stack([resize_to_model(Image.fromarray(g).convert("RGB")) for g in gray])


# ----------------------------------------------------------------------------- synthetic


def synthetic_images(seed: int = 0, count: int = 1000) -> np.ndarray:
    """Noise, flat colours, gradients, rendered text and textures (stripes, checks, blobs), a
    fifth each, drawn at 128x128 and resized like uploads."""
    rng = np.random.default_rng(seed)
    makers = [_noise, _flat, _gradient, _text, _texture]
    images = [makers[i % len(makers)](rng) for i in range(count)]
    return np.stack([resize_to_model(image) for image in images])


def _colour(rng) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def _noise(rng) -> Image.Image:
    pixels = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    if rng.random() < 0.5:
        pixels = np.repeat(pixels[..., :1], 3, axis=-1)
    image = Image.fromarray(pixels)
    return image.filter(ImageFilter.GaussianBlur(float(rng.choice([0, 1, 3, 6]))))


def _flat(rng) -> Image.Image:
    return Image.new("RGB", (128, 128), _colour(rng))


def _gradient(rng) -> Image.Image:
    y, x = np.mgrid[0:1:128j, 0:1:128j]
    angle = rng.uniform(0, 2 * np.pi)
    t = x * np.cos(angle) + y * np.sin(angle)
    if rng.random() < 0.5:  # radial
        t = np.hypot(x - rng.random(), y - rng.random())
    t = (t - t.min()) / (np.ptp(t) + 1e-9)
    a, b = np.array(_colour(rng)), np.array(_colour(rng))
    return Image.fromarray((a + (b - a) * t[..., None]).astype(np.uint8))


def _text(rng) -> Image.Image:
    image = Image.new("RGB", (128, 128), _colour(rng))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=int(rng.integers(14, 48)))
    words = ["CIFAR", "hello", "42", "STOP", "Menu", "sale", "abc", "2026", "ok?", "λx"]
    for line in range(int(rng.integers(1, 4))):
        word = str(rng.choice(words))
        draw.text((int(rng.integers(0, 60)), 10 + 38 * line), word, fill=_colour(rng), font=font)
    return image


def _texture(rng) -> Image.Image:
    y, x = np.mgrid[0:128, 0:128].astype(float)
    kind = rng.integers(0, 3)
    if kind == 0:  # stripes
        angle, period = rng.uniform(0, np.pi), rng.uniform(4, 24)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period)
    elif kind == 1:  # checks
        period = int(rng.integers(4, 32))
        t = ((x // period + y // period) % 2).astype(float)
    else:  # smooth blobs
        t = np.asarray(
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).resize(
                (128, 128), Image.Resampling.BICUBIC
            ),
            float,
        )
        t = (t - t.min()) / (np.ptp(t) + 1e-9)
    a, b = np.array(_colour(rng)), np.array(_colour(rng))
    return Image.fromarray((a + (b - a) * t[..., None]).astype(np.uint8))


# ----------------------------------------------------------------------------- the sources

_CHOICE_WALLPAPERS = ["/usr/share/backgrounds/gnome", "/usr/share/backgrounds/mate",
                      "/usr/share/desktop-base"]  # fmt: skip
_HELD_OUT_WALLPAPERS = ["/usr/share/wallpapers"]
_PAPER = ["/usr/share/mypaint/backgrounds"]

OUTLIER_SOURCES: dict[str, OutlierSource] = {
    source.name: source
    for source in [
        OutlierSource(
            "fashion_mnist",
            "Fashion-MNIST training images, gray clothing on black (Debian dataset-fashion-mnist)",
            False,
            lambda seed: load_fashion_mnist("train", limit=5000),
        ),
        OutlierSource(
            "synthetic",
            "noise, flat colours, gradients, rendered text, stripes, checks and blobs",
            False,
            synthetic_images,
        ),
        OutlierSource(
            "desktop_wallpapers",
            "GNOME, MATE and Debian desktop wallpapers and artwork, whole and cropped "
            "(Debian gnome-backgrounds, mate-backgrounds, desktop-base)",
            False,
            lambda seed: photo_views(
                debian_pictures(
                    _CHOICE_WALLPAPERS, "gnome-backgrounds mate-backgrounds desktop-base"
                ),
                seed,
            ),
        ),
        OutlierSource(
            "plasma_wallpapers",
            "KDE Plasma wallpapers, mostly landscape photographs, whole and cropped "
            "(Debian plasma-workspace-wallpapers)",
            True,
            lambda seed: photo_views(
                debian_pictures(_HELD_OUT_WALLPAPERS, "plasma-workspace-wallpapers"), seed
            ),
        ),
        OutlierSource(
            "skimage_photos",
            "scikit-image's sample pictures (astronaut, coffee, rocket, cells, moon, coins, "
            "page of text...), whole and cropped",
            True,
            lambda seed: photo_views(skimage_pictures(), seed),
        ),
        OutlierSource(
            "paper_textures",
            "scanned paper and canvas textures (Debian mypaint-data-extras), whole and cropped",
            True,
            lambda seed: photo_views(debian_pictures(_PAPER, "mypaint-data-extras"), seed),
        ),
        OutlierSource(
            "faces",
            "100 faces from Labeled Faces in the Wild (scikit-image's subset): photographs of "
            "people, close to CIFAR-10's look but no class of it",
            True,
            skimage_faces,
        ),
    ]
}
