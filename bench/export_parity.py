"""Exported models against the Keras model they came from: ONNX and TFLite (float32, float16,
int8), for every shipped model, on the CIFAR-10 test images.

    python bench/export_parity.py --data ../shared/data/cifar-10-python.tar.gz   # docs/serving.md
    python bench/export_parity.py models/seed_cnn --data data/cifar10_slice.npz  # a quick look

For each model and format it exports with `cifar-export`'s code (int8 calibrated on 500 training
images), then reports the file size, the share of test images whose top class equals the Keras
model's, the largest difference of any probability from the Keras model's (ONNX returns
calibrated probabilities, as `predict` does; TFLite returns the raw ones, so each is compared with
its own), the accuracy, and the milliseconds per image (median of 200 single-image calls after a
warm-up; the Keras row is `CifarClassifier.predict`). Below the table, for each export that
disagrees with Keras anywhere, how sure Keras was on those images (the gap between its top two
classes).
"""

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import cifar_cnn  # noqa: F401  (oneDNN on before TensorFlow loads)
from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.cifar10 import REPO_ROOT, load_cifar10
from cifar_cnn.export import (
    QUANTIZATIONS,
    ONNXClassifier,
    TFLiteClassifier,
    export_onnx,
    export_tflite,
)
from cifar_cnn.hub.layout import model_folders, weights_file

SHIPPED = [str(folder) for folder in model_folders(REPO_ROOT / "models")]


def ms_per_image(predict: Callable[[np.ndarray], np.ndarray], image: np.ndarray, calls: int):
    predict(image)  # warm-up
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        predict(image)
        samples.append(1000 * (time.perf_counter() - started))
    return float(np.median(samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*", default=SHIPPED, help="default: every shipped one")
    parser.add_argument("--data", help="CIFAR-10 archive, directory or .npz (default: search)")
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    data = load_cifar10(args.data)
    x, y, one = data.x_test, data.y_test, data.x_test[:1]
    print(f"{len(x)} test images from {data.source}")
    print(
        "| model | format | size (MB) | top-1 agreement with Keras | max probability difference "
        "| accuracy | ms per image (median) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    notes = []
    for folder in args.models:
        classifier = CifarClassifier.from_pretrained(folder)
        name = classifier.config["architecture"]
        calibrated, raw = classifier.predict(x), classifier.predict(x, calibrated=False)
        size = weights_file(folder).stat().st_size / 2**20
        accuracy = np.mean(calibrated.argmax(1) == y)
        speed = ms_per_image(classifier.predict, one, args.calls)
        print(f"| {name} | Keras | {size:.1f} | | | {100 * accuracy:.2f}% | {speed:.2f} |")
        with tempfile.TemporaryDirectory() as scratch:
            exports = [("ONNX", export_onnx(classifier, Path(scratch) / "m.onnx"), calibrated)]
            exports += [
                (f"TFLite {q}", export_tflite(classifier, Path(scratch) / f"{q}.tflite", q,
                                              data.x_train[:500]), raw)
                for q in QUANTIZATIONS
            ]  # fmt: skip
            for label, path, reference in exports:
                runner = (ONNXClassifier if path.suffix == ".onnx" else TFLiteClassifier)(path)
                probabilities = runner.predict(x)
                agreement = np.mean(probabilities.argmax(1) == reference.argmax(1))
                difference = np.abs(probabilities - reference).max()
                accuracy = np.mean(probabilities.argmax(1) == y)
                speed = ms_per_image(runner.predict, one, args.calls)
                if agreement < 1:
                    notes.append(disagreement_note(f"{name} {label}", probabilities, reference))
                print(
                    f"| {name} | {label} | {path.stat().st_size / 2**20:.1f} "
                    f"| {100 * agreement:.2f}% | {difference:.1e} | {100 * accuracy:.2f}% "
                    f"| {speed:.2f} |",
                    flush=True,
                )

    print("\n".join(notes))


def disagreement_note(label: str, probabilities: np.ndarray, reference: np.ndarray) -> str:
    """How sure the Keras model was where the export disagrees with it: the gap between its two
    most likely classes there, against every image."""
    top_two = np.sort(reference, axis=1)[:, -2:]
    gap = top_two[:, 1] - top_two[:, 0]
    differs = probabilities.argmax(1) != reference.argmax(1)
    return (
        f"{label}: disagrees on {differs.sum()} images; Keras's top-two gap there: median "
        f"{np.median(gap[differs]):.3f}, under 0.1 on {np.mean(gap[differs] < 0.1):.0%} of them "
        f"(all images: median {np.median(gap):.3f})"
    )


if __name__ == "__main__":
    main()
