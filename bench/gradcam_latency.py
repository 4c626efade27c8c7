"""Latency of one Grad-CAM (and Grad-CAM++) of one 32x32 image, per shipped model.

    python bench/gradcam_latency.py                 # models/* folders
    python bench/gradcam_latency.py --repeats 200 models/resnet_fast

Median and 95th percentile over `--repeats` calls on real test images, after the first call (which
traces and compiles the gradient function; it is cached per model and layer).
"""

import argparse
import time

import numpy as np

import cifar_cnn  # noqa: F401  (oneDNN on before TensorFlow loads)
from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.cifar10 import load_slice
from cifar_cnn.explain.gradcam import grad_cam_for
from webapp import serving


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*", help="model folders (default: models/*)")
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()
    folders = args.models or serving.model_sources("")  # default: the shipped models
    images = load_slice().x_test
    print("| model | layer | Grad-CAM, ms (median, p95) | Grad-CAM++, ms (median, p95) |")
    print("|---|---|---:|---:|")
    for folder in folders:
        classifier = CifarClassifier.from_pretrained(folder)
        cam = grad_cam_for(classifier.model)
        cells = []
        for method in ("gradcam", "gradcam++"):
            cam.explain(images[0], method=method)  # first call: tracing
            samples = []
            for i in range(args.repeats):
                started = time.perf_counter()
                cam.explain(images[1 + i % (len(images) - 1)], method=method)
                samples.append(1000 * (time.perf_counter() - started))
            cells.append(f"{np.median(samples):.1f}, {np.percentile(samples, 95):.1f}")
        name = classifier.config["architecture"]
        print(f"| {name} | `{cam.layer}` | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
