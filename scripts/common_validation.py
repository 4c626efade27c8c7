"""Compare models validated on different splits, on the training images all of them held out.

    python scripts/common_validation.py models/resnet_fast /tmp/previous/models/resnet_fast

Validation accuracies measured on splits of different sizes do not compare. With one seed, a
smaller split lies inside a larger one (`cifar_cnn.data.cifar10.validation_mask`), so the smaller
split's images were held out by every model: each model's accuracy on them (plain, no TTA) is a
fair comparison that never touches the test set.

Runs of one recipe differ by a few tenths of a point, a handful of the 2,000 images a 4% split
holds; so for each pair of models it also counts the images only one of them gets right, with the
exact two-sided McNemar p-value: the chance of a split at least that uneven if neither model were
better.
"""

import argparse
import itertools

import numpy as np

import cifar_cnn  # noqa: F401  (oneDNN on before TensorFlow loads)
from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.cifar10 import load_cifar10
from cifar_cnn.report.metrics import mcnemar_p
from training.evaluate import validation_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="model folders or Hub repo ids")
    parser.add_argument("--data", help="CIFAR-10 archive, directory or .npz (default: search)")
    args = parser.parse_args()
    models = {source: CifarClassifier.from_pretrained(source) for source in args.models}
    x, y = validation_images(list(models.values()), load_cifar10(args.data))
    print(f"{len(y)} training images held out by all {len(models)} models")
    correct = {}
    for source, classifier in models.items():
        correct[source] = classifier.predict(x, batch_size=500).argmax(axis=1) == y
        print(f"{source}: accuracy {correct[source].mean():.4f}")
    for a, b in itertools.combinations(correct, 2):
        only_a = int(np.sum(correct[a] & ~correct[b]))
        only_b = int(np.sum(correct[b] & ~correct[a]))
        print(
            f"only {a} right: {only_a}, only {b} right: {only_b}, "
            f"McNemar p = {mcnemar_p(only_a, only_b):.2f}"
        )


if __name__ == "__main__":
    main()
