"""Latency of classifying one image, `CifarClassifier.predict` (a cached tf.function) against
Keras's `model.predict`, and batch throughput, for each shipped model.

    python bench/inference_latency.py                # models/* folders
    python bench/inference_latency.py --repeats 200 models/resnet_fast

Reports the median and 95th percentile over `--repeats` calls on one real 32x32 test image, after
a warm-up call, and images/s for `predict` on the 500 shipped test images in batches of 250.
"""

import argparse
import time

import numpy as np

import cifar_cnn  # noqa: F401  (oneDNN on before TensorFlow loads)
from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.cifar10 import load_slice
from webapp import serving


def timings(call, repeats: int) -> tuple[float, float]:
    call()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append(1000 * (time.perf_counter() - started))
    return float(np.median(samples)), float(np.percentile(samples, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*", help="model folders (default: models/*)")
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()
    folders = args.models or serving.model_sources("")  # default: the shipped models
    image = load_slice().x_test[:1]
    batch = load_slice().x_test
    print(
        "| model | CifarClassifier.predict, ms (median, p95) | model.predict, ms (median, p95) "
        "| batch images/s |"
    )
    print("|---|---:|---:|---:|")
    for folder in folders:
        classifier = CifarClassifier.from_pretrained(folder)
        fast = timings(lambda c=classifier: c.predict(image), args.repeats)
        slow = timings(lambda c=classifier: c.model.predict(image, verbose=0), args.repeats)
        batch_ms = timings(lambda c=classifier: c.predict(batch, batch_size=250), 5)[0]
        name = classifier.config["architecture"]
        print(
            f"| {name} | {fast[0]:.1f}, {fast[1]:.1f} | {slow[0]:.1f}, {slow[1]:.1f} "
            f"| {len(batch) / (batch_ms / 1000):.0f} |"
        )


if __name__ == "__main__":
    main()
