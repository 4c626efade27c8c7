"""Evaluate saved models and write what was measured into a folder: what `cifar-evaluate` and
`cifar-ensemble` do.

- `evaluate_and_report`: test-set metrics (plain and flip TTA), plots and the model card.
- `compare_with_baseline`: another model on the same images, shown beside it on the card.
- `evaluate_ood`, `evaluate_ensemble_ood`: an out-of-distribution detector fitted on validation
  data against the choice sources of `cifar_cnn.data.outliers`, measured on the test set against
  every source, held-out ones apart (the folder gets the detector, which drives the warnings).
- `evaluate_corruptions`, `evaluate_ensemble_corruptions`: accuracy under corruptions.

Each writes metrics.json, plots and a refreshed card into the folder it is given; model.keras is
never touched.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cifar_cnn.atomic import atomic_write_text
from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.cifar10 import Cifar10, validation_mask
from cifar_cnn.data.outliers import OUTLIER_SOURCES, load_outliers
from cifar_cnn.ensemble import CifarEnsemble
from cifar_cnn.hub.layout import METRICS_FILE
from cifar_cnn.report.metrics import evaluate_probabilities, per_class_table, predict_with_flips
from cifar_cnn.report.mistakes import plot_error_gallery
from cifar_cnn.report.plots import (
    plot_confusion_matrix,
    plot_corruption_accuracy,
    plot_learning_curves,
    plot_per_class,
    plot_reliability,
)
from cifar_cnn.trust.corruptions import (
    CORRUPTIONS,
    SEVERITIES,
    corruption_benchmark,
    corruption_benchmarks,
)
from cifar_cnn.trust.features import FEATURES_FILE, ImageNetFeatures
from cifar_cnn.trust.ood import (
    DEFAULT_TPR,
    KnnDetector,
    attach_detector,
    ensemble_scores,
    fit_knn_detector,
    knn_similarity,
    model_scores,
    ood_report,
)
from cifar_cnn.voting import VOTE_KEY, VOTE_LABEL, report_label, soft_vote


def evaluate_and_report(
    classifier: CifarClassifier,
    data: Cifar10,
    output: str | os.PathLike | None,
    batch_size: int = 500,
    errors: bool = False,
) -> dict:
    """Test-set metrics (plain and flip TTA): print the per-class table, write metrics.json, the
    plots and a refreshed model card into `output` (unless it is None); with `errors`, also
    errors.png, a gallery of
    the most confident mistakes with their Grad-CAMs."""
    raw, mirrored = predict_with_flips(classifier, data.x_test, batch_size)
    report = evaluate_probabilities(
        raw, mirrored, data.y_test, classifier.class_names, classifier.temperature
    )
    report["data_source"] = data.source
    plain, tta = report["plain"], report["flip_tta"]
    name = classifier.config["architecture"]
    print(f"{name} on {plain['n']} test images ({data.source})")
    calibration = f"ECE {plain['ece']:.4f}"
    if "temperature_scaled" in report:
        calibration += f" ({report['temperature_scaled']['ece']:.4f} after temperature scaling)"
    print(
        f"accuracy {plain['accuracy']:.4f}, with flip TTA {tta['accuracy']:.4f}, "
        f"top-3 {plain['top_k_accuracy']['3']:.4f}, macro F1 {plain['macro_f1']:.4f}, "
        + calibration
    )
    print(per_class_table(plain))
    # Robustness, OOD and baseline results (cifar-evaluate --corruptions / --ood / --baseline)
    # stay until remeasured.
    kept = {
        k: v
        for k, v in (classifier.metrics or {}).items()
        if k in ("ood", "corruptions", "baseline")
    }
    classifier.metrics = {**report, **kept}
    if output is None:  # measured and printed only
        return report
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output / METRICS_FILE, json.dumps(classifier.metrics, indent=2))
    plot_confusion_matrix(
        plain["confusion_matrix"],
        classifier.class_names,
        output / "confusion_matrix.png",
        title=f"{name}: confusion matrix (test)",
    )
    plot_per_class(plain, output / "per_class.png", title=f"{name}: per-class metrics (test)")
    plot_reliability(report, output / "reliability.png", title=f"{name}: reliability (test)")
    if classifier.history and not (output / "learning_curves.png").exists():
        plot_learning_curves(classifier.history, output / "learning_curves.png")
    if errors:
        plot_error_gallery(classifier, data.x_test, data.y_test, raw, output / "errors.png")
    classifier.write_model_card(output)
    print(f"Wrote {output / METRICS_FILE}, plots and README.md")
    return report


def compare_with_baseline(
    classifier: CifarClassifier,
    baseline: CifarClassifier,
    data: Cifar10,
    output: str | os.PathLike | None,
    label: str,
    batch_size: int = 500,
) -> dict:
    """Measure `baseline` (say, the same architecture trained from scratch) on the same test
    images, plain and with flip TTA, and record it beside how it was trained under "baseline"
    in `output`'s metrics.json; the card shows the two side by side."""
    raw, mirrored = predict_with_flips(baseline, data.x_test, batch_size)
    report = evaluate_probabilities(
        raw, mirrored, data.y_test, baseline.class_names, baseline.temperature
    )
    training = baseline.config.get("training", {})
    entry = {
        "label": label,
        "accuracy": report["plain"]["accuracy"],
        "accuracy_tta": report["flip_tta"]["accuracy"],
        "n": report["plain"]["n"],
        "parameters": int(baseline.model.count_params()),
        **{
            key: training.get(key)
            for key in ("train_seconds", "epochs_run", "images_per_second", "command")
        },
        "code_version": training.get("code_version"),
    }
    print(
        f"baseline ({label}): accuracy {entry['accuracy']:.4f}, with flip TTA "
        f"{entry['accuracy_tta']:.4f}"
    )
    _update(classifier, output, "baseline", entry)
    return entry


