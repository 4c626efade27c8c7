"""Out-of-distribution detectors on outlier sources of real variety: writes docs/ood_benchmark.md.

    apt-get install dataset-fashion-mnist gnome-backgrounds mate-backgrounds desktop-base \\
        plasma-workspace-wallpapers mypaint-data-extras
    pip install scikit-image        # its sample photographs and faces (read as files)
    python bench/ood_benchmark.py --data ../shared/data/cifar-10-python.tar.gz \\
        --imagenet-weights ../shared/weights/mobilenet_2_5_224_tf_no_top.h5

Every detector is measured the same way: CIFAR-10 test images are the in-distribution set, each
source of `cifar_cnn.data.outliers` the outliers; AUROC, and the false-positive rate at the
threshold that keeps 95% of the test images (FPR at 95% TPR, lower is better). Choices (which
detector ships, its k, weights and threshold) were made on the validation split against the
choice sources only, by `cifar-evaluate --ood` (`fit_knn_detector`); the column "choice FPR"
shows that criterion (the validation split as the in-distribution set), the held-out columns what
it was never shown. Sources missing on this machine are skipped and said so.
"""

import argparse
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

import cifar_cnn  # noqa: F401  (oneDNN on before TensorFlow loads)
from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.cifar10 import REPO_ROOT, load_cifar10
from cifar_cnn.data.outliers import OUTLIER_SOURCES
from cifar_cnn.ensemble import CifarEnsemble
from cifar_cnn.trust.ood import (
    Mahalanobis,
    auroc,
    detector_of,
    ensemble_scores,
    fpr_at_tpr,
    knn_similarity,
    model_scores,
)
from training.evaluate import (
    BANK_PER_CLASS,
    available_sources,
    bank_rows,
    features_for,
    validation_images,
)
from training.model_folder import hardware_description

K = 50


def unit(features: np.ndarray) -> np.ndarray:
    return features / (np.linalg.norm(features, axis=1, keepdims=True) + 1e-12)


