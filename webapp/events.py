"""One function per app event: what the Gradio UI in app.py calls, tested here without a
browser. Each takes the served models and the visitor's input and returns plain data; the
library decides everything about models (`cifar_cnn`), this module only shapes it for the page.

>>> from webapp.serving import load_models
>>> from webapp.events import classify
>>> served = load_models()
>>> classify(served.get("resnet_fast"), "examples/test0001_ship.png").label  # 'ship'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.images import ImageLike, centre_square, resize_to_model, to_pil
from cifar_cnn.explain.gradcam import grad_cam_for, overlay_heatmap
from cifar_cnn.hub.layout import CARD_FILE
from cifar_cnn.trust.corruptions import corrupt
from cifar_cnn.trust.ood import (
    OUTLIER_WARNING,
    CheckedPrediction,
    OutlierCheck,
    predict_and_check,
    vote_and_check,
)
from cifar_cnn.voting import agreement, hard_vote
from webapp.serving import ServedModels

#: How many classes the app shows unless the visitor asks for more or fewer.
TOP_K = 5
DISPLAY_SIZE = 256
METHOD_NAMES = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++"}
#: Below this probability of the explained class, a caption warns that the map is weak evidence.
FAINT = 0.01


def model_view(image: ImageLike) -> tuple[Image.Image, np.ndarray]:
    """The decoded picture (RGB) and the 32x32 uint8 view the models actually see."""
    picture = to_pil(image)
    return picture, resize_to_model(picture)


def enlarge(view: np.ndarray, size: int = DISPLAY_SIZE) -> np.ndarray:
    """A 32x32 view enlarged with visible pixels (nearest neighbour), for display."""
    return np.asarray(Image.fromarray(view).resize((size, size), Image.Resampling.NEAREST))


def banner_text(check: OutlierCheck) -> str:
    """The out-of-distribution warning as a page shows it, above the label (markdown); "" when
    the picture is not flagged."""
    if not check.flagged:
        return ""
    reason = check.reason[:1].upper() + check.reason[1:]
    return f"### ⚠ This may not be one of the ten classes\n{reason}"


@dataclass(frozen=True)
class Classification(CheckedPrediction):
    """The library's answer (label, top `probabilities`, the out-of-distribution `check`), with
    the 32x32 view the model saw, enlarged for display."""

    view: np.ndarray | None = None


def classify(classifier: CifarClassifier, image: ImageLike, top_k: int = TOP_K) -> Classification:
    _, view = model_view(image)
    return classify_view(classifier, view, top_k)


def classify_view(
    classifier: CifarClassifier, view: np.ndarray, top_k: int = TOP_K
) -> Classification:
    """Classify a 32x32 uint8 view (what `model_view` returns)."""
    probabilities, checks = predict_and_check(classifier, view[None])
    top = classifier.top_classes(probabilities[0], top_k)
    return Classification(top, checks[0], view=enlarge(view))


ENSEMBLE_COLUMNS = ["model", "vote", "confidence", "runner-up"]


@dataclass
class EnsembleVote:
    rows: list[list[Any]]  # per model: name, vote, confidence, runner-up (ENSEMBLE_COLUMNS)
    soft: dict[str, float]  # soft-vote probabilities, every class
    hard_label: str
    all_agree: bool
    summary: str
    outlier: OutlierCheck  # the ensemble's own out-of-distribution check
    members: dict[str, dict[str, Any]]  # per model: label and confidence, for programs

    @property
    def warning(self) -> str:
        return self.outlier.notice

    def answer(self) -> dict[str, Any]:
        """What an API or MCP caller gets: both votes, each model's, and the warning."""
        return {
            **CheckedPrediction(self.soft, self.outlier).as_dict(),
            "majority_label": self.hard_label,
            "all_agree": self.all_agree,
            "models": self.members,
        }


def _percent(p: float) -> str:
    return f"{100 * p:.0f}%"


