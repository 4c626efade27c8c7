"""Common image corruptions at five severities, in the spirit of CIFAR-10-C.

Hendrycks and Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR 2019 (https://arxiv.org/abs/1903.12261). Their CIFAR-10-C files are not
redistributed here: the corruptions are generated deterministically with numpy and OpenCV, with
severity parameters taken from their CIFAR code where the corruption is the same kind.

>>> from cifar_cnn.trust.corruptions import corrupt, CORRUPTIONS
>>> blurred = corrupt(images, "gaussian_blur", severity=3)   # uint8 (N, H, W, 3) in and out
>>> list(CORRUPTIONS)
['gaussian_noise', 'shot_noise', 'gaussian_blur', 'motion_blur', 'jpeg', 'brightness', ...]

Severity 0 returns the images unchanged; 1 to 5 are increasingly strong. The same (images,
name, severity, seed) always gives the same result.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

SEVERITIES = (1, 2, 3, 4, 5)

# One parameter per severity 1..5.
_GAUSSIAN_NOISE_STD = (0.04, 0.06, 0.08, 0.09, 0.10)  # of the 0..1 range (CIFAR-10-C)
_SHOT_NOISE_PHOTONS = (500, 250, 100, 75, 50)  # photons at full brightness (CIFAR-10-C)
_GAUSSIAN_BLUR_SIGMA = (0.4, 0.6, 0.7, 0.8, 1.0)  # pixels (CIFAR-10-C)
_MOTION_BLUR_LENGTH = (3, 5, 7, 9, 11)  # pixels, at a random angle per image
_JPEG_QUALITY = (80, 65, 58, 50, 40)  # (CIFAR-10-C)
_BRIGHTNESS_SHIFT = (0.05, 0.1, 0.15, 0.2, 0.3)  # added to HSV value (CIFAR-10-C)
_CONTRAST_FACTOR = (0.75, 0.5, 0.4, 0.3, 0.15)  # towards the image mean (CIFAR-10-C)
_PIXELATE_SCALE = (0.95, 0.9, 0.85, 0.75, 0.65)  # (CIFAR-10-C)
_HAZE_OPACITY = (0.2, 0.3, 0.4, 0.5, 0.6)  # of a bright, smooth, random haze


def _as_float(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 255.0


def _as_uint8(images: np.ndarray) -> np.ndarray:
    return np.clip(np.round(images * 255.0), 0, 255).astype(np.uint8)


def gaussian_noise(images: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    x = _as_float(images)
    return _as_uint8(x + rng.normal(0.0, _GAUSSIAN_NOISE_STD[level - 1], x.shape))


def shot_noise(images: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    photons = _SHOT_NOISE_PHOTONS[level - 1]
    return _as_uint8(rng.poisson(_as_float(images) * photons) / photons)


def gaussian_blur(images: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    sigma = _GAUSSIAN_BLUR_SIGMA[level - 1]
    return np.stack([cv2.GaussianBlur(image, (0, 0), sigma) for image in images])


def motion_blur(images: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    length = _MOTION_BLUR_LENGTH[level - 1]
    out = []
    for image, angle in zip(images, rng.uniform(-45, 45, len(images)), strict=True):
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0  # a horizontal streak, then turned
        turn = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle, 1.0)
        kernel = cv2.warpAffine(kernel, turn, (length, length))
        out.append(cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT))
    return np.stack(out)


def jpeg(images: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    quality = [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY[level - 1]]
    out = []
    for image in images:
        ok, encoded = cv2.imencode(".jpg", image[..., ::-1], quality)  # OpenCV is BGR
        out.append(cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1])
    return np.stack(out)


def brightness(images: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    hsv = np.stack([cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL) for image in images])
    hsv = hsv.astype(np.float32)
    hsv[..., 2] = np.clip(hsv[..., 2] + 255.0 * _BRIGHTNESS_SHIFT[level - 1], 0, 255)
    hsv = np.round(hsv).astype(np.uint8)
    return np.stack([cv2.cvtColor(image, cv2.COLOR_HSV2RGB_FULL) for image in hsv])


def contrast(images: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    x = _as_float(images)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return _as_uint8((x - mean) * _CONTRAST_FACTOR[level - 1] + mean)


def pixelate(images: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    height, width = images.shape[1:3]
    scale = _PIXELATE_SCALE[level - 1]
    small = (max(1, int(width * scale)), max(1, int(height * scale)))
    # Box filter both ways, like CIFAR-10-C's PIL BOX resizes (nearest-neighbour upsampling at
    # these non-integer scales shifts pixels unevenly, and is not monotone in severity).
    return np.stack(
        [
            cv2.resize(
                cv2.resize(image, small, interpolation=cv2.INTER_AREA),
                (width, height),
                interpolation=cv2.INTER_AREA,
            )
            for image in images
        ]
    )


def haze(images: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    """Fog-like: blend towards a bright haze whose thickness varies smoothly across the image."""
    n, height, width = images.shape[:3]
    coarse = rng.uniform(0.0, 1.0, (n, 4, 4)).astype(np.float32)
    thickness = np.stack(
        [cv2.resize(c, (width, height), interpolation=cv2.INTER_CUBIC) for c in coarse]
    )
    opacity = _HAZE_OPACITY[level - 1] * (0.5 + 0.5 * np.clip(thickness, 0, 1))[..., None]
    return _as_uint8(_as_float(images) * (1 - opacity) + 0.85 * opacity)


CORRUPTIONS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "gaussian_blur": gaussian_blur,
    "motion_blur": motion_blur,
    "jpeg": jpeg,
    "brightness": brightness,
    "contrast": contrast,
    "pixelate": pixelate,
    "haze": haze,
}


def corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """`images` (uint8 (N, H, W, 3), or one (H, W, 3) image) under corruption `name` at
    `severity` 0 (unchanged) to 5. Deterministic for a given `seed`."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose one of {', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)):
        raise ValueError(f"severity must be an integer 0 to 5, got {severity!r}")
    if not 0 <= severity <= 5:
        raise ValueError(f"severity must be 0 to 5, got {severity}")
    images = np.asarray(images)
    single = images.ndim == 3
    batch = images[None] if single else images
    if batch.ndim != 4 or batch.shape[-1] != 3 or batch.dtype != np.uint8:
        raise ValueError(
            f"expected uint8 RGB images of shape (N, H, W, 3) or (H, W, 3), got "
            f"{images.dtype} {images.shape}"
        )
    if severity == 0:
        out = batch.copy()
    else:
        out = CORRUPTIONS[name](batch, int(severity), np.random.default_rng(seed))
    return out[0] if single else out


