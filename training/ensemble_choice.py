"""Choosing an ensemble's members on validation images, by the rule of docs/training.md.

>>> candidates, alone = rank_candidates(assemble_ensemble(folders), data)  # best first
>>> print(candidates_table(candidates)); choose(candidates).names
('resnet_fast', 'resnet_fast_seed1', 'mobilenet_transfer')

The rule, written down before the first extra member finished training: the subset whose soft
vote with flip TTA is most accurate on the validation images no candidate trained on ships; of
subsets within `TIE_POINTS` of it, the one with the fewest members (faster to serve). Every
subset is judged on the same images, each model's probabilities computed once; the test set is
never read. A single model is not a candidate: the ensemble is the product being chosen.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.cifar10 import Cifar10
from cifar_cnn.ensemble import CifarEnsemble
from cifar_cnn.report.metrics import ensemble_probabilities_with_flips, soft_vote_accuracy
from training.evaluate import validation_images

#: Accuracy points (of 100) within which a smaller ensemble is preferred: 4 images of the 2,000
#: that the shipped models' common validation split holds, about its noise.
TIE_POINTS = 0.2


@dataclass(frozen=True)
class Candidate:
    """One subset of the models and its soft vote's accuracy on the validation images."""

    names: tuple[str, ...]
    accuracy: float
    flip_tta_accuracy: float
    images: int


def rank_candidates(
    ensemble: CifarEnsemble, data: Cifar10
) -> tuple[list[Candidate], list[Candidate]]:
    """Every subset of two or more of `ensemble`'s members (each keeping its weight), scored on
    the validation images none of the members trained on, best first; and each model alone on
    the same images (what the subsets are to beat), best first."""
    members: list[CifarClassifier] = list(ensemble.members)
    if len(members) < 2:
        raise ValueError(f"choosing needs at least 2 models, got {len(members)}")
    x_val, y_val = validation_images(members, data)
    plain, flipped = ensemble_probabilities_with_flips(ensemble, x_val)
    ranked = rank_subsets(ensemble.names, plain, flipped, ensemble.weights, y_val, smallest=1)
    return [c for c in ranked if len(c.names) > 1], [c for c in ranked if len(c.names) == 1]


def rank_subsets(
    names: list[str],
    plain: np.ndarray,
    flipped: np.ndarray,
    weights: np.ndarray,
    y: np.ndarray,
    smallest: int = 2,
) -> list[Candidate]:
    """Every subset of at least `smallest` models scored from their probabilities (M, N, C)
    without and with flip TTA on the images labelled `y`: best first (flip-TTA accuracy, then
    plain, then fewer members)."""
    weights = np.asarray(weights, dtype=np.float64)
    candidates = []
    for size in range(smallest, len(names) + 1):
        for subset in itertools.combinations(range(len(names)), size):
            rows = list(subset)
            candidates.append(
                Candidate(
                    names=tuple(names[i] for i in rows),
                    accuracy=soft_vote_accuracy(plain[rows], weights[rows], y),
                    flip_tta_accuracy=soft_vote_accuracy(flipped[rows], weights[rows], y),
                    images=len(y),
                )
            )
    return sorted(candidates, key=lambda c: (-c.flip_tta_accuracy, -c.accuracy, len(c.names)))


def choose(candidates: list[Candidate], tie_points: float = TIE_POINTS) -> Candidate:
    """The rule: the highest flip-TTA accuracy; of candidates within `tie_points` of it, the one
    with the fewest members (then the most accurate of those)."""
    if not candidates:
        raise ValueError("no candidates to choose from")
    best = max(c.flip_tta_accuracy for c in candidates)
    close = [c for c in candidates if c.flip_tta_accuracy >= best - tie_points / 100 - 1e-9]
    return min(close, key=lambda c: (len(c.names), -c.flip_tta_accuracy, -c.accuracy))


def candidates_table(
    candidates: list[Candidate], chosen: Candidate | None = None, heading: str = "members"
) -> str:
    """A markdown table of the candidates, the chosen one in bold."""
    images = candidates[0].images if candidates else 0
    lines = [
        f"| {heading} | validation soft vote ({images} images) | with flip TTA |",
        "|---|---:|---:|",
    ]
    for c in candidates:
        name = " + ".join(c.names)
        if c == chosen:
            name = f"**{name}** (chosen)"
        lines.append(f"| {name} | {c.accuracy:.2%} | {c.flip_tta_accuracy:.2%} |")
    return "\n".join(lines)
