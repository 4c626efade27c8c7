"""Trust beyond accuracy for a saved model: accuracy under corruptions, and an out-of-distribution
detector fitted on validation data and evaluated on real outliers. Both are written into the
model folder (metrics.json, config.json, a plot, the refreshed card) by `cifar-evaluate
--corruptions` and `cifar-evaluate --ood`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cifar_cnn.classifier import CONFIG_FILE, METRICS_FILE, CifarClassifier
from cifar_cnn.corruptions import (
    CORRUPTIONS,
    SEVERITIES,
    corruption_benchmark,
    corruption_benchmarks,
)
from cifar_cnn.data import Cifar10, validation_mask
from cifar_cnn.ensemble import VOTE_KEY, VOTE_LABEL, CifarEnsemble, report_label, soft_vote
from cifar_cnn.files import atomic_write_text
from cifar_cnn.ood import (
    DEFAULT_TPR,
    FASHION_MNIST_DIR,
    auroc,
    ensemble_ood_scores,
    load_fashion_mnist,
    ood_report,
    ood_scores,
    threshold_at_tpr,
)
from cifar_cnn.plots import plot_corruption_accuracy


def validation_images(
    classifier: CifarClassifier | list[CifarClassifier], data: Cifar10
) -> tuple[np.ndarray, np.ndarray]:
    """The validation images the model was trained without (from its recorded recipe); for a
    list of models, the images every one of them was trained without."""
    held_out = np.ones(len(data.y_train), dtype=bool)
    for model in classifier if isinstance(classifier, list) else [classifier]:
        recipe = model.config.get("training", {}).get("recipe")
        if recipe is None:
            raise ValueError("a model has no training record, so its validation split is unknown")
        held_out &= validation_mask(data.y_train, recipe["validation_fraction"], recipe["seed"])
    if not held_out.any():
        raise ValueError("the models' validation splits share no image: nothing to fit on")
    return data.x_train[held_out], data.y_train[held_out]


def fit_ood_detector(
    scorer: Callable[[np.ndarray], dict[str, np.ndarray]],
    x_val: np.ndarray,
    outliers: np.ndarray,
    tpr: float = DEFAULT_TPR,
) -> dict:
    """Choose the score that best separates the validation split from `outliers` (AUROC), and
    the threshold that keeps `tpr` of the validation images. Test sets play no part.
    `scorer` maps images to {score name: per-image scores}."""
    inside, outside = scorer(x_val), scorer(outliers)
    validation_auroc = {name: auroc(inside[name], outside[name]) for name in inside}
    score = max(validation_auroc, key=validation_auroc.get)
    return {
        "score": score,
        "threshold": threshold_at_tpr(inside[score], tpr),
        "tpr": tpr,
        "fitted_on": f"validation split ({len(x_val)} images) against {len(outliers)} "
        "Fashion-MNIST training images",
        "validation_auroc": validation_auroc,
    }


def measure_ood(
    scorer: Callable[[np.ndarray], dict[str, np.ndarray]],
    x_val: np.ndarray,
    data: Cifar10,
    fashion_mnist: str | os.PathLike = FASHION_MNIST_DIR,
    outlier_images: int | None = None,
) -> dict:
    """Fit a detector (validation split vs 5,000 Fashion-MNIST training images) and report AUROC
    and FPR at 95% TPR of every score on CIFAR-10 test vs the Fashion-MNIST test images
    (`outlier_images` caps both Fashion-MNIST sets, for quick checks)."""
    fit_size = min(5000, outlier_images or 5000)
    detector = fit_ood_detector(
        scorer, x_val, load_fashion_mnist("train", fashion_mnist, limit=fit_size)
    )
    outliers = load_fashion_mnist("test", fashion_mnist, limit=outlier_images)
    report = {
        "in_distribution": f"CIFAR-10 test ({len(data.x_test)} images)",
        "outliers": f"Fashion-MNIST test ({len(outliers)} images, 32x32 RGB)",
        "scores": ood_report(scorer(data.x_test), scorer(outliers)),
        "detector": detector,
    }
    chosen = report["scores"][detector["score"]]
    print(
        f"OOD: {detector['score']} chosen on validation; on the test sets AUROC "
        f"{chosen['auroc']:.4f}, FPR at 95% TPR {chosen['fpr_at_95_tpr']:.4f}"
    )
    return report


def evaluate_ood(
    classifier: CifarClassifier,
    data: Cifar10,
    output: str | os.PathLike,
    fashion_mnist: str | os.PathLike = FASHION_MNIST_DIR,
    outlier_images: int | None = None,
) -> dict:
    """`measure_ood` for one model; the detector goes to config.json (and drives the app's
    warning), the report to metrics.json and the card."""
    x_val, _ = validation_images(classifier, data)
    report = measure_ood(
        lambda images: ood_scores(classifier, images), x_val, data, fashion_mnist, outlier_images
    )
    classifier.config["ood_detector"] = report["detector"]
    _update(classifier, output, "ood", report)
    return report


def evaluate_ensemble_ood(
    ensemble: CifarEnsemble,
    data: Cifar10,
    output: str | os.PathLike,
    fashion_mnist: str | os.PathLike = FASHION_MNIST_DIR,
    outlier_images: int | None = None,
) -> dict:
    """`measure_ood` for an ensemble, fitted on the validation images none of its members trained
    on; the report goes to the ensemble folder's metrics.json and card."""
    x_val, _ = validation_images(list(ensemble.members), data)
    report = measure_ood(
        lambda images: ensemble_ood_scores(ensemble, images),
        x_val,
        data,
        fashion_mnist,
        outlier_images,
    )
    ensemble.metrics = {**(ensemble.metrics or {}), "ood": report}
    ensemble.save_pretrained(output)
    return report