def ensemble_vote(served: ServedModels, image: ImageLike) -> EnsembleVote:
    """Each vote of the served ensemble's models (`ServedModels.ensemble`: the shipped ensemble,
    or every served model), the soft (weighted mean) and hard (weighted majority) results, and the
    ensemble's own out-of-distribution check (cifar_cnn.voting has the rules and the tie-break)."""
    ensemble = served.ensemble
    if ensemble is None:
        raise ValueError("no models are loaded")
    _, view = model_view(image)
    names = list(ensemble.class_names)
    member_probabilities, soft, checks = vote_and_check(ensemble, view[None])  # (M, 1, C)
    soft, outlier = soft[0], checks[0]
    hard = int(hard_vote(member_probabilities, ensemble.weights)[0])
    rows, members = [], {}
    for name, p in zip(ensemble.names, member_probabilities[:, 0], strict=True):
        first, second = np.argsort(p)[::-1][:2]
        runner_up = f"{names[second]} {_percent(p[second])}"
        rows.append([name, names[first], _percent(p[first]), runner_up])
        members[name] = {"label": names[first], "confidence": round(float(p[first]), 4)}
    agree = agreement(member_probabilities)["all_agree"] == 1.0
    votes = [row[1] for row in rows]
    for_hard = votes.count(names[hard])
    if 2 * for_hard > len(rows):
        majority = f"Majority vote: **{names[hard]}** ({for_hard} of {len(rows)} models)."
    elif len(set(votes)) == len(votes):
        majority = (
            f"No majority: a {len(votes)}-way tie, every model votes differently (the weighted "
            f"vote breaks it for **{names[hard]}**)."
        )
    else:
        majority = (
            f"No majority: only {for_hard} of {len(rows)} models vote **{names[hard]}**, the "
            "weighted vote's pick."
        )
    summary = (
        f"Soft vote: **{names[int(soft.argmax())]}** ({_percent(soft.max())}). {majority} "
        + ("All models agree." if agree else "The models disagree.")
    )
    return EnsembleVote(
        rows=rows,
        soft={names[i]: float(soft[i]) for i in np.argsort(soft)[::-1]},
        hard_label=names[hard],
        all_agree=agree,
        summary=summary,
        outlier=outlier,
        members=members,
    )


@dataclass
class Explanation:
    overlay: np.ndarray  # RGB uint8, the square-cropped picture with the heat laid over it
    explained_class: str
    predicted_class: str
    probability: float  # calibrated probability of the explained class
    layer: str
    method: str  # "gradcam" or "gradcam++"

    @property
    def caption(self) -> str:
        """What the overlay shows, in words (markdown)."""
        text = (
            f"{METHOD_NAMES[self.method]} of **{self.explained_class}** "
            f"({100 * self.probability:.0f}%) at layer `{self.layer}`; the model predicts "
            f"**{self.predicted_class}**."
        )
        if self.probability < FAINT:
            text += (
                " The model gives this class almost no probability: the map shows where what "
                "little evidence there is for it lies, scaled to full strength like any other."
            )
        return text


def explain(
    classifier: CifarClassifier,
    image: ImageLike,
    class_name: str | None = None,
    layer: str | None = None,
    method: str = "gradcam",
    opacity: float = 0.5,
    colormap: str = "jet",
) -> Explanation:
    """Grad-CAM (or Grad-CAM++) of `class_name` (default: the prediction), laid over the picture
    as the model sees it (centre square), at display size."""
    if layer is not None and not isinstance(layer, str):
        raise ValueError(f"layer must be a layer name, got {type(layer).__name__}")
    picture, view = model_view(image)
    names = list(classifier.class_names)
    if class_name is not None and class_name not in names:
        raise ValueError(f"unknown class {class_name!r}; choose one of {', '.join(names)}")
    index = None if class_name is None else names.index(class_name)
    result = grad_cam_for(classifier.model, layer).explain(view, class_index=index, method=method)
    square = centre_square(picture).resize((DISPLAY_SIZE, DISPLAY_SIZE), Image.Resampling.LANCZOS)
    shown = np.asarray(square)
    # The CAM's forward pass: no second prediction.
    probabilities = classifier.calibrate(result.probabilities)
    return Explanation(
        overlay=overlay_heatmap(shown, result.heatmap, opacity=opacity, colormap=colormap),
        explained_class=names[result.class_index],
        predicted_class=names[int(probabilities.argmax())],
        probability=float(probabilities[result.class_index]),
        layer=result.layer,
        method=method,
    )


@dataclass
class ComparedModel:
    name: str
    explanation: Explanation
    check: OutlierCheck  # this model's out-of-distribution check of the picture

    @property
    def caption(self) -> str:
        text = f"{self.name}: {self.explanation.predicted_class} "
        text += f"{100 * self.explanation.probability:.0f}%"
        return text + (f" (⚠ {OUTLIER_WARNING})" if self.check.flagged else "")