def corruption_benchmark(
    predict: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    labels: np.ndarray,
    names: list[str] | tuple[str, ...] = tuple(CORRUPTIONS),
    severities: tuple[int, ...] = SEVERITIES,
    seed: int = 0,
) -> dict:
    """Accuracy of `predict` (uint8 images -> (N, 10) probabilities) on `images` under every
    corruption and severity.

    Returns ``{"clean": acc, "corruptions": {name: {"1": acc, ..., "5": acc}}, "mean": acc}``,
    where "mean" is the mean corruption accuracy over all corruptions and severities."""
    reports = corruption_benchmarks(
        lambda x: {"model": predict(x)}, images, labels, names, severities, seed
    )
    return reports["model"]


def corruption_benchmarks(
    predict: Callable[[np.ndarray], dict[str, np.ndarray]],
    images: np.ndarray,
    labels: np.ndarray,
    names: list[str] | tuple[str, ...] = tuple(CORRUPTIONS),
    severities: tuple[int, ...] = SEVERITIES,
    seed: int = 0,
) -> dict[str, dict]:
    """`corruption_benchmark` for several models on the same corrupted pixels, each corrupted
    set generated once: `predict` maps uint8 images to {model name: (N, 10) probabilities}.
    Returns {model name: report}."""
    labels = np.asarray(labels)

    def accuracies(x: np.ndarray) -> dict[str, float]:
        return {
            model: float(np.mean(np.argmax(p, axis=1) == labels)) for model, p in predict(x).items()
        }

    clean = accuracies(images)
    tables: dict[str, dict[str, dict[str, float]]] = {model: {} for model in clean}
    for name in names:
        for severity in severities:
            for model, acc in accuracies(corrupt(images, name, severity, seed)).items():
                tables[model].setdefault(name, {})[str(severity)] = acc
    return {
        model: {
            "clean": clean[model],
            "corruptions": table,
            "mean": float(
                np.mean([a for by_severity in table.values() for a in by_severity.values()])
            ),
            "n": len(labels),
            "seed": seed,
        }
        for model, table in tables.items()
    }