def evaluate_corruptions(
    classifier: CifarClassifier, data: Cifar10, output: str | os.PathLike, limit: int | None = None
) -> dict:
    """Accuracy on the test images under every corruption and severity, and its plot."""
    x, y = data.x_test[:limit], data.y_test[:limit]
    report = corruption_benchmark(
        _reporting_progress(lambda images: classifier.predict(images, batch_size=500)), x, y
    )
    _write_corruptions(classifier, output, report)
    return report


def evaluate_ensemble_corruptions(
    ensemble: CifarEnsemble,
    data: Cifar10,
    output: str | os.PathLike,
    member_folders: list[str | os.PathLike],
    limit: int | None = None,
) -> dict:
    """Every member and the ensemble's soft vote on the same corrupted test images (each
    corrupted set made once). Each member's table goes into its own folder, exactly as
    `cifar-evaluate --corruptions` writes it; the ensemble folder gets its own table, the
    comparison of all of them (do they rank as on clean images?) and one plot."""
    names = list(ensemble.names)
    for reserved in (VOTE_KEY, VOTE_LABEL):
        if reserved in names:
            raise ValueError(f"a member named {reserved!r} would be confused with the soft vote")
    x, y = data.x_test[:limit], data.y_test[:limit]

    def predict_all(images: np.ndarray) -> dict[str, np.ndarray]:
        members = ensemble.member_probabilities(images, batch_size=500)
        return {**dict(zip(names, members, strict=True)),
                VOTE_KEY: soft_vote(members, ensemble.weights)}  # fmt: skip

    reports = corruption_benchmarks(_reporting_progress(predict_all), x, y)
    for member, name, folder in zip(ensemble.members, names, member_folders, strict=True):
        _write_corruptions(member, folder, reports[name], label=name)
    report = {
        **reports[VOTE_KEY],
        "models": {m: {"clean": r["clean"], "mean": r["mean"]} for m, r in reports.items()},
        "ranking": {
            "clean": sorted(reports, key=lambda m: -reports[m]["clean"]),
            "corrupted": sorted(reports, key=lambda m: -reports[m]["mean"]),
        },
    }
    print(f"Ranking on clean images: {', '.join(report['ranking']['clean'])}; "
          f"under corruptions: {', '.join(report['ranking']['corrupted'])}")  # fmt: skip
    labelled = {report_label(m): r for m, r in reports.items()}
    plot_corruption_accuracy(
        labelled, Path(output) / "corruptions.png", title="Members and their soft vote"
    )
    ensemble.metrics = {**(ensemble.metrics or {}), "corruptions": report}
    ensemble.save_pretrained(output)
    return report


def _reporting_progress(predict: Callable, sets: int = 1 + len(CORRUPTIONS) * len(SEVERITIES)):
    """`predict`, printing how many of the benchmark's image sets it has seen (a full run
    takes many minutes on a CPU)."""
    done, started = 0, time.perf_counter()

    def wrapped(images):
        nonlocal done
        result = predict(images)
        done += 1
        print(f"  {done}/{sets} image sets, {time.perf_counter() - started:.0f} s", flush=True)
        return result

    return wrapped


def _write_corruptions(
    classifier: CifarClassifier, output: str | os.PathLike, report: dict, label: str | None = None
) -> None:
    name = classifier.config["architecture"]
    print(
        f"{label or name} under corruptions: clean {report['clean']:.4f}, mean over "
        f"corruptions and severities {report['mean']:.4f}"
    )
    plot_corruption_accuracy({name: report}, Path(output) / "corruptions.png", title=name)
    _update(classifier, output, "corruptions", report)


def _update(classifier: CifarClassifier, output: str | os.PathLike, key: str, report: dict):
    """Merge `report` into the folder's metrics.json under `key`; rewrite config.json and the
    model card (model.keras is untouched)."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    classifier.metrics = {**(classifier.metrics or {}), key: report}
    atomic_write_text(output / METRICS_FILE, json.dumps(classifier.metrics, indent=2))
    atomic_write_text(output / CONFIG_FILE, json.dumps(classifier.config, indent=2))
    classifier.write_model_card(output)