def validation_images(
    classifier: CifarClassifier | list[CifarClassifier], data: Cifar10
) -> tuple[np.ndarray, np.ndarray]:
    """The validation images the model was trained without (from its recorded recipe); for a
    list of models, the images every one of them was trained without."""
    held_out = held_out_mask(classifier, data)
    if not held_out.any():
        raise ValueError("the models' validation splits share no image")
    return data.x_train[held_out], data.y_train[held_out]


def held_out_mask(classifier: CifarClassifier | list[CifarClassifier], data: Cifar10) -> np.ndarray:
    """Which of `data`'s training images the model (every model of a list) was trained without,
    from its recorded recipe: a boolean mask over `data.y_train`."""
    held_out = np.ones(len(data.y_train), dtype=bool)
    for model in classifier if isinstance(classifier, list) else [classifier]:
        recipe = model.config.get("training", {}).get("recipe")
        if recipe is None:
            raise ValueError("a model has no training record, so its validation split is unknown")
        split_seed = recipe.get("split_seed", recipe["seed"])  # older records: one seed for all
        held_out &= validation_mask(data.y_train, recipe["validation_fraction"], split_seed)
    return held_out


#: CIFAR-10 training pictures per class whose features make a detector's bank (5,000 in all:
#: 2.6 MB in float16; banks of 2,000 to 10,000 did equally well on validation, see
#: docs/ood_benchmark.md).
BANK_PER_CLASS = 500


def bank_rows(data: Cifar10, x_val: np.ndarray, per_class: int = BANK_PER_CLASS) -> np.ndarray:
    """Which training pictures make a detector's bank: `per_class` seeded ones per class (all of
    them, if fewer), none of them a validation picture (`x_val`); sorted row numbers."""
    val_rows = {image.tobytes() for image in x_val}
    keep = np.array([image.tobytes() not in val_rows for image in data.x_train])
    rng = np.random.default_rng(0)
    rows = [
        rng.choice(found, min(per_class, len(found)), replace=False)
        for found in (np.flatnonzero(keep & (data.y_train == c)) for c in np.unique(data.y_train))
    ]
    return np.sort(np.concatenate(rows))


def ood_bank(features: ImageNetFeatures, data: Cifar10, x_val: np.ndarray) -> np.ndarray:
    """The bank: unit features of the `bank_rows` training pictures, in float16."""
    return features(data.x_train[bank_rows(data, x_val)]).astype(np.float16)