def compare(
    served: ServedModels, image: ImageLike, models: list[str] | None = None
) -> list[ComparedModel]:
    """Each chosen model's (default: every served one) prediction and Grad-CAM of one picture,
    decoded once, with that model's out-of-distribution check."""
    picture, view = model_view(image)
    compared = []
    for name in models or served.names:
        classifier = served.get(name)
        # The check needs the model's logits and ImageNet features, which Grad-CAM's pass lacks.
        check = classify_view(classifier, view, top_k=1).check
        compared.append(ComparedModel(name, explain(classifier, picture), check))
    return compared


@dataclass
class Robustness:
    clean: Classification  # the uncorrupted view's, the baseline to compare with
    corrupted: np.ndarray  # the corrupted 32x32 view, enlarged for display
    classification: Classification
    explanation: Explanation


def robustness(
    classifier: CifarClassifier,
    image: ImageLike,
    corruption: str,
    severity: int,
    top_k: int = TOP_K,
    opacity: float = 0.5,
    colormap: str = "jet",
) -> Robustness:
    """The picture as the model sees it under `corruption` at `severity` (0 to 5, as in
    `cifar-evaluate --corruptions`), with the prediction and Grad-CAM on the corrupted view."""
    _, view = model_view(image)
    corrupted = corrupt(view, corruption, int(severity))
    return Robustness(
        clean=classify_view(classifier, view, top_k),
        corrupted=enlarge(corrupted),
        classification=classify_view(classifier, corrupted, top_k),
        explanation=explain(classifier, corrupted, opacity=opacity, colormap=colormap),
    )


PLOTS = {
    "learning_curves.png": "Learning curves",
    "confusion_matrix.png": "Confusion matrix (test set)",
    "per_class.png": "Per-class precision, recall and F1 (test set)",
    "reliability.png": "Reliability (calibration) on the test set",
    "errors.png": "Most confident mistakes, with Grad-CAM",
}


def model_card(classifier: CifarClassifier) -> tuple[str, list[tuple[str, str]]]:
    """The model's card (README.md) as markdown without its front matter and image lines, and
    its plots as (path, caption) pairs, for display."""
    folder = classifier.source_dir
    readme = folder / CARD_FILE if folder else None
    if readme is None or not readme.is_file():
        return f"No model card for {classifier.config.get('architecture', 'this model')}.", []
    text = readme.read_text()
    if text.startswith("---"):
        text = text.split("---", 2)[2]
    text = "\n".join(line for line in text.splitlines() if not line.startswith("!["))
    plots = [(str(folder / name), caption) for name, caption in PLOTS.items()
             if (folder / name).is_file()]  # fmt: skip
    return text.strip(), plots


BATCH_COLUMNS = ["file", "model", "label", "confidence", "warning", "error"]
#: The Batch table's warning for a picture the model's out-of-distribution check flags.
BATCH_WARNING = OUTLIER_WARNING


def classify_batch(
    served: ServedModels, files: list[str], models: list[str] | None = None, progress=None
) -> tuple[list[list[Any]], list[tuple[str, np.ndarray]]]:
    """One row per (file, model): file name, model, label, confidence, and a warning when the
    model's out-of-distribution check flags the picture; a file that cannot be read gets one row
    with the reason in `error` and the batch goes on. Also each readable file's name and 32x32
    view, for thumbnails. Each model answers for all the pictures at once (one batched pass)."""
    names = models or served.names
    chosen = [served.get(name) for name in names]
    views, errors = [], {}  # readable files' views; unreadable files' messages by position
    for index, file in enumerate(files):
        if progress is not None:
            progress(index / max(1, len(files) + len(chosen)), desc=f"Reading {Path(file).name}")
        try:
            views.append((Path(file).name, model_view(file)[1]))
        except ValueError as error:
            errors[index] = str(error).replace(str(file), Path(file).name)
    answers = []  # per model: (probabilities (N, 10), checks) over the readable files
    for index, (name, classifier) in enumerate(zip(names, chosen, strict=True)):
        if progress is not None:
            progress((len(files) + index) / (len(files) + len(chosen)), desc=f"Running {name}")
        if views:
            answers.append(predict_and_check(classifier, np.stack([v for _, v in views])))
    rows, readable = [], iter(range(len(views)))
    for index, file in enumerate(files):
        if index in errors:
            rows.append([Path(file).name, "", "", None, "", errors[index]])
            continue
        i = next(readable)
        for name, classifier, (probabilities, checks) in zip(names, chosen, answers, strict=True):
            label, confidence = next(iter(classifier.top_classes(probabilities[i], 1).items()))
            warning = BATCH_WARNING if checks[i].flagged else ""
            rows.append([Path(file).name, name, label, round(confidence, 4), warning, ""])
    return rows, views
