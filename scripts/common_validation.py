"""Compare models validated on different splits, on the training images all of them held out.

    python scripts/common_validation.py models/resnet_fast /tmp/previous/models/resnet_fast

Validation accuracies measured on splits of different sizes do not compare. With one seed, a
smaller split lies inside a larger one (`cifar_cnn.data.validation_mask`), so the smaller split's
images were held out by every model: each model's accuracy on them (plain, no TTA) is a fair
comparison that never touches the test set.
"""

import argparse

import numpy as np

import cifar_cnn  # noqa: F401  (oneDNN on before TensorFlow loads)
from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data import load_cifar10
from training.robustness import validation_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="model folders or Hub repo ids")
    parser.add_argument("--data", help="CIFAR-10 archive, directory or .npz (default: search)")
    args = parser.parse_args()
    models = {source: CifarClassifier.from_pretrained(source) for source in args.models}
    x, y = validation_images(list(models.values()), load_cifar10(args.data))
    print(f"{len(y)} training images held out by all {len(models)} models")
    for source, classifier in models.items():
        accuracy = np.mean(classifier.predict(x, batch_size=500).argmax(axis=1) == y)
        print(f"{source}: accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
