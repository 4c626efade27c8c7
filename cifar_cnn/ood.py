"""Out-of-distribution detection: a score per prediction that says "this may not be one of the
ten classes", a threshold chosen on validation data, and its evaluation on real outliers.

>>> from cifar_cnn.ood import ood_scores, auroc, fpr_at_tpr, load_fashion_mnist
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

import gzip
import os
from pathlib import Path
from typing import Any

import cv2
import keras
import numpy as np
import tensorflow as tf

from cifar_cnn.preprocessing import ImageLike, to_model_input

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian: dataset-fashion-mnist
FASHION_MNIST_FILES = {"train": "train-images-idx3-ubyte.gz", "test": "t10k-images-idx3-ubyte.gz"}
DEFAULT_TPR = 0.95


def load_fashion_mnist(
    split: str = "test", folder: str | os.PathLike = FASHION_MNIST_DIR, limit: int | None = None
) -> np.ndarray:
    """Fashion-MNIST images (Xiao et al., 2017) as CIFAR-shaped uint8 (N, 32, 32, 3): the 28x28
    grayscale pictures enlarged bilinearly to 32x32 and repeated over three channels."""
    if split not in FASHION_MNIST_FILES:
        raise ValueError(f"unknown split {split!r}; choose train or test")
    path = Path(folder) / FASHION_MNIST_FILES[split]
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: install the Debian package dataset-fashion-mnist, or pass the "
            f"folder holding {FASHION_MNIST_FILES[split]}"
        )
    with gzip.open(path, "rb") as file:
        data = file.read()
    magic, count, rows, cols = np.frombuffer(data[:16], dtype=">u4")
    if magic != 2051 or len(data) != 16 + int(count) * int(rows) * int(cols):
        raise ValueError(f"{path} is not an IDX image file")
    count = int(count) if limit is None else min(int(count), limit)
    gray = np.frombuffer(data, dtype=np.uint8, offset=16, count=count * rows * cols)
    gray = gray.reshape(count, rows, cols)
    enlarged = np.stack([cv2.resize(g, (32, 32), interpolation=cv2.INTER_LINEAR) for g in gray])
    return np.repeat(enlarged[..., None], 3, axis=-1)


def logits_model(model: keras.Model) -> keras.Model:
    """`model` up to its pre-softmax class scores (its last layer must be a softmax Dense or
    Activation, as every cifar_cnn architecture's is)."""
    from cifar_cnn.probing import _logits_of_last

    last = model.layers[-1]
    trunk = keras.Model(model.inputs, last.input)
    inputs = keras.Input(model.inputs[0].shape[1:], dtype=model.inputs[0].dtype)
    return keras.Model(inputs, _logits_of_last(last, trunk(inputs)))


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
    from cifar_cnn.ensemble import soft_vote

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


def is_outlier(score: float, detector: dict | None) -> bool:
    """Whether `score` falls below a fitted detector's threshold ({"score", "threshold", ...})."""
    return detector is not None and score < detector["threshold"]
