"""The logic behind the Gradio app: which models to serve, and the answer to each request.

app.py holds only the UI and calls these functions; they are tested here, without a browser.

>>> from cifar_cnn.service import load_models, classify
>>> served = load_models()                      # $CIFAR_MODELS, else the shipped models/ folders
>>> result = classify(served.get("resnet_fast"), "examples/test0001_ship.png")
>>> result.top                                    # {'ship': 0.98, ...}
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cifar_cnn.calibration import apply_temperature, softmax_with_temperature
from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.corruptions import corrupt
from cifar_cnn.data import REPO_ROOT
from cifar_cnn.ensemble import agreement, hard_vote, soft_vote
from cifar_cnn.files import atomic_write_bytes
from cifar_cnn.gradcam import grad_cam_for, overlay_heatmap
from cifar_cnn.ood import energy_score, logits_for
from cifar_cnn.preprocessing import ImageLike, resize_to_model, to_pil

MODELS_ENV = "CIFAR_MODELS"
SHIPPED_MODELS = REPO_ROOT / "models"
#: Below this top probability (after calibration) the app warns that the picture may not show
#: one of the ten classes.
LOW_CONFIDENCE = 0.5
DISPLAY_SIZE = 256


@dataclass(frozen=True)
class LoadFailure:
    """A model source that did not load. `error_type` (such as "FileNotFoundError") is safe to
    show anyone; `reason` can name server paths, so it belongs in the server's log only."""

    source: str
    error_type: str
    reason: str


@dataclass
class ServedModels:
    """The classifiers being served and the sources that failed to load, by display name."""

    classifiers: dict[str, CifarClassifier] = field(default_factory=dict)
    failures: dict[str, LoadFailure] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.classifiers)

    def get(self, name: str) -> CifarClassifier:
        if name not in self.classifiers:
            raise ValueError(f"unknown model {name!r}; loaded: {', '.join(self.names) or 'none'}")
        return self.classifiers[name]


def model_sources(setting: str | None = None) -> list[str]:
    """Sources to serve: `setting` (comma-separated folders or Hub repo ids, each with optional
    @revision), else $CIFAR_MODELS, else every shipped folder in models/ (flagship first)."""
    setting = setting if setting is not None else os.environ.get(MODELS_ENV, "")
    sources = [s.strip() for s in setting.split(",") if s.strip()]
    if sources:
        return sources
    shipped = sorted(p.parent for p in SHIPPED_MODELS.glob("*/model.keras"))
    shipped.sort(key=lambda p: p.name != "resnet_fast")
    return [str(p) for p in shipped]


def display_name(source: str) -> str:
    """How visitors see a model source: a local path by its last part (never the server's
    folders), a Hub repo id ("owner/name", optionally "@revision") as given."""
    repo_id = source.split("@", 1)[0]
    looks_local = repo_id.startswith(("/", ".", "~")) or repo_id.count("/") > 1
    return Path(source).name if looks_local or Path(source).is_dir() else source


def load_models(sources: list[str] | None = None) -> ServedModels:
    """Load each source with `CifarClassifier.from_pretrained`; failures are kept with their
    reason (and the rest still serve)."""
    served = ServedModels()
    for source in sources if sources is not None else model_sources():
        name = display_name(source)
        try:
            served.classifiers[name] = CifarClassifier.from_pretrained(source)
        except Exception as error:  # noqa: BLE001 - any failure is reported, never fatal
            reason = f"{type(error).__name__}: {error}"
            served.failures[name] = LoadFailure(source, type(error).__name__, reason)
    return served


def uploaded_path(
    upload: str | os.PathLike | dict | None, upload_folder: str | os.PathLike | None = None
) -> str:
    """The local file of an upload, as the app receives it: a path, or Gradio's file record
    (``{"path": ..., "orig_name": ...}``) when an event skips Gradio's own image decoding so
    that this library, not Gradio, decodes and judges every uploaded file. With
    `upload_folder`, a file record must point inside it."""
    if upload is None:
        raise ValueError("no image: please upload one first")
    if isinstance(upload, dict):
        if not upload.get("path"):
            raise ValueError("the upload has no file; please upload the image again")
        path = Path(str(upload["path"])).resolve()
        if upload_folder is not None and not path.is_relative_to(Path(upload_folder).resolve()):
            # Only files uploaded to this server: never a path on it that a client names.
            raise ValueError("the upload is not a file uploaded to this app; please upload it")
        return str(upload["path"])
    if isinstance(upload, (str, os.PathLike)):
        return str(upload)
    raise ValueError(f"expected an uploaded file, got {type(upload).__name__}")


