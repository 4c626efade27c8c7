"""Regenerate the results tables from the shipped models' metrics.json and config.json.

    python scripts/results_table.py            # rewrites the tables between their markers
    python scripts/results_table.py --print    # prints them instead

README.md holds the results table; docs/trust.md the trust table (out-of-distribution detection
and accuracy under corruptions), the corruption table and the calibration table. The first two
read what `cifar-evaluate --ood --corruptions` and `cifar-ensemble ... --corruptions` wrote into
each folder; a blank cell was not measured.

Accuracy figures are read from each folder's metrics.json (written by cifar-evaluate on the
10,000 test images); the milliseconds per image are measured now: the median of 200
`CifarClassifier.predict` calls on one real test image, after a warm-up call.
"""

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np

import cifar_cnn  # noqa: F401  (oneDNN on before TensorFlow loads)
from cifar_cnn.atomic import atomic_write_text
from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.cifar10 import REPO_ROOT, load_slice
from cifar_cnn.hub.layout import model_folders, weights_file
from cifar_cnn.voting import report_label

README = REPO_ROOT / "README.md"
TRUST_DOC = REPO_ROOT / "docs" / "trust.md"


def milliseconds_per_image(classifier: CifarClassifier, image: np.ndarray, calls: int = 200):
    classifier.predict(image)
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        classifier.predict(image)
        samples.append(1000 * (time.perf_counter() - started))
    return float(np.median(samples))


