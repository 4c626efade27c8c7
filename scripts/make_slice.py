"""Cut the small real CIFAR-10 slice and the example images that ship in the repository.

    python scripts/make_slice.py --data ../shared/data/cifar-10-python.tar.gz

Writes `data/cifar10_slice.npz` (the first 100 training and 50 test images of each class, in the
archive's order) and `examples/<index>_<class>.png` (the first test image of each class).
"""

import argparse

import numpy as np
from PIL import Image

from cifar_cnn.data.cifar10 import CLASS_NAMES, REPO_ROOT, SLICE_PATH, balanced_subset, load_cifar10

TRAIN_PER_CLASS = 100
TEST_PER_CLASS = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="CIFAR-10 archive or directory (default: search)")
    args = parser.parse_args()

    data = load_cifar10(args.data, download=False)
    x_train, y_train = balanced_subset(data.x_train, data.y_train, TRAIN_PER_CLASS)
    x_test, y_test = balanced_subset(data.x_test, data.y_test, TEST_PER_CLASS)
    SLICE_PATH.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(SLICE_PATH, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    print(f"{SLICE_PATH}: {len(x_train)} train + {len(x_test)} test images from {data.source}")

    examples = REPO_ROOT / "examples"
    examples.mkdir(exist_ok=True)
    for label, name in enumerate(CLASS_NAMES):
        index = int(np.flatnonzero(data.y_test == label)[0])
        out = examples / f"test{index:04d}_{name}.png"
        Image.fromarray(data.x_test[index]).save(out)
        print(out)


if __name__ == "__main__":
    main()