def upload_error_message(error: Exception, upload: str | os.PathLike | dict | None) -> str:
    """`error`'s message as the uploader should read it: the server's temporary path to the
    file replaced by the name the file had on their machine."""
    message = str(error)
    if isinstance(upload, dict) and upload.get("path") and upload.get("orig_name"):
        message = message.replace(str(upload["path"]), str(upload["orig_name"]))
    return message


def model_view(image: ImageLike) -> tuple[Image.Image, np.ndarray]:
    """The decoded picture (RGB) and the 32x32 uint8 view the models actually see."""
    picture = to_pil(image)
    return picture, resize_to_model(picture)


def enlarge(view: np.ndarray, size: int = DISPLAY_SIZE) -> np.ndarray:
    """A 32x32 view enlarged with visible pixels (nearest neighbour), for display."""
    return np.asarray(Image.fromarray(view).resize((size, size), Image.Resampling.NEAREST))


def image_file(image: np.ndarray, folder: str | os.PathLike) -> str:
    """`image` saved as a PNG in `folder`, named by its content and written atomically: the
    path to hand a UI instead of the array.

    Gradio 6 writes an array output into its cache in place (`Path.write_bytes` on a name
    derived from the content), so when concurrent requests produce the same picture, one
    client can download the file while another request is rewriting it: truncated downloads
    under load. A path output goes through Gradio's atomic copy instead, and a file here is
    complete from the moment its name exists.
    """
    data = _png_bytes(image)
    return _store(data, Path(folder) / _png_name(data))


def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _png_name(data: bytes) -> str:
    return f"{_digest(data, 32)}.png"


def _digest(data: bytes, length: int) -> str:
    return hashlib.sha256(data).hexdigest()[:length]


def _store(data: bytes, path: Path) -> str:
    """Write `data` to `path` (a name derived from its content) unless it is there already."""
    try:
        os.utime(path)  # reused: fresh again, so OutputFolder's pruning keeps it
    except FileNotFoundError:
        atomic_write_bytes(path, data)
    return str(path)


class OutputFolder:
    """A temporary folder for a server's output files (images, CSV exports) that does not grow
    for ever.

    Files not written or reused for `max_age_seconds` are removed (leftover temporaries of
    interrupted writes too); the check runs when a file is saved, at most once every
    `prune_every_seconds`. The UI hands Gradio a path, which Gradio copies into its own cache
    before answering, so an hour is far longer than a file is needed here.

    >>> outputs = OutputFolder()
    >>> path = outputs.image_file(np.zeros((32, 32, 3), np.uint8))
    >>> csv_path = outputs.csv_file([["cat.png", "resnet_fast", "cat", 0.93, ""]])
    """

    def __init__(
        self,
        max_age_seconds: float = 3600,
        prune_every_seconds: float = 60,
        folder: str | os.PathLike | None = None,
    ):
        self.path = Path(folder or tempfile.mkdtemp(prefix="cifar-app-outputs-"))
        self.path.mkdir(parents=True, exist_ok=True)
        self.max_age_seconds = max_age_seconds
        self.prune_every_seconds = prune_every_seconds
        self._last_prune = time.monotonic()
        self._lock = threading.RLock()

    def image_file(self, image: np.ndarray) -> str:
        """`image` as a PNG in this folder (see `image_file`)."""
        data = _png_bytes(image)
        return self._save(data, _png_name(data))

    def csv_file(self, rows: list[list[Any]], columns: list[str] | None = None) -> str:
        """A table (by default `classify_batch`'s) as CSV in this folder, named
        `predictions-<content hash>.csv`."""
        data = _csv_text(rows, columns or BATCH_COLUMNS).encode("utf-8")
        return self._save(data, f"predictions-{_digest(data, 12)}.csv")

    def _save(self, data: bytes, name: str) -> str:
        with self._lock:  # a file being reused is never the one a prune removes
            self.prune_if_due()
            return _store(data, self.path / name)

    def prune_if_due(self) -> int:
        """Remove the files older than `max_age_seconds` if a check is due; how many went."""
        with self._lock:
            if time.monotonic() - self._last_prune < self.prune_every_seconds:
                return 0
            self._last_prune = time.monotonic()
            oldest, removed = time.time() - self.max_age_seconds, 0
            for path in self.path.iterdir():
                try:
                    if path.is_file() and path.stat().st_mtime < oldest:
                        path.unlink(missing_ok=True)
                        removed += 1
                except OSError:  # gone meanwhile, or not ours to remove: not worth a failure
                    continue
            return removed


