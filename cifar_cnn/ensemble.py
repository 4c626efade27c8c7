"""Ensembles: several classifiers voting, softly (averaged probabilities) or by majority.

>>> from cifar_cnn.ensemble import CifarEnsemble
>>> ensemble = CifarEnsemble.from_pretrained("models/ensemble")   # members load by reference
>>> ensemble.predict(images)                 # (N, 10) weighted mean of member probabilities
>>> ensemble.hard_vote(images)               # (N,) majority labels
>>> ensemble.agreement(images)               # how often the members agree

Voting rules:
- soft: the weighted mean of the members' probabilities (weights default to equal; the shipped
  ensemble weights members by validation accuracy); the prediction is its argmax.
- hard: each member votes for its top class with its weight; the class with the most weight
  wins. A tie is broken by the soft score, i.e. the tied class with the highest weighted mean
  probability wins (and, if even that ties, the lowest class index).

An ensemble folder holds `config.json` (`{"type": "ensemble", "members": [...], "voting": ...}`)
with each member given as a path relative to the folder or a Hub repo id with an optional
`@revision`, plus its own model card and metrics. It holds no weights of its own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from cifar_cnn.classifier import CONFIG_FILE, CifarClassifier
from cifar_cnn.files import atomic_write_text
from cifar_cnn.preprocessing import ImageLike, to_model_input

VOTE_KEY = "ensemble"  # the soft vote's key wherever per-model reports sit beside the members'
VOTE_LABEL = "soft vote"  # and how tables and plots name it


def report_label(name: str) -> str:
    """How a per-model report is labelled in tables and plots: the ensemble's is its soft vote."""
    return VOTE_LABEL if name == VOTE_KEY else name


def soft_vote(member_probabilities: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(M, N, C) member probabilities to (N, C): their weighted mean."""
    weights = _weights(weights, len(member_probabilities))
    return np.tensordot(weights, member_probabilities, axes=1) / weights.sum()


def hard_vote(member_probabilities: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(M, N, C) to (N,) labels: weighted majority of top-1 votes, ties broken by the soft score."""
    members, n, num_classes = member_probabilities.shape
    weights = _weights(weights, members)
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


def _distinct(names: list[str]) -> list[str]:
    """Two members of one architecture become "resnet_fast" and "resnet_fast-2"."""
    seen: dict[str, int] = {}
    distinct = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        distinct.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return distinct


def _weights(weights, members: int) -> np.ndarray:
    weights = np.ones(members) if weights is None else np.asarray(weights, dtype=np.float64)
    if weights.shape != (members,) or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"need {members} non-negative weights with a positive sum, got {weights}")
    return weights


class CifarEnsemble:
    """Classifiers that vote. `names` label the members (default: their architectures)."""

    def __init__(
        self,
        members: list[CifarClassifier],
        weights: list[float] | None = None,
        names: list[str] | None = None,
        voting: str = "soft",
        sources: list[str] | None = None,
    ):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if voting not in ("soft", "hard"):
            raise ValueError(f"voting must be 'soft' or 'hard', got {voting!r}")
        class_names = {m.class_names for m in members}
        if len(class_names) != 1:
            raise ValueError("ensemble members must share the same class names")
        self.members = members
        self.weights = _weights(weights, len(members))
        self.names = names or _distinct([m.config["architecture"] for m in members])
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"member names must be distinct, got {self.names}")
        self.voting = voting
        self.sources = sources
        self.class_names = members[0].class_names
        self.metrics: dict[str, Any] | None = None

    def member_probabilities(self, images: ImageLike | list[ImageLike], **kwargs) -> np.ndarray:
        """(M, N, C): each member's (calibrated) probabilities for a batch."""
        batch, _ = to_model_input(images)
        return np.stack([member.predict(batch, **kwargs) for member in self.members])

    def predict(self, images: ImageLike | list[ImageLike], **kwargs) -> np.ndarray:
        """Soft-vote probabilities: (10,) for one image, (N, 10) for a batch."""
        _, single = to_model_input(images)
        probabilities = soft_vote(self.member_probabilities(images, **kwargs), self.weights)
        return probabilities[0] if single else probabilities

    def hard_vote(self, images: ImageLike | list[ImageLike], **kwargs) -> np.ndarray:
        return hard_vote(self.member_probabilities(images, **kwargs), self.weights)

    def agreement(self, images: ImageLike | list[ImageLike], **kwargs) -> dict[str, Any]:
        return agreement(self.member_probabilities(images, **kwargs))

    # ------------------------------------------------------------------ saving and loading

    def save_pretrained(self, folder: str | os.PathLike, sources: list[str] | None = None) -> None:
        """Write the ensemble's config (members by reference), metrics and card to `folder`."""
        from cifar_cnn.model_card import render_ensemble_card

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        sources = sources or self.sources
        if sources is None or len(sources) != len(self.members):
            raise ValueError("give one source (relative path or repo id) per member")
        config = {
            "type": "ensemble",
            "class_names": list(self.class_names),
            "voting": self.voting,
            "tie_break": "highest weighted mean probability among the tied classes",
            "members": [
                {"name": name, "source": source, "weight": float(weight)}
                for name, source, weight in zip(self.names, sources, self.weights, strict=True)
            ],
        }
        atomic_write_text(folder / CONFIG_FILE, json.dumps(config, indent=2))
        if self.metrics is not None:
            atomic_write_text(folder / "metrics.json", json.dumps(self.metrics, indent=2))
        atomic_write_text(folder / "README.md", str(render_ensemble_card(config, self.metrics)))

    @classmethod
    def from_pretrained(cls, folder_or_repo: str | os.PathLike, **hub_kwargs) -> CifarEnsemble:
        """Load an ensemble folder (or Hub repo) and each member it references."""
        folder = Path(folder_or_repo)
        if not folder.is_dir():
            from huggingface_hub import snapshot_download

            name, _, revision = str(folder_or_repo).partition("@")
            patterns = ["*.json", "*.md"]  # an ensemble repo holds no weights
            folder = Path(
                snapshot_download(
                    name, revision=revision or None, allow_patterns=patterns, **hub_kwargs
                )
            )
        config_path = folder / CONFIG_FILE
        if not config_path.is_file():
            raise ValueError(f"{folder}: not an ensemble folder (no {CONFIG_FILE})")
        config = json.loads(config_path.read_text())
        if config.get("type") != "ensemble":
            raise ValueError(f"{config_path}: not an ensemble config (type is not 'ensemble')")
        members, sources = [], []
        for member in config["members"]:
            source = member["source"]
            local = (folder / source).resolve()
            if local.is_dir():
                members.append(CifarClassifier.from_pretrained(local))
            else:  # a Hub repo id, pinned with @revision: same cache, token and offline mode
                members.append(CifarClassifier.from_pretrained(source, **hub_kwargs))
            sources.append(source)
        ensemble = cls(
            members,
            weights=[m["weight"] for m in config["members"]],
            names=[m["name"] for m in config["members"]],
            voting=config.get("voting", "soft"),
            sources=sources,
        )
        metrics_path = folder / "metrics.json"
        if metrics_path.is_file():
            ensemble.metrics = json.loads(metrics_path.read_text())
        return ensemble