def penultimate(classifier: CifarClassifier) -> Callable[[np.ndarray], np.ndarray]:
    """The input of the model's last Dense layer (its penultimate features)."""
    model = classifier.model
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][-1]
    trunk = keras.Model(model.inputs, dense.input)
    return lambda views: np.concatenate(
        [trunk.predict_on_batch(views[i : i + 500]) for i in range(0, len(views), 500)]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="CIFAR-10 archive or folder (default: search)")
    parser.add_argument(
        "--imagenet-weights",
        default=str(REPO_ROOT / "models/resnet_fast/ood_features.weights.h5"),
        help="MobileNet alpha 0.25 ImageNet weights (default: the flagship folder's copy)",
    )
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "docs/ood_benchmark.md")
    args = parser.parse_args()

    data = load_cifar10(args.data, download=False)
    flagship = CifarClassifier.from_pretrained(REPO_ROOT / "models/resnet_fast")
    ensemble = CifarEnsemble.from_pretrained(REPO_ROOT / "models/ensemble")
    imagenet = features_for(flagship, args.imagenet_weights)
    x_val, _ = validation_images(list(ensemble.members), data)
    sources = available_sources()
    sets = {"val": x_val, "test": data.x_test, **sources}
    choice = [n for n in sources if not OUTLIER_SOURCES[n].held_out]
    held_out = [n for n in sources if OUTLIER_SOURCES[n].held_out]

    # Features and own scores of every set, computed once.
    own = {name: model_scores(flagship, views)[1] for name, views in sets.items()}
    ens = {name: ensemble_scores(ensemble, views)[1] for name, views in sets.items()}
    net = {name: imagenet(views) for name, views in sets.items()}
    flagship_features = penultimate(flagship)
    pen = {name: flagship_features(views) for name, views in sets.items()}
    rows = bank_rows(data, x_val)  # the shipped detectors' bank (the ensemble's validation split)
    bank_views, bank_labels = data.x_train[rows], data.y_train[rows]
    net_bank, pen_bank = imagenet(bank_views), flagship_features(bank_views)

    def knn(features, bank, k=K):
        return {n: knn_similarity(unit(f), unit(bank), k) for n, f in features.items()}

    def mahalanobis(features, bank, normalise):
        prepare = unit if normalise else (lambda f: f)
        fit = Mahalanobis.fit(prepare(bank), bank_labels)
        return {n: fit.score(prepare(f)) for n, f in features.items()}

    def shipped(model, own_scores):
        detector = detector_of(model)
        return {
            name: detector.combine(detector.parts(net[name], own_scores[name])) for name in sets
        }

    detectors = {
        "flagship: top probability (msp)": {n: s["msp"] for n, s in own.items()},
        "flagship: energy": {n: s["energy"] for n, s in own.items()},
        "flagship features: Mahalanobis": mahalanobis(pen, pen_bank, False),
        "flagship features: Mahalanobis, unit length": mahalanobis(pen, pen_bank, True),
        f"flagship features: kNN (k={K})": knn(pen, pen_bank),
        # (ImageNetFeatures are unit length already.)
        "ImageNet features: Mahalanobis": mahalanobis(net, net_bank, False),
        f"ImageNet features: kNN (k={K})": knn(net, net_bank),
        "**flagship's shipped detector**": shipped(flagship, own),
        "ensemble: soft vote's top probability": {n: s["msp"] for n, s in ens.items()},
        "ensemble: members' mean energy": {n: s["energy"] for n, s in ens.items()},
        "ensemble: members' vote share (disagreement)": {
            n: s["vote_share"] for n, s in ens.items()
        },
        "**ensemble's shipped detector**": shipped(ensemble, ens),
    }

    def fpr(scores, source, inside="test"):
        return fpr_at_tpr(scores[inside], scores[source])

    lines = [
        "# Out-of-distribution benchmark",
        "",
        "Written by `python bench/ood_benchmark.py --data ../shared/data/cifar-10-python.tar.gz "
        "--imagenet-weights ../shared/weights/mobilenet_2_5_224_tf_no_top.h5` (see its "
        "docstring for the packages it reads) on: " + machine() + ". Do not edit by hand.",
        "",
        "## Sources",
        "",
        "| source | role | pictures | what |",
        "|---|---|---:|---|",
        *(
            f"| {n} | {'held out' if OUTLIER_SOURCES[n].held_out else 'choice'} | {len(v)} "
            f"| {OUTLIER_SOURCES[n].description} |"
            for n, v in sources.items()
        ),
        "",
        f"In-distribution: the {len(data.x_test):,} CIFAR-10 test images; the choice column uses "
        f"the {len(x_val):,} validation images no shipped model trained on. Photographs count "
        "whole and as 7 seeded crops each. Skipped here: "
        + (", ".join(n for n in OUTLIER_SOURCES if n not in sources) or "none")
        + ".",
        "",
        "## False-positive rate at 95% true-positive rate (lower is better)",
        "",
        "| detector | choice FPR (validation) | "
        + " | ".join(sources)
        + " | held-out mean | held-out mean AUROC |",
        "|---|" + "---:|" * (len(sources) + 3),
    ]
    for name, scores in detectors.items():
        choice_fpr = np.mean([fpr(scores, s, "val") for s in choice])
        held_fpr = np.mean([fpr(scores, s) for s in held_out]) if held_out else float("nan")
        held_auroc = (
            np.mean([auroc(scores["test"], scores[s]) for s in held_out])
            if held_out
            else float("nan")
        )
        lines.append(
            f"| {name} | {100 * choice_fpr:.1f}% | "
            + " | ".join(f"{100 * fpr(scores, s):.1f}%" for s in sources)
            + f" | **{100 * held_fpr:.1f}%** | {held_auroc:.4f} |"
        )
    lines += ["", "## AUROC (higher is better)", ""]
    lines += ["| detector | " + " | ".join(sources) + " |", "|---|" + "---:|" * len(sources)]
    for name, scores in detectors.items():
        lines.append(
            f"| {name} | "
            + " | ".join(f"{auroc(scores['test'], scores[s]):.4f}" for s in sources)
            + " |"
        )

    lines += [
        "",
        "## The shipped detectors at their thresholds",
        "",
        "The share of pictures each shipped detector flags at the threshold fitted on validation "
        "(it keeps 95% of the validation images):",
        "",
        "| detector | CIFAR-10 test | " + " | ".join(sources) + " |",
        "|---|" + "---:|" * (len(sources) + 1),
    ]
    for label, model, scores in (
        ("flagship", flagship, detectors["**flagship's shipped detector**"]),
        ("ensemble", ensemble, detectors["**ensemble's shipped detector**"]),
    ):
        threshold = detector_of(model).threshold
        shares = [np.mean(scores[n] < threshold) for n in ["test", *sources]]
        lines.append(f"| {label} | " + " | ".join(f"{100 * s:.1f}%" for s in shares) + " |")

    lines += [
        "",
        "## Bank size and k (choice sources, validation only)",
        "",
        "Mean FPR at 95% TPR over the choice sources, kNN on ImageNet features alone, for banks "
        "of training pictures of several sizes (the shipped detectors use "
        f"{10 * BANK_PER_CLASS:,}):",
        "",
        "| bank | k=1 | k=10 | k=50 |",
        "|---:|---:|---:|---:|",
    ]
    for per_class in (200, 500, 1000):
        bank = imagenet(data.x_train[bank_rows(data, x_val, per_class)])
        cells = []
        for k in (1, 10, 50):
            scores = knn(net, bank, k)
            cells.append(f"{100 * np.mean([fpr(scores, s, 'val') for s in choice]):.1f}%")
        lines.append(f"| {10 * per_class:,} | " + " | ".join(cells) + " |")
    args.output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def machine() -> str:
    amx = "amx_bf16" in Path("/proc/cpuinfo").read_text()
    return f"{hardware_description()} ({'with' if amx else 'no'} AMX)"


if __name__ == "__main__":
    main()