@dataclass
class OutlierCheck:
    """Whether a picture may not show one of the ten classes, by the model's fitted detector
    (`cifar-evaluate --ood`) or, for a model without one, the top probability."""

    score_name: str  # "msp" or "energy"
    score: float
    threshold: float
    fitted: bool  # False: the LOW_CONFIDENCE fallback, not a measured detector

    @property
    def flagged(self) -> bool:
        return self.score < self.threshold

    @property
    def notice(self) -> str:
        if not self.flagged:
            return ""
        if not self.fitted:
            return (
                f"Low confidence ({100 * self.score:.0f}%): this may not be one of the 10 classes."
            )
        return (
            f"This may not be one of the 10 classes: its {self.score_name} score "
            f"{self.score:.3g} is below {self.threshold:.3g}, which 95% of CIFAR-10 validation "
            f"images reach."
        )


def _uses_energy(classifier: CifarClassifier) -> bool:
    """Whether the model's fitted detector scores pictures by the energy of their logits."""
    return (classifier.config.get("ood_detector") or {}).get("score") == "energy"


def outlier_check(
    classifier: CifarClassifier,
    view: np.ndarray,
    probabilities: np.ndarray,
    logits: np.ndarray | None = None,
) -> OutlierCheck:
    """`view`'s out-of-distribution check; `probabilities` are its calibrated predictions and
    `logits`, if already computed, its pre-softmax scores."""
    detector = classifier.config.get("ood_detector")
    if detector is None:
        return OutlierCheck("msp", float(probabilities.max()), LOW_CONFIDENCE, fitted=False)
    if _uses_energy(classifier):
        if logits is None:
            logits = logits_for(classifier, view[None])[0]
        score = float(energy_score(logits[None])[0])
    else:
        score = float(probabilities.max())
    return OutlierCheck(detector["score"], score, float(detector["threshold"]), fitted=True)


@dataclass
class Classification:
    top: dict[str, float]  # class name -> calibrated probability, most likely first
    view: np.ndarray  # the 32x32 input, enlarged for display
    outlier: OutlierCheck

    @property
    def label(self) -> str:
        return next(iter(self.top))

    @property
    def notice(self) -> str:
        return self.outlier.notice


def classify(classifier: CifarClassifier, image: ImageLike, top_k: int = 5) -> Classification:
    _, view = model_view(image)
    return classify_view(classifier, view, top_k)


def classify_view(classifier: CifarClassifier, view: np.ndarray, top_k: int = 5) -> Classification:
    """Classify a 32x32 uint8 view (what `model_view` returns)."""
    classes = len(classifier.class_names)
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)):
        raise ValueError(f"top_k must be a whole number 1 to {classes}, got {top_k!r}")
    if not 1 <= top_k <= classes:
        raise ValueError(f"top_k must be 1 to {classes}, got {top_k}")
    logits = None
    if _uses_energy(classifier):
        # One forward pass gives both what people see and the energy score.
        logits = logits_for(classifier, view[None])[0]
        probabilities = softmax_with_temperature(logits, classifier.temperature)
    else:
        probabilities = classifier.predict(view)
    order = np.argsort(probabilities)[::-1][:top_k]
    top = {classifier.class_names[i]: float(probabilities[i]) for i in order}
    outlier = outlier_check(classifier, view, probabilities, logits)
    return Classification(top, enlarge(view), outlier)


@dataclass
class EnsembleVote:
    rows: list[list[Any]]  # per model: name, label, confidence, then one probability per class
    soft: dict[str, float]  # soft-vote probabilities, every class
    hard_label: str
    all_agree: bool
    summary: str
    outlier: bool  # most members' out-of-distribution checks flag the picture


def ensemble_vote(served: ServedModels, image: ImageLike) -> EnsembleVote:
    """Every served model's vote, the soft (weighted mean) and hard (weighted majority) results.

    Members are weighted by their validation accuracy where their config records it, else
    equally; see cifar_cnn.ensemble for the rules and the tie-break."""
    if not served.classifiers:
        raise ValueError("no models are loaded")
    _, view = model_view(image)
    classifiers = list(served.classifiers.values())
    names = classifiers[0].class_names
    member_probabilities = np.stack([c.predict(view[None]) for c in classifiers])
    recorded = [c.config.get("training", {}).get("best_val_accuracy") for c in classifiers]
    weights = None if None in recorded else np.array(recorded)
    soft = soft_vote(member_probabilities, weights)[0]
    hard = int(hard_vote(member_probabilities, weights)[0])
    rows = [
        [name, names[int(p[0].argmax())], round(float(p[0].max()), 4)]
        + [round(float(v), 4) for v in p[0]]
        for name, p in zip(served.names, member_probabilities, strict=True)
    ]
    agree = agreement(member_probabilities)["all_agree"] == 1.0
    votes = sum(row[1] == names[hard] for row in rows)
    checks = [
        outlier_check(c, view, p[0]) for c, p in zip(classifiers, member_probabilities, strict=True)
    ]
    doubters = sum(check.flagged for check in checks)
    outlier = 2 * doubters > len(checks)
    summary = (
        f"Soft vote: **{names[int(soft.argmax())]}** ({100 * soft.max():.0f}%). "
        f"Majority vote: **{names[hard]}** ({votes} of {len(rows)} models). "
        + ("All models agree." if agree else "The models disagree.")
    )
    if outlier:
        summary = (
            f"**This may not be one of the 10 classes**: {doubters} of {len(checks)} models' "
            f"out-of-distribution checks flag it.\n\n" + summary
        )
    return EnsembleVote(
        rows=rows,
        soft={names[i]: float(soft[i]) for i in np.argsort(soft)[::-1]},
        hard_label=names[hard],
        all_agree=agree,
        summary=summary,
        outlier=outlier,
    )