def available_sources(
    limit: int | None = None, names: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Every outlier source (or those `names`d) whose files this machine has, capped at `limit`
    pictures each, saying which are missing and how to get them."""
    for name in names or []:
        if name not in OUTLIER_SOURCES:
            raise ValueError(
                f"unknown outlier source {name!r}; choose from {', '.join(OUTLIER_SOURCES)}"
            )
    loaded = {}
    for name in names or OUTLIER_SOURCES:
        try:
            loaded[name] = load_outliers(name)[:limit]
        except FileNotFoundError as error:
            print(f"OOD: source {name} skipped: {error}")
    if not any(not OUTLIER_SOURCES[name].held_out for name in loaded):
        raise FileNotFoundError(
            "no outlier source to fit a detector on: apt-get install dataset-fashion-mnist"
        )
    return loaded


def measure_ood(
    scorer: Callable[[np.ndarray], tuple[np.ndarray, dict[str, np.ndarray]]],
    x_val: np.ndarray,
    data: Cifar10,
    features: ImageNetFeatures,
    outlier_images: int | None = None,
    sources: list[str] | None = None,
) -> tuple[KnnDetector, dict]:
    """Fit a `KnnDetector` on the validation pictures against the choice sources, then report
    every score on the CIFAR-10 test set against every source, held-out sources apart.
    `scorer(views)` gives the model's probabilities and own scores."""
    scored = {
        name: (views, scorer(views)[1])
        for name, views in available_sources(outlier_images, sources).items()
    }
    choice = {n: v for n, v in scored.items() if not OUTLIER_SOURCES[n].held_out}
    detector, candidates = fit_knn_detector(
        features, ood_bank(features, data, x_val), (x_val, scorer(x_val)[1]), choice
    )
    _, test_own = scorer(data.x_test)

    def all_scores(views, own):
        raw = {"knn": knn_similarity(features(views), detector.bank, detector.k), **own}
        return {**raw, "detector": detector.combine(detector.standardised(raw))}

    inside = all_scores(data.x_test, test_own)
    per_source = {}
    for name, (views, own) in scored.items():
        outside = all_scores(views, own)
        per_source[name] = {
            "description": OUTLIER_SOURCES[name].description,
            "held_out": OUTLIER_SOURCES[name].held_out,
            "images": len(views),
            "flagged": float(np.mean(outside["detector"] < detector.threshold)),
            "scores": ood_report(inside, outside),
        }
    held_out = [s["scores"]["detector"] for s in per_source.values() if s["held_out"]]
    report = {
        "in_distribution": f"CIFAR-10 test ({len(data.x_test)} images)",
        "test_flagged": float(np.mean(inside["detector"] < detector.threshold)),
        "sources": per_source,
        "held_out": {
            "sources": [n for n, s in per_source.items() if s["held_out"]],
            "auroc": float(np.mean([s["auroc"] for s in held_out])) if held_out else None,
            "fpr_at_95_tpr": float(np.mean([s["fpr_at_95_tpr"] for s in held_out]))
            if held_out
            else None,
        },
        "candidates": candidates[:6],
    }
    chosen = ", ".join(f"{k}={getattr(detector, k)}" for k in ("k", "own_score", "own_weight"))
    print(
        f"OOD: kNN detector ({chosen}) chosen on validation; flags "
        f"{100 * report['test_flagged']:.1f}% of CIFAR-10 test; held-out sources: AUROC "
        f"{report['held_out']['auroc'] or float('nan'):.4f}, FPR at 95% TPR "
        f"{report['held_out']['fpr_at_95_tpr'] or float('nan'):.4f}"
    )
    for name, source in per_source.items():
        figures = source["scores"]["detector"]
        print(
            f"  {name:20s} {'held out' if source['held_out'] else 'choice  '} AUROC "
            f"{figures['auroc']:.4f}  FPR@95 {figures['fpr_at_95_tpr']:.4f}  flagged "
            f"{100 * source['flagged']:.1f}%"
        )
    return detector, report


def _detector_entry(detector: KnnDetector, x_val: np.ndarray, report: dict) -> dict:
    choice = [n for n, s in report["sources"].items() if not s["held_out"]]
    return {
        **detector.to_config(),
        "tpr": DEFAULT_TPR,
        "fitted_on": f"validation split ({len(x_val)} images) against {', '.join(choice)}",
    }


def features_for(model: CifarClassifier | CifarEnsemble, weights: str | None) -> ImageNetFeatures:
    """The ImageNet features to fit with: `weights` (an .h5 file, or "imagenet" to download),
    else those the model's folder (or an ensemble member's) already carries, else Keras's
    download."""
    if weights is None:
        for candidate in [model, *getattr(model, "members", [])]:
            folder = getattr(candidate, "source_dir", None)
            if folder is not None and (Path(folder) / FEATURES_FILE).is_file():
                return ImageNetFeatures.load(Path(folder) / FEATURES_FILE)
    return ImageNetFeatures.from_imagenet_file(weights or "imagenet")


def evaluate_ood(
    classifier: CifarClassifier,
    data: Cifar10,
    output: str | os.PathLike | None,
    features_weights: str | None = None,
    outlier_images: int | None = None,
    sources: list[str] | None = None,
) -> dict:
    """Fit and measure the model's out-of-distribution detector (`measure_ood`); with an
    `output` folder, its files and config entry go there (and drive the app's warning), the
    report to metrics.json and the card."""
    x_val, _ = validation_images(classifier, data)
    features = features_for(classifier, features_weights)
    detector, report = measure_ood(
        lambda v: model_scores(classifier, v), x_val, data, features, outlier_images, sources
    )
    entry = _detector_entry(detector, x_val, report)
    if output is not None:
        Path(output).mkdir(parents=True, exist_ok=True)
        entry = detector.save(output, entry)
        classifier.source_dir = Path(output)
    attach_detector(classifier, detector, entry)
    report["detector"] = entry
    _update(classifier, output, "ood", report)
    return report


def evaluate_ensemble_ood(
    ensemble: CifarEnsemble,
    data: Cifar10,
    output: str | os.PathLike,
    features_weights: str | None = None,
    outlier_images: int | None = None,
    sources: list[str] | None = None,
) -> dict:
    """`measure_ood` for an ensemble, fitted on the validation images none of its members trained
    on; the detector's files go into the ensemble folder, the report to its metrics and card."""
    x_val, _ = validation_images(list(ensemble.members), data)
    features = features_for(ensemble, features_weights)
    detector, report = measure_ood(
        lambda v: ensemble_scores(ensemble, v), x_val, data, features, outlier_images, sources
    )
    Path(output).mkdir(parents=True, exist_ok=True)
    entry = detector.save(output, _detector_entry(detector, x_val, report))
    ensemble.source_dir = Path(output)  # its detector files are there now, not where it came from
    attach_detector(ensemble, detector, entry)
    report["detector"] = entry
    ensemble.metrics = {**(ensemble.metrics or {}), "ood": report}
    ensemble.save_pretrained(output)
    return report


def evaluate_corruptions(
    classifier: CifarClassifier,
    data: Cifar10,
    output: str | os.PathLike | None,
    limit: int | None = None,
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
    member_folders: list[str | os.PathLike] | None = None,
    limit: int | None = None,
) -> dict:
    """Every member and the ensemble's soft vote on the same corrupted test images (each
    corrupted set made once). The ensemble folder gets its own table, the comparison of all of
    them (do they rank as on clean images?) and one plot; with `member_folders`, each member's
    table also goes into its own folder, exactly as `cifar-evaluate --corruptions --write`
    writes it."""
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
    for member, name, folder in zip(
        ensemble.members, names, member_folders or [None] * len(names), strict=True
    ):
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
    classifier: CifarClassifier,
    output: str | os.PathLike | None,
    report: dict,
    label: str | None = None,
) -> None:
    name = classifier.config["architecture"]
    print(
        f"{label or name} under corruptions: clean {report['clean']:.4f}, mean over "
        f"corruptions and severities {report['mean']:.4f}"
    )
    if output is not None:
        plot_corruption_accuracy({name: report}, Path(output) / "corruptions.png", title=name)
    _update(classifier, output, "corruptions", report)


def _update(
    classifier: CifarClassifier, output: str | os.PathLike | None, key: str, report: dict
) -> None:
    """Merge `report` into the classifier's metrics under `key`; unless `output` is None, write
    its metrics.json, config.json and model card there (the weights are untouched)."""
    classifier.metrics = {**(classifier.metrics or {}), key: report}
    if output is None:
        return
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output / METRICS_FILE, json.dumps(classifier.metrics, indent=2))
    classifier.write_config(output)
    classifier.write_model_card(output)
