"""Out-of-distribution detection: a score per prediction that says "this may not be one of the
ten classes", a threshold chosen on validation data, and its evaluation on real outliers.

>>> from cifar_cnn.data.fashion_mnist import load_fashion_mnist
>>> from cifar_cnn.trust.ood import ood_scores, auroc, fpr_at_tpr, outlier_check
>>> inside = ood_scores(classifier, cifar_test_images)["msp"]     # higher: more in-distribution
>>> outside = ood_scores(classifier, load_fashion_mnist())["msp"]
>>> auroc(inside, outside), fpr_at_tpr(inside, outside, 0.95)

Scores (all "higher means more like CIFAR-10"):

- ``msp``: the maximum softmax probability (Hendrycks and Gimpel, 2017);
- ``energy``: the log-sum-exp of the logits, the negative free energy (Liu et al., 2020);
- for an ensemble (`ensemble_ood_scores`): the soft vote's maximum probability, the members'
  mean energy, and their agreement on the soft vote's class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from cifar_cnn.data.images import ImageLike, to_model_input
from cifar_cnn.explain.probing import logits_of_last
from cifar_cnn.trust.calibration import softmax_with_temperature
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


def ood_scores(classifier: Any, images: ImageLike | list[ImageLike]) -> dict[str, np.ndarray]:
    """Every score for every image: {"msp": (N,), "energy": (N,)}; msp on calibrated
    probabilities (the ones people see), energy on the raw logits."""
    logits = logits_for(classifier, images)
    return {"msp": msp_score(classifier.predict(images)), "energy": energy_score(logits)}


def ensemble_ood_scores(
    ensemble: Any, images: ImageLike | list[ImageLike]
) -> dict[str, np.ndarray]:
    """Scores of a CifarEnsemble: "msp" of the soft vote, "energy" as the members' weighted
    mean, and "agreement", the weighted mean probability the members give the soft vote's
    class (it falls when they disagree)."""
    batch, _ = to_model_input(images)
    members = ensemble.member_probabilities(batch)  # (M, N, C), calibrated
    weights = np.asarray(ensemble.weights, float) / np.sum(ensemble.weights)
    soft = soft_vote(members, ensemble.weights)
    chosen = soft.argmax(axis=-1)
    energies = np.stack([energy_score(logits_for(m, batch)) for m in ensemble.members])
    on_choice = members[:, np.arange(len(chosen)), chosen]  # (M, N)
    return {
        "msp": msp_score(soft),
        "energy": np.tensordot(weights, energies, axes=1),
        "agreement": np.tensordot(weights, on_choice, axes=1),
    }


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


#: For a model without a fitted detector: below this top probability (after calibration), a
#: picture is flagged as possibly not one of the ten classes.
LOW_CONFIDENCE = 0.5
#: How tables, plots and flags name a picture the check flags.
OUTLIER_WARNING = "may not be one of the 10 classes"


@dataclass(frozen=True)
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


def uses_energy(classifier: Any) -> bool:
    """Whether the model's fitted detector scores pictures by the energy of their logits."""
    return (classifier.config.get("ood_detector") or {}).get("score") == "energy"


def predict_with_logits(classifier: Any, view: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Calibrated probabilities of one 32x32 view, or of a batch (N, 32, 32, 3), and the logits
    when the model's detector needs them: one forward pass either way."""
    if uses_energy(classifier):
        logits = logits_for(classifier, view)  # (N, 10) for a batch and for one view alike
        logits = logits[0] if view.ndim == 3 else logits
        return softmax_with_temperature(logits, classifier.temperature), logits
    return classifier.predict(view), None


def outlier_check(
    classifier: Any,
    view: np.ndarray,
    probabilities: np.ndarray,
    logits: np.ndarray | None = None,
) -> OutlierCheck:
    """`view`'s out-of-distribution check for a CifarClassifier; `probabilities` are its
    calibrated predictions and `logits`, if already computed, its pre-softmax scores."""
    detector = classifier.config.get("ood_detector")
    if detector is None:
        return OutlierCheck("msp", float(probabilities.max()), LOW_CONFIDENCE, fitted=False)
    if uses_energy(classifier):
        if logits is None:
            logits = logits_for(classifier, view[None])[0]
        score = float(energy_score(logits[None])[0])
    else:
        score = float(probabilities.max())
    return OutlierCheck(detector["score"], score, float(detector["threshold"]), fitted=True)


def predict_and_flag(model: Any, views: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated probabilities (N, 10) and out-of-distribution flags (N,) for a batch of 32x32
    views, by a CifarClassifier's own check, or for a CifarEnsemble by its soft vote, flagged
    where most members' checks flag the view."""
    members = getattr(model, "members", None)
    if members is None:
        probabilities, logits = predict_with_logits(model, views)
        flags = [
            outlier_check(model, view, p, None if logits is None else logits[i]).flagged
            for i, (view, p) in enumerate(zip(views, probabilities, strict=True))
        ]
        return probabilities, np.array(flags, dtype=bool)
    answers = [predict_and_flag(member, views) for member in members]
    probabilities = soft_vote(np.stack([p for p, _ in answers]), model.weights)
    return probabilities, most_flag(np.stack([flags for _, flags in answers]))


def most_flag(flags: np.ndarray) -> np.ndarray:
    """An ensemble's verdict from its members' flags (members, N): flagged where more than half
    of the members flag."""
    return 2 * np.asarray(flags).sum(axis=0) > len(flags)
