"""Regenerate README's results table from the shipped models' metrics.json and config.json.

    python scripts/results_table.py            # rewrites the table between the README markers
    python scripts/results_table.py --print    # prints it instead

Accuracy figures are read from each folder's metrics.json (written by cifar-evaluate on the
10,000 test images); the milliseconds per image are measured now: the median of 200
`CifarClassifier.predict` calls on one real test image, after a warm-up call.
"""

import argparse
import json
import re
import time

import numpy as np

import cifar_cnn  # noqa: F401  (oneDNN on before TensorFlow loads)
from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data import REPO_ROOT, load_slice

README = REPO_ROOT / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def milliseconds_per_image(classifier: CifarClassifier, image: np.ndarray, calls: int = 200):
    classifier.predict(image)
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        classifier.predict(image)
        samples.append(1000 * (time.perf_counter() - started))
    return float(np.median(samples))


def table() -> str:
    image = load_slice().x_test[:1]
    rows = [
        "| model | test accuracy | with flip TTA | parameters | size on disk | training minutes "
        "| ms per image |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for folder in sorted((REPO_ROOT / "models").glob("*/model.keras")):
        folder = folder.parent
        metrics = json.loads((folder / "metrics.json").read_text())
        config = json.loads((folder / "config.json").read_text())
        classifier = CifarClassifier.from_pretrained(folder)
        size = (folder / "model.keras").stat().st_size / 2**20
        minutes = config.get("training", {}).get("train_seconds", float("nan")) / 60
        rows.append(
            f"| [{folder.name}](models/{folder.name}) "
            f"| {100 * metrics['plain']['accuracy']:.2f}% "
            f"| {100 * metrics['flip_tta']['accuracy']:.2f}% "
            f"| {config['parameters']:,} | {size:.1f} MB | {minutes:.0f} "
            f"| {milliseconds_per_image(classifier, image):.1f} |"
        )
    ensemble = REPO_ROOT / "models" / "ensemble" / "metrics.json"
    if ensemble.exists():
        metrics = json.loads(ensemble.read_text())
        rows.append(
            f"| [ensemble](models/ensemble) (soft vote of {len(metrics['members'])}) "
            f"| {100 * metrics['soft']['accuracy']:.2f}% | | | | | |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--print", action="store_true", help="print instead of editing README")
    args = parser.parse_args()
    text = table()
    if args.print:
        print(text)
        return
    readme = README.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(readme):
        raise SystemExit(f"{README} has no {START} ... {END} markers")
    README.write_text(pattern.sub(f"{START}\n{text}\n{END}", readme))
    print(text)


if __name__ == "__main__":
    main()
