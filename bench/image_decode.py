"""Decoding a phone-sized JPEG upload: at a reduced DCT scale (what `to_model_input` does) against
a full-size decode, and whether the flagship's prediction changes.

    python bench/image_decode.py                    # 12 MP and 2 MP JPEGs, 30 images each
    python bench/image_decode.py --images 100 --model models/resnet_fast

Each real test image from the shipped slice is enlarged to the photo size with sensor-like noise
and saved as a JPEG (quality 90); both paths then decode the same bytes. Times are medians over
the images; memory is the decoded RGB picture's size.
"""

import argparse
import io
import time

import numpy as np
from PIL import Image

import cifar_cnn  # noqa: F401  (oneDNN on before TensorFlow loads)
from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.cifar10 import load_slice
from cifar_cnn.data.images import resize_to_model, to_pil

SIZES = {"12 MP (4032x3024)": (4032, 3024), "2 MP (1920x1080)": (1920, 1080)}


def photo_jpeg(image: np.ndarray, size: tuple[int, int], seed: int) -> bytes:
    enlarged = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC), np.int16)
    noise = np.random.default_rng(seed).integers(-20, 21, enlarged.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(enlarged + noise, 0, 255).astype(np.uint8)).save(
        buffer, format="JPEG", quality=90
    )
    return buffer.getvalue()


def full_size(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.convert("RGB")


def timed(function, data: bytes) -> tuple[Image.Image, float]:
    started = time.perf_counter()
    picture = function(data)
    return picture, 1000 * (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--model", default="models/resnet_fast")
    args = parser.parse_args()
    classifier = CifarClassifier.from_pretrained(args.model)
    images = load_slice().x_test[: args.images]
    print(
        "| photo | decode, ms: reduced / full | decoded size | memory, MB: reduced / full "
        "| 32x32 view, mean / max pixel difference | same prediction |"
    )
    print("|---|---:|---|---:|---:|---:|")
    for label, size in SIZES.items():
        times, diffs, same = {"reduced": [], "full": []}, [], 0
        for seed, image in enumerate(images):
            data = photo_jpeg(image, size, seed)
            reduced, t_reduced = timed(to_pil, data)
            full, t_full = timed(full_size, data)
            times["reduced"].append(t_reduced)
            times["full"].append(t_full)
            views = np.stack([resize_to_model(reduced), resize_to_model(full)])
            diffs.append(np.abs(views[0].astype(int) - views[1].astype(int)))
            labels = classifier.predict(views).argmax(axis=1)
            same += int(labels[0] == labels[1])
        diff = np.stack(diffs)
        megabytes = [3 * p.width * p.height / 1e6 for p in (reduced, full)]
        print(
            f"| {label} | {np.median(times['reduced']):.0f} / {np.median(times['full']):.0f} "
            f"| {reduced.width}x{reduced.height} | {megabytes[0]:.1f} / {megabytes[1]:.1f} "
            f"| {diff.mean():.2f} / {diff.max()} | {same} of {len(images)} |"
        )


if __name__ == "__main__":
    main()
