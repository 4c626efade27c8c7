"""Out-of-distribution detection: a score per prediction that says "this may not be one of the
ten classes", a threshold chosen on validation data, and its evaluation on real outliers.

>>> clf.check("coffee.jpg").warning             # the shipped detector, in plain words
'This may not be one of the 10 classes: it looks unlike the photos the model learned from ...'
>>> from cifar_cnn.data.outliers import load_outliers
>>> from cifar_cnn.trust.ood import ood_scores, auroc, fpr_at_tpr
>>> inside = ood_scores(clf, cifar_test_images)["energy"]        # higher: more in-distribution
>>> outside = ood_scores(clf, load_outliers("fashion_mnist"))["energy"]
>>> auroc(inside, outside), fpr_at_tpr(inside, outside, 0.95)

Scores (all "higher means more like CIFAR-10"):

- ``msp``: the maximum softmax probability (Hendrycks and Gimpel, 2017);
- ``energy``: the log-sum-exp of the logits, the negative free energy (Liu et al., 2020);
- for an ensemble (`ensemble_ood_scores`): the soft vote's maximum probability, the members'
  mean energy, and their vote share (the weighted share voting for the soft vote's class);
- ``knn``: the similarity of a picture's ImageNet features to its k-th nearest neighbour among
  CIFAR-10 training pictures' (Sun et al., 2022), and `Mahalanobis` distances (Lee et al., 2018),
  both measured in docs/ood_benchmark.md.

The shipped detector (`KnnDetector`, fitted by `fit_knn_detector` through `cifar-evaluate --ood`)
adds the kNN score to the model's own, each standardised on validation; `predict_and_check` and
`check_image` (`CifarClassifier.check`) apply it, with the reason in plain words.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from cifar_cnn.atomic import atomic_path
from cifar_cnn.data.cifar10 import top_classes
from cifar_cnn.data.images import ImageLike, to_model_input
from cifar_cnn.explain.probing import logits_of_last
from cifar_cnn.hub.layout import OOD_BANK_FILE, sha256
from cifar_cnn.trust.calibration import softmax_with_temperature
from cifar_cnn.trust.features import FEATURES_DESCRIPTION, FEATURES_FILE, ImageNetFeatures
from cifar_cnn.voting import soft_vote

DEFAULT_TPR = 0.95


def logits_model(model: keras.Model) -> keras.Model:
    """`model` up to its pre-softmax class scores (its last layer must be a softmax Dense or
    Activation, as every cifar_cnn architecture's is)."""
    last = model.layers[-1]
    trunk = keras.Model(model.inputs, last.input)
    inputs = keras.Input(model.inputs[0].shape[1:], dtype=model.inputs[0].dtype)
    return keras.Model(inputs, logits_of_last(last, trunk(inputs)))


def logits_for(classifier: Any, images: ImageLike | list[ImageLike], batch_size: int = 500):
    """Pre-softmax class scores of a CifarClassifier for `images` (anything `predict` takes)."""
    forward = getattr(classifier, "_logits_forward", None)
    if forward is None:
        # One traced function per classifier, as for predict: an eager Keras call costs tens
        # of milliseconds per request, the traced one a few.
        model = logits_model(classifier.model)
        spec = tf.TensorSpec((None, 32, 32, 3), tf.uint8)
        forward = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        classifier._logits_forward = forward
    batch, _ = to_model_input(images)
    return np.concatenate(
        [forward(batch[i : i + batch_size]).numpy() for i in range(0, len(batch), batch_size)]
    )


def msp_score(probabilities: np.ndarray) -> np.ndarray:
    return np.max(probabilities, axis=-1)


def energy_score(logits: np.ndarray) -> np.ndarray:
    top = np.max(logits, axis=-1, keepdims=True)
    return (top + np.log(np.sum(np.exp(logits - top), axis=-1, keepdims=True)))[..., 0]


def model_scores(classifier: Any, views: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Calibrated probabilities (N, 10) of a batch of 32x32 views and the model's own scores,
    {"msp": (N,), "energy": (N,)}, from one forward pass: msp on the calibrated probabilities
    (the ones people see), energy on the raw logits."""
    logits = logits_for(classifier, views)
    probabilities = softmax_with_temperature(logits, classifier.temperature)
    return probabilities, {"msp": msp_score(probabilities), "energy": energy_score(logits)}


def ood_scores(classifier: Any, images: ImageLike | list[ImageLike]) -> dict[str, np.ndarray]:
    """Every score of a CifarClassifier for every image: {"msp": (N,), "energy": (N,)}."""
    return model_scores(classifier, to_model_input(images)[0])[1]


def ensemble_scores(ensemble: Any, views: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A CifarEnsemble's soft-vote probabilities (N, 10) and its own scores: "msp" of the soft
    vote, "energy" as the members' weighted mean, and "vote_share", the weighted share of members
    whose own top class is the soft vote's (1 when all agree; it falls as they disagree)."""
    _, soft, own = _vote_scores(ensemble, _member_answers(ensemble, views))
    return soft, own


def _member_answers(ensemble: Any, views: np.ndarray) -> list[tuple[np.ndarray, dict]]:
    """Each member's `model_scores` of a batch: one forward pass per member."""
    return [model_scores(member, views) for member in ensemble.members]


def _vote_scores(
    ensemble: Any, answers: list[tuple[np.ndarray, dict]]
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The members' probabilities (M, N, 10), the soft vote (N, 10) and the ensemble's own scores
    (see `ensemble_scores`), from the members' answers."""
    members = np.stack([probabilities for probabilities, _ in answers])  # (M, N, C)
    weights = np.asarray(ensemble.weights, float) / np.sum(ensemble.weights)
    soft = soft_vote(members, ensemble.weights)
    energies = np.stack([scores["energy"] for _, scores in answers])
    agree = members.argmax(axis=-1) == soft.argmax(axis=-1)  # (M, N)
    return (
        members,
        soft,
        {
            "msp": msp_score(soft),
            "energy": np.tensordot(weights, energies, axes=1),
            "vote_share": np.tensordot(weights, agree.astype(float), axes=1),
        },
    )


def ensemble_ood_scores(
    ensemble: Any, images: ImageLike | list[ImageLike]
) -> dict[str, np.ndarray]:
    """Every score of a CifarEnsemble for every image (see `ensemble_scores`)."""
    return ensemble_scores(ensemble, to_model_input(images)[0])[1]


@dataclass(frozen=True)
class Mahalanobis:
    """Class-conditional Gaussians with one shared covariance over features (Lee et al., 2018):
    `score` is minus the squared Mahalanobis distance to the nearest class mean."""

    means: np.ndarray  # (classes, d)
    precision: np.ndarray  # (d, d)

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, ridge: float = 1e-6) -> Mahalanobis:
        features = np.asarray(features, np.float64)
        means = np.stack([features[labels == c].mean(axis=0) for c in np.unique(labels)])
        centred = features - means[np.searchsorted(np.unique(labels), labels)]
        covariance = centred.T @ centred / len(features)
        return cls(means, np.linalg.inv(covariance + ridge * np.eye(len(covariance))))

    def score(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, np.float64)
        distances = [
            np.einsum("nd,de,ne->n", features - mean, self.precision, features - mean)
            for mean in self.means
        ]
        return -np.min(np.stack(distances, axis=1), axis=1)


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """Probability that an in-distribution image scores higher than an outlier (ties count half):
    the area under the ROC curve, 1.0 perfect, 0.5 chance."""
    inside, outside = np.asarray(inside, float), np.sort(np.asarray(outside, float))
    below = np.searchsorted(outside, inside, side="left")
    tied = np.searchsorted(outside, inside, side="right") - below
    return float((below + 0.5 * tied).sum() / (len(inside) * len(outside)))


def threshold_at_tpr(inside: np.ndarray, tpr: float = DEFAULT_TPR) -> float:
    """The score above which a fraction `tpr` of in-distribution images lie."""
    ordered = np.sort(np.asarray(inside, float))
    return float(ordered[min(len(ordered) - 1, int(np.floor((1.0 - tpr) * len(ordered))))])


def fpr_at_tpr(inside: np.ndarray, outside: np.ndarray, tpr: float = DEFAULT_TPR) -> float:
    """The fraction of outliers that pass for in-distribution at the threshold that keeps `tpr`
    of the in-distribution images (FPR at 95% TPR by default; lower is better)."""
    return float(np.mean(np.asarray(outside, float) >= threshold_at_tpr(inside, tpr)))


def ood_report(inside: dict[str, np.ndarray], outside: dict[str, np.ndarray]) -> dict:
    """AUROC and FPR at 95% TPR for each score present in both."""
    return {
        name: {
            "auroc": auroc(inside[name], outside[name]),
            "fpr_at_95_tpr": fpr_at_tpr(inside[name], outside[name]),
        }
        for name in inside
        if name in outside
    }


# ----------------------------------------------------------------------------- the detector

#: A model folder's bank of CIFAR-10 training pictures' features (float16, unit length).
BANK_FILE = OOD_BANK_FILE
#: The files a fitted detector adds to a model or ensemble folder.
DETECTOR_FILES = (BANK_FILE, FEATURES_FILE)
#: For a model without a fitted detector: below this top probability (after calibration), a
#: picture is flagged as possibly not one of the ten classes.
LOW_CONFIDENCE = 0.5
#: How tables, plots and flags name a picture the check flags.
OUTLIER_WARNING = "may not be one of the 10 classes"
#: What a visitor is told a CIFAR-10 model knows.
TEN_CLASSES = "airplanes, cars, birds, cats, deer, dogs, frogs, horses, ships and trucks"


def knn_similarity(features: np.ndarray, bank: np.ndarray, k: int) -> np.ndarray:
    """The cosine similarity of each (unit-length) feature vector to its k-th nearest neighbour
    in `bank` (Sun et al., ICML 2022): high for pictures like the bank's, low for others."""
    similarities = features.astype(np.float32) @ bank.astype(np.float32).T  # (N, bank)
    return -np.partition(-similarities, k - 1, axis=1)[:, k - 1]


@dataclass
class KnnDetector:
    """Out-of-distribution detector: how far a picture's ImageNet features lie from CIFAR-10
    training pictures' (k-th nearest neighbour), plus, with `own_weight` > 0, the model's own
    confidence (`own_score`: "msp" or "energy"). Each part is standardised on the validation
    split; a picture is flagged below `threshold`, which 95% of validation pictures reach."""

    bank: np.ndarray  # (n, 256) float16 unit vectors
    features: ImageNetFeatures
    k: int
    own_score: str | None
    own_weight: float
    standardise: dict[str, tuple[float, float]]  # part -> (mean, std) on validation
    threshold: float

    def parts(self, features: np.ndarray, own: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each part's standardised score: {"knn": (N,), own_score: (N,)}."""
        return self.standardised({"knn": knn_similarity(features, self.bank, self.k), **own})

    def standardised(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The parts this detector uses, of raw scores {"knn": ..., "msp": ..., ...}."""
        used = ["knn"] + ([self.own_score] if self.own_score and self.own_weight else [])
        return {n: (np.asarray(raw[n], float) - self.standardise[n][0]) / self.standardise[n][1]
                for n in used}  # fmt: skip

    def combine(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        score = parts["knn"]
        if self.own_score and self.own_weight:
            score = score + self.own_weight * parts[self.own_score]
        return score

    def to_config(self) -> dict[str, Any]:
        return {
            "method": "knn",
            "features": FEATURES_DESCRIPTION,
            "bank_images": len(self.bank),
            "k": self.k,
            "own_score": self.own_score,
            "own_weight": self.own_weight,
            "standardise": {name: list(v) for name, v in self.standardise.items()},
            "threshold": self.threshold,
            "bank_sha256": None,  # filled in by `save`
        }

    def save(self, folder: str | os.PathLike, config: dict[str, Any]) -> dict[str, Any]:
        """Write the bank and the features' weights into `folder` (atomically) and return the
        config entry (`ood_detector`) that goes with them, `config` merged in."""
        folder = Path(folder)
        with atomic_path(folder / BANK_FILE) as path:
            np.save(path, self.bank.astype(np.float16), allow_pickle=False)
        with atomic_path(folder / FEATURES_FILE) as path:
            self.features.save(path)
        return {
            **config,
            **self.to_config(),
            "bank_sha256": sha256(folder / BANK_FILE),
            "features_sha256": sha256(folder / FEATURES_FILE),
        }

    @classmethod
    def load(cls, folder: str | os.PathLike, config: dict[str, Any]) -> KnnDetector:
        """The detector a folder's config entry describes, its files checked against it."""
        folder = Path(folder)
        verify_detector_files(folder, config)
        return cls(
            bank=np.load(folder / BANK_FILE, allow_pickle=False),
            # Verified just above: the recorded digest is the file's.
            features=ImageNetFeatures.load(folder / FEATURES_FILE, config["features_sha256"]),
            k=int(config["k"]),
            own_score=config.get("own_score"),
            own_weight=float(config.get("own_weight") or 0.0),
            standardise={name: tuple(v) for name, v in config["standardise"].items()},
            threshold=float(config["threshold"]),
        )


def verify_detector_files(folder: str | os.PathLike, config: dict[str, Any] | None) -> None:
    """Raise ValueError unless the files of the kNN detector `config` describes (a folder's
    `ood_detector` entry) are in `folder`, as fitted; a detector of another kind needs none."""
    if (config or {}).get("method") != "knn":
        return
    folder = Path(folder)
    for name, key in ((BANK_FILE, "bank_sha256"), (FEATURES_FILE, "features_sha256")):
        if not (folder / name).is_file():
            raise ValueError(f"{folder}: incomplete model folder (no {name})")
        if sha256(folder / name) != config.get(key):
            raise ValueError(f"{folder / name}: checksum mismatch with config.json")


_detector_lock = threading.Lock()


def detector_of(model: Any) -> KnnDetector | None:
    """The fitted kNN detector of a CifarClassifier or CifarEnsemble (loaded once, from the
    folder it was loaded from), or None for a model without one."""
    config = model.config.get("ood_detector") or {}
    if config.get("method") != "knn":
        return None
    with _detector_lock:  # the app's worker threads: one load, the others wait for it
        detector = getattr(model, "_knn_detector", None)
        if detector is None:
            folder = getattr(model, "source_dir", None)
            if folder is None:
                return None
            detector = KnnDetector.load(folder, config)
            model._knn_detector = detector
        return detector


def attach_detector(model: Any, detector: KnnDetector, entry: dict[str, Any]) -> None:
    """Give a CifarClassifier or CifarEnsemble a freshly fitted detector and its config entry
    (what `KnnDetector.save` returned, or `to_config()` for one not saved yet)."""
    model.config["ood_detector"] = entry
    model._knn_detector = detector


@dataclass(frozen=True)
class OutlierCheck:
    """Whether a picture may not show one of the ten classes, and why, in plain words."""

    flagged: bool
    reason: str  # "" when not flagged
    method: str  # "knn"; "energy" or "msp" (an earlier release's); "low confidence"; "members"

    @property
    def notice(self) -> str:
        """The warning a person reads: "" when not flagged."""
        return f"This may not be one of the 10 classes: {self.reason}" if self.flagged else ""


def _knn_reason(parts: dict[str, float]) -> str:
    if parts["knn"] <= min(parts.values()):
        return (
            f"it looks unlike the photos the model learned from ({TEN_CLASSES}, seen as tiny "
            "32x32 pictures), so its label is likely meaningless."
        )
    return (
        "the model is unsure, and the picture is only loosely like the photos it learned from "
        f"({TEN_CLASSES})."
    )


def check_batch(
    model: Any, views: np.ndarray, probabilities: np.ndarray, own: dict[str, np.ndarray]
) -> list[OutlierCheck]:
    """The out-of-distribution check of each 32x32 view of a batch, given the model's calibrated
    `probabilities` (N, 10) and its own scores (`own`: {"msp": (N,), "energy": (N,), ...})."""
    detector = detector_of(model)
    if detector is not None:
        parts = detector.parts(detector.features(views), own)
        scores = detector.combine(parts)
        return [
            OutlierCheck(
                bool(score < detector.threshold),
                _knn_reason({n: float(v[i]) for n, v in parts.items()})
                if score < detector.threshold
                else "",
                "knn",
            )
            for i, score in enumerate(scores)
        ]
    fitted = model.config.get("ood_detector")
    if fitted is not None and fitted.get("score") in own:  # a detector of an earlier release
        name, threshold = fitted["score"], float(fitted["threshold"])
        return [
            OutlierCheck(
                bool(s < threshold),
                f"its {name} score {s:.3g} is below {threshold:.3g}, which 95% of CIFAR-10 "
                "validation images reach."
                if s < threshold
                else "",
                name,
            )
            for s in own[name]
        ]
    top = probabilities.max(axis=-1)
    return [
        OutlierCheck(
            bool(p < LOW_CONFIDENCE),
            f"the model's top probability is only {100 * p:.0f}%." if p < LOW_CONFIDENCE else "",
            "low confidence",
        )
        for p in top
    ]


def predict_and_check(model: Any, views: np.ndarray) -> tuple[np.ndarray, list[OutlierCheck]]:
    """Calibrated probabilities (N, 10) of a batch of 32x32 views and each view's check, by the
    model's own detector: a CifarClassifier's, or a CifarEnsemble's (its soft vote; an ensemble
    without a fitted detector flags a view where most members' checks do)."""
    if getattr(model, "members", None) is None:
        probabilities, own = model_scores(model, views)
        return probabilities, check_batch(model, views, probabilities, own)
    _, probabilities, checks = vote_and_check(model, views)
    return probabilities, checks


def vote_and_check(
    ensemble: Any, views: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[OutlierCheck]]:
    """A CifarEnsemble's members' calibrated probabilities (M, N, 10), its soft vote (N, 10) and
    each view's check (`predict_and_check`), running each member once."""
    answers = _member_answers(ensemble, views)
    members, soft, own = _vote_scores(ensemble, answers)
    if detector_of(ensemble) is not None:
        return members, soft, check_batch(ensemble, views, soft, own)
    member_checks = [
        check_batch(member, views, probabilities, scores)
        for member, (probabilities, scores) in zip(ensemble.members, answers, strict=True)
    ]
    member_flags = np.array([[c.flagged for c in checks] for checks in member_checks])  # (M, N)
    flags, doubters = most_flag(member_flags), member_flags.sum(axis=0)
    checks = [
        OutlierCheck(
            bool(flag),
            f"{n} of {len(member_checks)} models' out-of-distribution checks flag it."
            if flag
            else "",
            "members",
        )
        for flag, n in zip(flags, doubters, strict=True)
    ]
    return members, soft, checks


def predict_and_flag(model: Any, views: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`predict_and_check`'s probabilities (N, 10) and just the flags (N,)."""
    probabilities, checks = predict_and_check(model, views)
    return probabilities, np.array([c.flagged for c in checks], dtype=bool)


def most_flag(flags: np.ndarray) -> np.ndarray:
    """An ensemble's verdict from its members' flags (members, N): flagged where more than half
    of the members flag."""
    return 2 * np.asarray(flags).sum(axis=0) > len(flags)


@dataclass(frozen=True)
class CheckedPrediction:
    """One picture's answer: the label, the top probabilities, and the out-of-distribution
    check with its reason in plain words."""

    probabilities: dict[str, float]  # top classes, most likely first (calibrated)
    check: OutlierCheck

    @property
    def label(self) -> str:
        return next(iter(self.probabilities))

    @property
    def out_of_distribution(self) -> bool:
        return self.check.flagged

    @property
    def warning(self) -> str | None:
        return self.check.notice or None

    def as_dict(self, digits: int = 4) -> dict[str, Any]:
        """{"label", "probabilities", "out_of_distribution", "warning"}: what APIs return."""
        return {
            "label": self.label,
            "probabilities": {n: round(p, digits) for n, p in self.probabilities.items()},
            "out_of_distribution": self.out_of_distribution,
            "warning": self.warning,
        }


def check_image(model: Any, image: ImageLike, top_k: int = 3) -> CheckedPrediction:
    """Classify one picture and check it (`CifarClassifier.check`, `CifarEnsemble.check`)."""
    batch, single = to_model_input(image)
    if not single:
        raise ValueError("check takes one image; use predict_and_check for a batch")
    probabilities, checks = predict_and_check(model, batch)
    return CheckedPrediction(top_classes(probabilities[0], model.class_names, top_k), checks[0])


# ----------------------------------------------------------------------------- fitting

#: The settings `fit_knn_detector` chooses among (on validation and the choice sources only).
NEIGHBOURS = (10, 50)
OWN_WEIGHTS = (0.0, 0.5, 1.0)


def fit_knn_detector(
    features: ImageNetFeatures,
    bank: np.ndarray,
    inside: tuple[np.ndarray, dict[str, np.ndarray]],
    outliers: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]],
    tpr: float = DEFAULT_TPR,
) -> tuple[KnnDetector, list[dict[str, Any]]]:
    """Choose k, the model's own score and its weight for a `KnnDetector`, by the mean FPR at
    `tpr` over the `outliers` sources, with thresholds set on the validation pictures `inside`.

    `bank`: training pictures' unit features (the bank); `inside`: validation views and the
    model's own scores of them ({"msp": (N,), ...}); `outliers`: {source: (views, own scores)}.
    Returns the chosen detector and every candidate's figures, best first. No test image
    plays any part."""
    inside_features = features(inside[0])
    outside_features = {name: features(views) for name, (views, _) in outliers.items()}
    candidates = []
    for k in NEIGHBOURS:
        raw_in = {"knn": knn_similarity(inside_features, bank, k), **inside[1]}
        raw_out = {
            name: {"knn": knn_similarity(outside_features[name], bank, k), **own}
            for name, (_, own) in outliers.items()
        }
        standardise = {n: (float(v.mean()), float(v.std() + 1e-12)) for n, v in raw_in.items()}
        for own_score in inside[1]:
            for weight in OWN_WEIGHTS:
                if weight == 0 and own_score != next(iter(inside[1])):
                    continue  # kNN alone: one candidate, whatever the own score
                detector = KnnDetector(
                    bank, features, k, own_score if weight else None, weight, standardise, 0.0
                )
                scores_in = detector.combine(detector.standardised(raw_in))
                fprs = {
                    name: fpr_at_tpr(scores_in, detector.combine(detector.standardised(raw)))
                    for name, raw in raw_out.items()
                }
                detector.threshold = threshold_at_tpr(scores_in, tpr)
                candidates.append(
                    {
                        "detector": detector,
                        "k": k,
                        "own_score": detector.own_score,
                        "own_weight": weight,
                        "mean_fpr": float(np.mean(list(fprs.values()))),
                        "fpr": fprs,
                    }
                )
    candidates.sort(key=lambda c: c["mean_fpr"])
    best = candidates[0]["detector"]
    best.standardise = {
        n: v for n, v in best.standardise.items() if n == "knn" or n == best.own_score
    }
    return best, [{k: v for k, v in c.items() if k != "detector"} for c in candidates]