def table(timed: bool = True) -> str:
    """README's results table; `timed=False` leaves the milliseconds per image blank (nothing is
    loaded or run)."""
    image = load_slice().x_test[:1] if timed else None
    rows = [
        "| model | test accuracy | with flip TTA | parameters | size on disk | training minutes "
        "| ms per image |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for folder in model_folders(REPO_ROOT / "models"):
        metrics = json.loads((folder / "metrics.json").read_text())
        config = json.loads((folder / "config.json").read_text())
        size = weights_file(folder).stat().st_size / 2**20
        minutes = config.get("training", {}).get("train_seconds", float("nan")) / 60
        rows.append(
            f"| [{folder.name}](models/{folder.name}) "
            f"| {100 * metrics['plain']['accuracy']:.2f}% "
            f"| {100 * metrics['flip_tta']['accuracy']:.2f}% "
            f"| {config['parameters']:,} | {size:.1f} MB | {minutes:.0f} "
            + (
                f"| {milliseconds_per_image(CifarClassifier.from_pretrained(folder), image):.1f} |"
                if timed
                else "| |"
            )
        )
    ensemble = REPO_ROOT / "models" / "ensemble" / "metrics.json"
    if ensemble.exists():
        metrics = json.loads(ensemble.read_text())
        tta = metrics.get("flip_tta", {}).get("soft_accuracy")
        rows.append(
            f"| [ensemble](models/ensemble) (soft vote of {len(metrics['members'])}) "
            f"| {100 * metrics['soft']['accuracy']:.2f}% "
            f"| {f'{100 * tta:.2f}%' if tta is not None else ''} | | | | |"
        )
    return "\n".join(rows)


def trust_table(models_link: str = "models") -> str:
    """OOD detection per model, and accuracy under corruptions where it was measured; each model
    links to `models_link`/NAME (relative to the page the table goes in)."""
    reports = {
        path.parent.name: json.loads(path.read_text())
        for path in sorted((REPO_ROOT / "models").glob("*/metrics.json"))
    }
    reports = {name: m for name, m in reports.items() if m.get("ood") or m.get("corruptions")}
    with_corruptions = any(m.get("corruptions") for m in reports.values())
    header = (
        "| model | OOD detector | CIFAR-10 test flagged | held-out sources: FPR at 95% TPR "
        "| held-out sources: AUROC | Fashion-MNIST: FPR at 95% TPR |"
    )
    rule = "|---|---|---:|---:|---:|---:|"
    if with_corruptions:
        header += " clean accuracy | mean accuracy under corruptions |"
        rule += "---:|---:|"
    rows = [header, rule]
    for name, metrics in reports.items():
        cells = ["", "", "", "", ""]
        ood = metrics.get("ood")
        if ood and "sources" in ood:
            detector, held = ood["detector"], ood["held_out"]
            own = f" + {detector['own_weight']:g} x {detector['own_score']}"
            fashion = ood["sources"].get("fashion_mnist", {}).get("scores", {}).get("detector")
            cells = [
                f"kNN (k={detector['k']}){own if detector.get('own_score') else ''}",
                f"{100 * ood['test_flagged']:.1f}%",
                f"{100 * held['fpr_at_95_tpr']:.1f}%" if held["fpr_at_95_tpr"] is not None else "",
                f"{held['auroc']:.3f}" if held["auroc"] is not None else "",
                f"{100 * fashion['fpr_at_95_tpr']:.1f}%" if fashion else "",
            ]
        if with_corruptions:
            c = metrics.get("corruptions")
            cells += [f"{100 * c['clean']:.2f}%", f"{100 * c['mean']:.2f}%"] if c else ["", ""]
        rows.append(f"| [{name}]({models_link}/{name}) | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def corruption_table() -> str:
    """Accuracy per corruption (mean over its five severities) for every measured model, and
    whether the models rank under corruptions as they do on clean images."""
    reports = {}
    for path in sorted((REPO_ROOT / "models").glob("*/metrics.json")):
        report = json.loads(path.read_text()).get("corruptions")
        if report:
            reports[report_label(path.parent.name)] = report
    if not reports:
        return "Not measured yet: run the command above."
    names = list(reports)
    rows = ["| corruption | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for corruption in next(iter(reports.values()))["corruptions"]:
        cells = [
            f"{100 * np.mean(list(r['corruptions'][corruption].values())):.1f}%"
            for r in reports.values()
        ]
        rows.append(f"| {corruption.replace('_', ' ')} | " + " | ".join(cells) + " |")
    for label, key in (("**mean**", "mean"), ("clean", "clean")):
        rows.append(
            f"| {label} | " + " | ".join(f"{100 * r[key]:.2f}%" for r in reports.values()) + " |"
        )
    by_clean = sorted(names, key=lambda n: -reports[n]["clean"])
    by_corrupted = sorted(names, key=lambda n: -reports[n]["mean"])
    verdict = (
        f"Ranked by clean accuracy: {', '.join(by_clean)}; by mean accuracy under corruptions: "
        f"{', '.join(by_corrupted)}"
        + (" (the same order)." if by_clean == by_corrupted else " (the order changes).")
    )
    return "\n".join(rows) + "\n\n" + verdict


def calibration_table() -> str:
    """Each shipped model's expected calibration error on the test set, raw and after the
    temperature its own validation split gave it (as its card shows them)."""
    rows = [
        "| model | raw | after temperature scaling | temperature |",
        "|---|---:|---:|---:|",
    ]
    for folder in model_folders(REPO_ROOT / "models"):
        metrics = json.loads((folder / "metrics.json").read_text())
        scaled = metrics["temperature_scaled"]
        rows.append(
            f"| {folder.name} | {100 * metrics['plain']['ece']:.2f}% "
            f"| {100 * scaled['ece']:.2f}% | {scaled['temperature']:.4f} |"
        )
    return "\n".join(rows)


def replace_between_markers(text: str, marker: str, table: str, path: Path) -> str:
    """`text` with what lies between `<!-- marker:start -->` and `<!-- marker:end -->` replaced."""
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path} has no {start} ... {end} markers")
    block = f"{start}\n{table}\n{end}"
    return pattern.sub(lambda _: block, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--print", action="store_true", help="print instead of editing the docs")
    args = parser.parse_args()
    pages = {
        README: [("results", table())],
        # docs/trust.md sits one folder down: its links to the model folders start with ../
        TRUST_DOC: [
            ("trust", trust_table("../models")),
            ("corruptions", corruption_table()),
            ("calibration", calibration_table()),
        ],
    }
    for path, tables in pages.items():
        text = path.read_text()
        for marker, body in tables:
            print(body)
            if not args.print:
                text = replace_between_markers(text, marker, body, path)
        if not args.print:
            atomic_write_text(path, text)


if __name__ == "__main__":
    main()