@dataclass
class Explanation:
    overlay: np.ndarray  # RGB uint8, the square-cropped picture with the heat laid over it
    explained_class: str
    predicted_class: str
    probability: float  # calibrated probability of the explained class
    layer: str


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
    side = min(picture.size)
    left, top = (picture.width - side) // 2, (picture.height - side) // 2
    square = picture.crop((left, top, left + side, top + side))
    shown = np.asarray(square.resize((DISPLAY_SIZE, DISPLAY_SIZE), Image.Resampling.LANCZOS))
    probabilities = result.probabilities  # the CAM's forward pass: no second prediction
    if classifier.temperature is not None:
        probabilities = apply_temperature(probabilities, classifier.temperature)
    return Explanation(
        overlay=overlay_heatmap(shown, result.heatmap, opacity=opacity, colormap=colormap),
        explained_class=names[result.class_index],
        predicted_class=names[int(probabilities.argmax())],
        probability=float(probabilities[result.class_index]),
        layer=result.layer,
    )


@dataclass
class Robustness:
    corrupted: np.ndarray  # the corrupted 32x32 view, enlarged for display
    classification: Classification
    explanation: Explanation


def robustness(
    classifier: CifarClassifier,
    image: ImageLike,
    corruption: str,
    severity: int,
    top_k: int = 5,
    opacity: float = 0.5,
    colormap: str = "jet",
) -> Robustness:
    """The picture as the model sees it under `corruption` at `severity` (0 to 5, as in
    `cifar-evaluate --corruptions`), with the prediction and Grad-CAM on the corrupted view."""
    _, view = model_view(image)
    corrupted = corrupt(view, corruption, int(severity))
    return Robustness(
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
    readme = folder / "README.md" if folder else None
    if readme is None or not readme.is_file():
        return f"No model card for {classifier.config.get('architecture', 'this model')}.", []
    text = readme.read_text()
    if text.startswith("---"):
        text = text.split("---", 2)[2]
    text = "\n".join(line for line in text.splitlines() if not line.startswith("!["))
    plots = [(str(folder / name), caption) for name, caption in PLOTS.items()
             if (folder / name).is_file()]  # fmt: skip
    return text.strip(), plots


BATCH_COLUMNS = ["file", "model", "label", "confidence", "error"]


def classify_batch(
    served: ServedModels, files: list[str], models: list[str] | None = None, progress=None
) -> list[list[Any]]:
    """One row per (file, model): file name, model, label, confidence; a file that cannot be
    read gets one row with the reason in `error` and the batch goes on."""
    chosen = [served.get(name) for name in (models or served.names)]
    names = models or served.names
    rows = []
    for index, file in enumerate(files):
        if progress is not None:
            progress(index / max(1, len(files)), desc=f"{Path(file).name}")
        try:
            _, view = model_view(file)
        except ValueError as error:
            message = str(error).replace(str(file), Path(file).name)
            rows.append([Path(file).name, "", "", None, message])
            continue
        for name, classifier in zip(names, chosen, strict=True):
            probabilities = classifier.predict(view)
            best = int(probabilities.argmax())
            rows.append(
                [Path(file).name, name, classifier.class_names[best],
                 round(float(probabilities[best]), 4), ""]
            )  # fmt: skip
    return rows


def _csv_text(rows: list[list[Any]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()


HISTORY_COLUMNS = ["time", "model", "label", "confidence"]
HISTORY_LIMIT = 50


def add_to_history(
    history: list[dict[str, Any]] | None, view: np.ndarray, model: str, result: Classification
) -> list[dict[str, Any]]:
    """This browser session's predictions, newest first (kept in the session, never on disk)."""
    entry = {
        "time": time.strftime("%H:%M:%S"),
        "model": model,
        "label": result.label,
        "confidence": round(next(iter(result.top.values())), 4),
        # The 32x32 view, not the enlarged one: 3 KB a row keeps sessions small on the server.
        # A copy: a slice would keep the whole enlarged picture (192 KB) alive in the session.
        "thumbnail": view[:: view.shape[0] // 32, :: view.shape[1] // 32][:32, :32].copy(),
    }
    return [entry, *(history or [])][:HISTORY_LIMIT]
