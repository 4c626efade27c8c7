"""How an ensemble's members vote: plain numpy arithmetic, shared by the ensemble, its
evaluation, its out-of-distribution scores and the app.

>>> probabilities = np.array([[[0.6, 0.4]], [[0.3, 0.7]], [[0.2, 0.8]]])   # (M, N, C)
>>> soft_vote(probabilities)                        # the mean: [[0.367, 0.633]]
>>> hard_vote(probabilities)                        # the majority's class: [1]

Rules:
- soft: the weighted mean of the members' probabilities (weights default to equal; the shipped
  ensemble weights members by validation accuracy); the prediction is its argmax.
- hard: each member votes for its top class with its weight; the class with the most weight
  wins. A tie is broken by the soft score, i.e. the tied class with the highest weighted mean
  probability wins (and, if even that ties, the lowest class index).
- flip TTA: one model's probabilities for an image and for its mirror image, averaged (a vote of
  the two views, `mirror_average`; every `flip_tta=True` in the library means this).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

VOTE_KEY = "ensemble"  # the soft vote's key wherever per-model reports sit beside the members'
VOTE_LABEL = "soft vote"  # and how tables and plots name it
TIE_BREAK = "highest weighted mean probability among the tied classes"


def report_label(name: str) -> str:
    """How a per-model report is labelled in tables and plots: the ensemble's is its soft vote."""
    return VOTE_LABEL if name == VOTE_KEY else name


def mirror_average(plain: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """Test-time augmentation by horizontal flip: the probabilities for the images and for their
    mirror images, averaged."""
    return (plain + mirrored) / 2


def checked_weights(weights: Sequence[float] | np.ndarray | None, members: int) -> np.ndarray:
    """`weights` as a float array (equal when None), or a ValueError if they cannot weigh votes."""
    weights = np.ones(members) if weights is None else np.asarray(weights, dtype=np.float64)
    if weights.shape != (members,) or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"need {members} non-negative weights with a positive sum, got {weights}")
    return weights


def validation_weights(configs: Sequence[dict[str, Any]]) -> list[float] | None:
    """Each member's recorded validation accuracy (`config["training"]["best_val_accuracy"]`),
    the weights of the shipped ensemble; None if any member has no record."""
    recorded = [(c.get("training") or {}).get("best_val_accuracy") for c in configs]
    return None if any(r is None for r in recorded) else [float(r) for r in recorded]


def soft_vote(member_probabilities: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(M, N, C) member probabilities to (N, C): their weighted mean."""
    weights = checked_weights(weights, len(member_probabilities))
    return np.tensordot(weights, member_probabilities, axes=1) / weights.sum()


def hard_vote(member_probabilities: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(M, N, C) to (N,) labels: weighted majority of top-1 votes, ties broken by the soft score."""
    members, n, num_classes = member_probabilities.shape
    weights = checked_weights(weights, members)
    votes = np.zeros((n, num_classes))
    for weight, probabilities in zip(weights, member_probabilities, strict=True):
        votes[np.arange(n), probabilities.argmax(axis=1)] += weight
    soft = soft_vote(member_probabilities, weights)
    tied = np.isclose(votes, votes.max(axis=1, keepdims=True))
    return np.where(tied, soft, -np.inf).argmax(axis=1)


def agreement(member_probabilities: np.ndarray) -> dict[str, Any]:
    """How often all members agree, and each pair's disagreement rate."""
    labels = member_probabilities.argmax(axis=2)  # (M, N)
    members = len(labels)
    pairwise = [
        [float(np.mean(labels[i] != labels[j])) for j in range(members)] for i in range(members)
    ]
    return {
        "all_agree": float(np.mean((labels == labels[0]).all(axis=0))),
        "pairwise_disagreement": pairwise,
    }
