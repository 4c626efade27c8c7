"""TFLite exports of a model: size, agreement with the Keras model, accuracy, latency.

    python bench/tflite_export.py                         # the flagship, full test set if found
    python bench/tflite_export.py models/seed_cnn --data data/cifar10_slice.npz

For each quantization (float32, float16, int8 calibrated on 500 training images) it exports the
model with `cifar-export`'s code, then on the test images reports the file size, the share of
images where the TFLite model's top class equals the Keras model's, the TFLite accuracy, and the
interpreter's milliseconds per image (median of 200 single-image calls after a warm-up).
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import cifar_cnn  # noqa: F401  (oneDNN on before TensorFlow loads)
from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.cifar10 import REPO_ROOT, load_cifar10
from cifar_cnn.export import QUANTIZATIONS, TFLiteClassifier, export_tflite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", default=str(REPO_ROOT / "models" / "resnet_fast"))
    parser.add_argument("--data", help="CIFAR-10 archive, directory or .npz (default: search)")
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    data = load_cifar10(args.data)
    classifier = CifarClassifier.from_pretrained(args.model)
    keras_labels = classifier.predict(data.x_test, calibrated=False).argmax(1)
    keras_accuracy = np.mean(keras_labels == data.y_test)
    keras_mb = (Path(args.model) / "model.keras").stat().st_size / 2**20
    print(f"{len(data.x_test)} test images from {data.source}")
    print("| format | size (MB) | top-1 agreement with Keras | accuracy | ms per image (median) |")
    print("|---|---:|---:|---:|---:|")
    print(f"| Keras `.keras` | {keras_mb:.1f} | | {100 * keras_accuracy:.2f}% | |")
    with tempfile.TemporaryDirectory() as folder:
        for quantization in QUANTIZATIONS:
            path = export_tflite(
                classifier, Path(folder) / f"{quantization}.tflite", quantization,
                data.x_train[:500],
            )  # fmt: skip
            tflite = TFLiteClassifier(path)
            labels = tflite.predict(data.x_test).argmax(1)
            one = data.x_test[:1]
            tflite.predict(one)
            samples = []
            for _ in range(args.calls):
                started = time.perf_counter()
                tflite.predict(one)
                samples.append(1000 * (time.perf_counter() - started))
            print(
                f"| TFLite {quantization} | {path.stat().st_size / 2**20:.1f} "
                f"| {100 * np.mean(labels == keras_labels):.2f}% "
                f"| {100 * np.mean(labels == data.y_test):.2f}% | {np.median(samples):.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
